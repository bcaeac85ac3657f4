/**
 * The audit trail as the gateway runs it: the store's writer, the trail that builds rows,
 * retention pruning on a timer, and availability reported to the log. The gateway holds one
 * for its lifetime; config changes (argument policy, retention) apply on the next row.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { GatehouseError } from '../protocol/errors.ts';
import type { Store } from '../storage/store.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import { nextRequestId } from '../telemetry/call-record.ts';
import { AuditTrail, type AuditPolicy } from './audit-trail.ts';
import { AuditWriter } from './audit-writer.ts';
import type { Principal } from '../auth/principal.ts';

const PRUNE_INTERVAL_MS = 60 * 60_000;
const DAY_MS = 24 * 60 * 60_000;

export interface AuditServiceOptions {
  store: Store;
  config: () => GatehouseConfig;
  clock: Clock;
  logger: GatewayLogger;
  /** The server version a target reported, for the row. */
  targetVersion: (target: string) => string | null;
  /** Commit latency and queue depth, for metrics. */
  onCommit?: (ms: number, rows: number) => void;
  onQueueDepth?: (depth: number) => void;
}

export class AuditService {
  readonly writer: AuditWriter;
  readonly trail: AuditTrail;
  private readonly options: AuditServiceOptions;
  private pruneTimer: TimerHandle | undefined;
  private policyCache: { source: GatehouseConfig['audit']; policy: AuditPolicy } | undefined;

  constructor(options: AuditServiceOptions) {
    this.options = options;
    const audit = options.config().audit;
    this.writer = new AuditWriter({
      store: options.store,
      clock: options.clock,
      spool: audit.spool,
      probeIntervalMs: audit.probeIntervalMs,
      onCommit: options.onCommit,
      onQueueDepth: options.onQueueDepth,
      onAvailability: (available, reason) => {
        if (available) options.logger.warn({ kind: 'audit' }, 'audit store is back; calls are accepted again');
        else options.logger.error({ kind: 'audit', reason }, audit.spool ? 'audit store unavailable; spooling rows' : 'audit store unavailable; refusing calls until it returns');
      },
    });
    this.trail = new AuditTrail(this.writer, () => this.policy(), options.targetVersion, () => options.clock.now());
  }

  async start(): Promise<void> {
    await this.writer.start();
    this.schedulePrune(0);
  }

  get accepting(): boolean {
    return this.writer.accepting;
  }

  /** Audit a request refused before it became a call. A failure here is logged, never thrown: the refusal goes out regardless. */
  async rejection(error: GatehouseError, facts: { method?: string | undefined; sessionId?: string | undefined; bytesIn: number; transport: string; principal?: Principal | undefined }): Promise<void> {
    await this.trail
      .recordRejection(error, { requestId: nextRequestId(), method: facts.method, sessionId: facts.sessionId, bytesIn: facts.bytesIn, transport: facts.transport, principal: facts.principal })
      .catch((err: unknown) => this.options.logger.error({ kind: 'audit', err: (err as Error).message }, 'could not audit a rejected request'));
  }

  admin(action: string, facts: { outcome: string; errorType?: string; details?: unknown; user?: string }): Promise<void> {
    return this.trail.recordAdmin(action, { requestId: nextRequestId(), ...facts });
  }

  async close(): Promise<void> {
    if (this.pruneTimer !== undefined) this.options.clock.clearTimeout(this.pruneTimer);
    await this.writer.close();
  }

  private policy(): AuditPolicy {
    const source = this.options.config().audit;
    if (this.policyCache?.source !== source) {
      this.policyCache = { source, policy: { arguments: source.arguments, redactKeys: new Set(source.redactKeys.map((k) => k.toLowerCase())) } };
    }
    return this.policyCache.policy;
  }

  private schedulePrune(delayMs: number): void {
    this.pruneTimer = this.options.clock.setTimeout(() => void this.prune(), delayMs);
  }

  private async prune(): Promise<void> {
    const { maxAgeDays, maxRows } = this.options.config().audit.retention;
    try {
      if (maxAgeDays !== undefined || maxRows !== undefined) {
        const before = maxAgeDays === undefined ? undefined : this.options.clock.now() - maxAgeDays * DAY_MS;
        const removed = await this.options.store.pruneAudit({ before, keep: maxRows });
        if (removed > 0) this.options.logger.info({ kind: 'audit', removed }, 'audit retention pruned rows');
      }
    } catch (err) {
      this.options.logger.warn({ kind: 'audit', err: (err as Error).message }, 'audit retention failed; retrying next hour');
    } finally {
      this.schedulePrune(PRUNE_INTERVAL_MS);
    }
  }
}
