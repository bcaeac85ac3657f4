/**
 * Writing audit rows: group commit, fail closed, and an optional bounded spool.
 *
 * A call's response leaves only after its row is durable (`append` resolves after commit).
 * Rows arriving while a commit is in flight ride the next one, so a busy gateway pays one
 * transaction per batch, not per call. When the store fails, the writer turns unavailable:
 * without a spool, calls are refused with `audit_unavailable` (fail closed); with one, rows go
 * to a local journal (fsync'd, bounded) and are replayed, in order, when a probe finds the
 * store back. Either way the writer recovers by itself.
 */
import { open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import type { Clock, TimerHandle } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { AuditRowInput, Store } from '../storage/store.ts';
import { sealRow } from './chain.ts';

const MAX_BATCH = 500;

export interface AuditWriterOptions {
  store: Store;
  clock: Clock;
  /** Journal for rows the store cannot take; absent means fail closed. */
  spool?: { path: string; maxBytes: number } | undefined;
  /** How often an unavailable store is probed. */
  probeIntervalMs?: number;
  /** Commit latency and batch size, for metrics. */
  onCommit?: (ms: number, rows: number) => void;
  /** Rows waiting for a commit, for metrics. */
  onQueueDepth?: (depth: number) => void;
  /** Availability changes, for the log and readiness. */
  onAvailability?: (available: boolean, reason: string | undefined) => void;
}

interface Pending {
  row: AuditRowInput;
  resolve(): void;
  reject(error: Error): void;
}

function unavailable(cause?: unknown): GatehouseError {
  return new GatehouseError('AUDIT_UNAVAILABLE', 'the audit store is unavailable; the call was not executed or not answered', { cause });
}

export class AuditWriter {
  private readonly options: AuditWriterOptions;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private availableValue = true;
  private probeTimer: TimerHandle | undefined;
  /** Serializes every spool operation (append, replay). */
  private spoolChain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: AuditWriterOptions) {
    this.options = options;
  }

  /** Whether rows are being committed to the store right now. */
  get available(): boolean {
    return this.availableValue;
  }

  /** Whether a call may run: the store is up, or a spool can take its row. */
  get accepting(): boolean {
    return this.availableValue || this.options.spool !== undefined;
  }

  /** Replay a journal left by an earlier run (an outage that outlived the process). */
  async start(): Promise<void> {
    if (this.options.spool === undefined) return;
    if ((await stat(this.options.spool.path).catch(() => undefined))?.size) {
      this.availableValue = false;
      await this.serialized(() => this.replay());
    }
  }

  /** Resolves once `row` is durable (in the store, or in the spool while the store is down). */
  append(row: AuditRowInput): Promise<void> {
    if (this.closed) return Promise.reject(unavailable());
    if (!this.availableValue) return this.spoolOrRefuse(row);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      this.options.onQueueDepth?.(this.queue.length);
      this.flushing ??= this.flush();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer !== undefined) this.options.clock.clearTimeout(this.probeTimer);
    await this.flushing;
    await this.spoolChain.catch(() => undefined);
  }

  private async flush(): Promise<void> {
    // One turn of the event loop lets the rows of concurrent calls join this commit.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.options.onQueueDepth?.(this.queue.length);
      const started = this.options.clock.monotonic();
      try {
        await this.options.store.appendAudit(batch.map((p) => p.row), sealRow);
        this.options.onCommit?.(this.options.clock.monotonic() - started, batch.length);
        for (const p of batch) p.resolve();
      } catch (err) {
        // A store that still answers refused the batch's content, not the write: find the
        // offending row alone, keep the others, and stay available for everyone else.
        if (await this.storeAnswers()) {
          await this.commitEach(batch);
          continue;
        }
        this.markUnavailable(err);
        const stranded = [...batch, ...this.queue.splice(0)];
        this.options.onQueueDepth?.(0);
        for (const p of stranded) this.spoolOrRefuse(p.row).then(p.resolve, p.reject);
      }
    }
    this.flushing = undefined;
  }

  private async storeAnswers(): Promise<boolean> {
    try {
      await this.options.store.ping();
      return true;
    } catch {
      return false;
    }
  }

  private async commitEach(batch: readonly Pending[]): Promise<void> {
    for (const p of batch) {
      try {
        await this.options.store.appendAudit([p.row], sealRow);
        p.resolve();
      } catch (err) {
        // Fail closed for this call alone: it is answered with an error, never without its row.
        p.reject(new GatehouseError('INTERNAL', `the audit store refused the call's row: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  private spoolOrRefuse(row: AuditRowInput): Promise<void> {
    const spool = this.options.spool;
    if (spool === undefined) return Promise.reject(unavailable());
    return this.serialized(async () => {
      // Recovered while this row waited its turn: the store takes it directly, in order.
      if (this.availableValue) return this.append(row);
      const line = `${JSON.stringify(row)}\n`;
      const size = (await stat(spool.path).catch(() => undefined))?.size ?? 0;
      if (size + Buffer.byteLength(line) > spool.maxBytes) throw unavailable(new Error('audit spool is full'));
      const handle = await open(spool.path, 'a');
      try {
        await handle.appendFile(line, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.spoolChain.then(work, work);
    this.spoolChain = next.catch(() => undefined);
    return next;
  }

  private markUnavailable(err: unknown): void {
    if (this.availableValue) {
      this.availableValue = false;
      this.options.onAvailability?.(false, err instanceof Error ? err.message : String(err));
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed || this.probeTimer !== undefined) return;
    this.probeTimer = this.options.clock.setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, this.options.probeIntervalMs ?? 1_000);
  }

  private async probe(): Promise<void> {
    try {
      await this.options.store.ping();
      await this.serialized(() => this.replay());
    } catch {
      this.scheduleProbe();
    }
  }

  /** Move the spool into the store in order, then accept rows directly again. */
  private async replay(): Promise<void> {
    const spool = this.options.spool;
    if (spool !== undefined) {
      const text = await readFile(spool.path, 'utf8').catch(() => '');
      const rows = text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as AuditRowInput);
      for (let i = 0; i < rows.length; i += MAX_BATCH) {
        await this.options.store.appendAudit(rows.slice(i, i + MAX_BATCH), sealRow);
        // Rewrite what is left before the next batch: a failure midway never replays a row twice.
        const rest = rows.slice(i + MAX_BATCH).map((r) => `${JSON.stringify(r)}\n`).join('');
        await writeFile(`${spool.path}.tmp`, rest, 'utf8');
        await rename(`${spool.path}.tmp`, spool.path);
      }
    }
    if (!this.availableValue) {
      this.availableValue = true;
      this.options.onAvailability?.(true, undefined);
    }
  }
}
