/**
 * The audit tables as kysely sees them, and the mapping between their rows and `AuditRow`.
 * Every text column goes through the text codec; numbers are checked before they are written,
 * because a value the database would round or refuse must fail loudly here, not later as a
 * hash mismatch in `audit verify`.
 */
import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { AuditRow, AuditRowInput, AuditSealer } from './store.ts';
import { decodeNullableText, decodeText, encodeNullableText, encodeText } from './text-codec.ts';

/** `bigint` columns: node-postgres returns int8 as a string, better-sqlite3 as a number. */
type BigIntColumn = ColumnType<number | string, number, number>;

export interface AuditTable {
  seq: BigIntColumn;
  time: BigIntColumn;
  kind: string;
  request_id: string;
  session_id: string | null;
  trace_id: string | null;
  user_id: string | null;
  agent_id: string | null;
  tenant_id: string | null;
  target: string | null;
  tool: string | null;
  tool_version: string | null;
  method: string;
  args_hash: string | null;
  args: string | null;
  outcome: string;
  error_type: string | null;
  latency_ms: number;
  bytes_in: BigIntColumn;
  bytes_out: BigIntColumn;
  target_version: string | null;
  prev_hash: string;
  hash: string;
}

/** One row: where the chain ends, so appends after a full prune still continue it. */
export interface AuditHeadTable {
  id: number;
  last_seq: BigIntColumn;
  last_hash: string;
}

export interface Database {
  gatehouse_audit: AuditTable;
  gatehouse_audit_head: AuditHeadTable;
}

export type StoredAuditRow = Selectable<AuditTable>;

function checkInteger(value: number, field: string, index: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`audit row ${index}: ${field} must be a non-negative safe integer, got ${value}`);
  return value;
}

/** Validate one row before anything is written; throws TypeError naming the field. */
export function checkAuditInput(row: AuditRowInput, index: number): void {
  checkInteger(row.time, 'time', index);
  checkInteger(row.bytesIn, 'bytesIn', index);
  checkInteger(row.bytesOut, 'bytesOut', index);
  // Latency may be fractional (monotonic clocks); a double holds any finite JS number exactly.
  if (!Number.isFinite(row.latencyMs)) throw new TypeError(`audit row ${index}: latencyMs must be finite, got ${row.latencyMs}`);
  if (row.kind !== 'call' && row.kind !== 'admin') throw new TypeError(`audit row ${index}: kind must be call or admin`);
}

export function toStoredRow(row: AuditRowInput, seq: number, prevHash: string, hash: string): Insertable<AuditTable> {
  return {
    seq,
    time: row.time,
    kind: row.kind,
    request_id: encodeText(row.requestId),
    session_id: encodeNullableText(row.sessionId),
    trace_id: encodeNullableText(row.traceId),
    user_id: encodeNullableText(row.user),
    agent_id: encodeNullableText(row.agent),
    tenant_id: encodeNullableText(row.tenant),
    target: encodeNullableText(row.target),
    tool: encodeNullableText(row.tool),
    tool_version: encodeNullableText(row.toolVersion),
    method: encodeText(row.method),
    args_hash: encodeNullableText(row.argsHash),
    args: encodeNullableText(row.args),
    outcome: encodeText(row.outcome),
    error_type: encodeNullableText(row.errorType),
    latency_ms: row.latencyMs,
    bytes_in: row.bytesIn,
    bytes_out: row.bytesOut,
    target_version: encodeNullableText(row.targetVersion),
    prev_hash: encodeText(prevHash),
    hash: encodeText(hash),
  };
}

export function fromStoredRow(row: StoredAuditRow): AuditRow {
  return {
    seq: Number(row.seq),
    time: Number(row.time),
    // The column's CHECK constraint admits only these two.
    kind: row.kind === 'admin' ? 'admin' : 'call',
    requestId: decodeText(row.request_id),
    sessionId: decodeNullableText(row.session_id),
    traceId: decodeNullableText(row.trace_id),
    user: decodeNullableText(row.user_id),
    agent: decodeNullableText(row.agent_id),
    tenant: decodeNullableText(row.tenant_id),
    target: decodeNullableText(row.target),
    tool: decodeNullableText(row.tool),
    toolVersion: decodeNullableText(row.tool_version),
    method: decodeText(row.method),
    argsHash: decodeNullableText(row.args_hash),
    args: decodeNullableText(row.args),
    outcome: decodeText(row.outcome),
    errorType: decodeNullableText(row.error_type),
    latencyMs: Number(row.latency_ms),
    bytesIn: Number(row.bytes_in),
    bytesOut: Number(row.bytes_out),
    targetVersion: decodeNullableText(row.target_version),
    prevHash: decodeText(row.prev_hash),
    hash: decodeText(row.hash),
  };
}

/**
 * Seal `rows` onto the chain whose head is `head` (read under the write lock): each row gets
 * the next seq and `seal(prevHash, row)`. Both stores' append paths use this one loop.
 */
export function sealRows(head: { last_seq: number | bigint | string; last_hash: string } | undefined, rows: readonly AuditRowInput[], seal: AuditSealer): AuditRow[] {
  if (head === undefined) throw new Error('the audit chain head row is missing; run integrityCheck');
  let seq = Number(head.last_seq);
  let prevHash = decodeText(head.last_hash);
  const written: AuditRow[] = [];
  for (const row of rows) {
    seq += 1;
    const hash = seal(prevHash, row);
    written.push({ seq, ...row, prevHash, hash });
    prevHash = hash;
  }
  return written;
}
