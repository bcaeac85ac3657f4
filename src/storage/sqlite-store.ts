/**
 * The embedded default store: one SQLite file under the data directory, in WAL mode.
 *
 * Durability. `synchronous=NORMAL` is the default: a commit reaches the WAL (in the OS page
 * cache) before the append resolves, which survives kill -9 of the gateway but can lose the last
 * commits on power loss. `FULL` fsyncs the WAL at every commit and survives power loss too; it
 * costs an fsync (~5 ms measured here) that a lone call waits for, against the 0.3 ms latency
 * budget, so it is the operator's explicit choice (docs/audit.md, Durability).
 *
 * better-sqlite3 is synchronous: a query, and FULL's fsync, run on the event loop. Group
 * commit keeps that to one short stall per batch.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { checkAuditInput, sealRows, toStoredRow, type Database } from './audit-table.ts';
import type { AuditRow, AuditRowInput, AuditSealer } from './store.ts';
import { encodeText } from './text-codec.ts';
import { SqlStore, type CheckResult } from './sql-store.ts';

export interface SqliteStoreOptions {
  /** The database file (a relative path resolves against the working directory); its directory is created (0700) when missing. */
  file: string;
  synchronous?: 'full' | 'normal';
  /** How long a statement waits for another process's lock before failing with SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

export class SqliteStore extends SqlStore {
  readonly kind = 'sqlite' as const;
  readonly file: string;

  private constructor(
    db: Kysely<Database>,
    private readonly connection: BetterSqlite3.Database,
    file: string,
    private readonly busyTimeoutMs: number,
  ) {
    super(db, false);
    this.file = file;
  }

  /** Open (creating when missing) the database file and set its pragmas. */
  static open(options: SqliteStoreOptions): SqliteStore {
    const file = path.resolve(options.file);
    // Audit rows can hold call arguments: keep the directory and file private to the gateway's user.
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const created = !existsSync(file);
    const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
    const connection = new BetterSqlite3(file, { timeout: busyTimeoutMs });
    try {
      if (created) chmodSync(file, 0o600);
      const mode = connection.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`${file}: SQLite refused WAL mode (journal_mode is ${String(mode)}); is the file on a network filesystem?`);
      connection.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    } catch (err) {
      connection.close();
      throw err;
    }
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: connection }) });
    return new SqliteStore(db, connection, file, busyTimeoutMs);
  }

  /**
   * `BEGIN IMMEDIATE` takes the write lock before the chain head is read; a deferred BEGIN
   * would let two connections read the same head and one then fail to upgrade its lock.
   * kysely's connection() holds this store's single connection for the whole transaction.
   *
   * The lock is waited for here, asynchronously, not in SQLite's busy handler: that handler
   * sleeps on the event loop, so a CLI prune or backup holding the lock would freeze every
   * call of the gateway, and a second connection in the same process would wait on a lock
   * holder that cannot run until the wait ends (a deadlock that lasts the whole timeout).
   */
  protected writeTransaction<T>(work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.db.connection().execute(async (conn) => {
      await this.beginImmediate(conn);
      try {
        const result = await work(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        if (this.connection.inTransaction) await sql`rollback`.execute(conn);
        throw err;
      }
    });
  }

  private async beginImmediate(conn: Kysely<Database>): Promise<void> {
    const deadline = Date.now() + this.busyTimeoutMs;
    let delay = 1;
    // Bounded by the deadline; the delay doubles up to 50 ms.
    for (;;) {
      this.connection.pragma('busy_timeout = 0');
      try {
        await sql`begin immediate`.execute(conn);
        return;
      } catch (err) {
        if (!isBusy(err) || Date.now() >= deadline) throw err;
      } finally {
        this.connection.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /**
   * The hot path of every call: one append per group commit. Through kysely it costs a query
   * compilation, a statement preparation and several promise hops per statement (about 2 ms of
   * CPU per commit measured by the benchmark); here it is three prepared statements in one
   * synchronous `BEGIN IMMEDIATE` transaction. When another connection holds the write lock,
   * or a kysely transaction (a prune) is open on this one, the general path waits for it
   * asynchronously instead (see writeTransaction).
   */
  override async appendAudit(rows: readonly AuditRowInput[], seal: AuditSealer): Promise<AuditRow[]> {
    if (rows.length === 0 || !this.connection.open || this.connection.inTransaction) return super.appendAudit(rows, seal);
    rows.forEach((row, i) => checkAuditInput(row, i));
    const append = this.appendNow();
    append.noWait.get();
    try {
      return append.run.immediate(rows, seal);
    } catch (err) {
      if (!isBusy(err)) throw err;
    } finally {
      append.restoreWait.get();
    }
    return super.appendAudit(rows, seal);
  }

  private appendNowValue: PreparedAppend | undefined;

  /**
   * Prepared once, on first use: the tables exist only after migration. The busy_timeout
   * switches are prepared too: `pragma()` compiles its statement on every call (~15 µs each,
   * twice per commit, in the benchmark's profile).
   */
  private appendNow(): PreparedAppend {
    if (this.appendNowValue !== undefined) return this.appendNowValue;
    const columns = Object.keys(toStoredRow(PROBE_ROW, 0, '', ''));
    const head = this.connection.prepare('SELECT last_seq, last_hash FROM gatehouse_audit_head WHERE id = 1');
    const insert = this.connection.prepare(`INSERT INTO gatehouse_audit (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`);
    const moveHead = this.connection.prepare('UPDATE gatehouse_audit_head SET last_seq = @last_seq, last_hash = @last_hash WHERE id = 1');
    const run = this.connection.transaction((rows: readonly AuditRowInput[], seal: AuditSealer): AuditRow[] => {
      const written = sealRows(head.get() as { last_seq: number | bigint; last_hash: string } | undefined, rows, seal);
      for (const row of written) insert.run(toStoredRow(row, row.seq, row.prevHash, row.hash));
      const last = written[written.length - 1]!;
      moveHead.run({ last_seq: last.seq, last_hash: encodeText(last.hash) });
      return written;
    });
    this.appendNowValue = {
      run,
      noWait: this.connection.prepare('PRAGMA busy_timeout = 0'),
      restoreWait: this.connection.prepare(`PRAGMA busy_timeout = ${Math.trunc(this.busyTimeoutMs)}`),
    };
    return this.appendNowValue;
  }

  protected async engineCheck(): Promise<CheckResult> {
    let messages: string[];
    try {
      const result = await sql<{ integrity_check: string }>`pragma integrity_check`.execute(this.db);
      messages = result.rows.map((row) => row.integrity_check);
    } catch (err) {
      // A damaged header or b-tree can stop the check itself; that is its verdict too.
      if (isCorrupt(err)) return { ok: false, detail: `PRAGMA integrity_check: ${(err as Error).message}` };
      throw err;
    }
    if (messages.length === 1 && messages[0] === 'ok') return { ok: true, detail: 'PRAGMA integrity_check: ok' };
    return { ok: false, detail: `PRAGMA integrity_check: ${messages.slice(0, 5).join(' | ')}${messages.length > 5 ? ` (+${messages.length - 5} more)` : ''}` };
  }

  protected async release(): Promise<void> {
    // kysely's SQLite driver closes the connection; SQLite checkpoints and removes the WAL.
    await this.db.destroy();
  }
}

interface PreparedAppend {
  run: BetterSqlite3.Transaction<(rows: readonly AuditRowInput[], seal: AuditSealer) => AuditRow[]>;
  noWait: BetterSqlite3.Statement;
  restoreWait: BetterSqlite3.Statement;
}

function sqliteCode(err: unknown): string {
  return err instanceof BetterSqlite3.SqliteError ? err.code : '';
}

function isBusy(err: unknown): boolean {
  return sqliteCode(err).startsWith('SQLITE_BUSY');
}

function isCorrupt(err: unknown): boolean {
  const code = sqliteCode(err);
  return code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
}

/** Any valid row: only its column names are used, to build the prepared insert. */
const PROBE_ROW: AuditRowInput = {
  time: 0, kind: 'call', requestId: '', sessionId: null, traceId: null, user: null, agent: null, tenant: null, target: null, tool: null,
  toolVersion: null, method: '', argsHash: null, args: null, outcome: '', errorType: null, latencyMs: 0, bytesIn: 0, bytesOut: 0, targetVersion: null,
};
