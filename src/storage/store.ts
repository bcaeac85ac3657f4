/**
 * The one storage interface. Two implementations share one set of migrations: SQLite (the
 * embedded default, a WAL file under the data directory) and PostgreSQL (several replicas).
 * Everything above this file speaks only these types; no SQL leaves `src/storage/`.
 */

/** One audit row: a call or an admin action, as written. Times are epoch milliseconds. */
export interface AuditRow {
  /** Position in the chain, assigned by the store on append (1, 2, …). */
  seq: number;
  time: number;
  /** `call` for agent messages, `admin` for admin actions. */
  kind: 'call' | 'admin';
  requestId: string;
  sessionId: string | null;
  traceId: string | null;
  user: string | null;
  agent: string | null;
  tenant: string | null;
  target: string | null;
  /** Exposed tool, prompt or resource name; the admin action for `admin` rows. */
  tool: string | null;
  toolVersion: string | null;
  method: string;
  /** SHA-256 (hex) of the canonical JSON of the arguments; null when there were none. */
  argsHash: string | null;
  /** The arguments with secrets redacted, as JSON text, when policy keeps them. */
  args: string | null;
  outcome: string;
  errorType: string | null;
  latencyMs: number;
  bytesIn: number;
  bytesOut: number;
  targetVersion: string | null;
  /** Hash of the previous row (hex); the first row chains to 64 zeros. */
  prevHash: string;
  /** SHA-256 (hex) over prevHash and this row's canonical content. */
  hash: string;
}

/** What a writer hands the store; the store assigns `seq` and seals the chain. */
export type AuditRowInput = Omit<AuditRow, 'seq' | 'prevHash' | 'hash'>;

/** Computes a row's `hash` from the previous row's hash and the row's content. */
export type AuditSealer = (prevHash: string, row: AuditRowInput) => string;

/** The `prevHash` of the very first row. */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditQuery {
  from?: number;
  to?: number;
  user?: string;
  agent?: string;
  tool?: string;
  outcome?: string;
  tenant?: string;
  /** Rows with seq greater than this (paging). */
  afterSeq?: number;
  limit?: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Bring the schema to the current version; refuses a database written by a newer one. */
  migrate(): Promise<{ from: number; to: number }>;
  /**
   * Append rows in one transaction, in order (group commit); resolves with the written rows
   * once they are durable. The chain is sealed inside the transaction, under the database's
   * write lock: the last row's hash is read there and each row gets `seal(prevHash, row)`.
   * So several gateway processes on one database (replicas on PostgreSQL) extend one chain.
   */
  appendAudit(rows: readonly AuditRowInput[], seal: AuditSealer): Promise<AuditRow[]>;
  /** The newest row (for continuing the chain after a restart), or undefined when empty. */
  lastAudit(): Promise<AuditRow | undefined>;
  /** Rows matching `query`, in seq order. */
  queryAudit(query: AuditQuery): AsyncIterable<AuditRow>;
  /** Delete rows older than `before` (epoch ms) and/or beyond the newest `keep`; returns how many. */
  pruneAudit(options: { before?: number; keep?: number }): Promise<number>;
  /** A cheap liveness probe for fail-closed decisions. */
  ping(): Promise<void>;
  /** Database-level integrity check (SQLite `PRAGMA integrity_check`; PostgreSQL: a consistency query). */
  integrityCheck(): Promise<{ ok: boolean; detail: string }>;
  close(): Promise<void>;
}
