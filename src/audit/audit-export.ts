/**
 * Exporting audit rows: JSONL (one row per line, every field) or CSV (RFC 4180 quoting, a
 * header line). Rows stream through; an export of millions of rows never sits in memory.
 * CSV cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) get a
 * leading `'`: arguments are attacker-controlled text.
 */
import type { AuditRow } from '../storage/store.ts';

export type ExportFormat = 'jsonl' | 'csv';

export const AUDIT_COLUMNS: ReadonlyArray<keyof AuditRow> = [
  'seq', 'time', 'kind', 'requestId', 'sessionId', 'traceId', 'user', 'agent', 'tenant', 'target', 'tool', 'toolVersion', 'method',
  'argsHash', 'args', 'outcome', 'errorType', 'latencyMs', 'bytesIn', 'bytesOut', 'targetVersion', 'prevHash', 'hash',
];

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'number' ? String(value) : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The export as a stream of text chunks, one per row (plus the CSV header). */
export async function* exportRows(rows: AsyncIterable<AuditRow>, format: ExportFormat): AsyncIterable<string> {
  if (format === 'csv') yield `${AUDIT_COLUMNS.join(',')}\r\n`;
  for await (const row of rows) {
    yield format === 'csv' ? `${AUDIT_COLUMNS.map((c) => csvCell(row[c])).join(',')}\r\n` : `${JSON.stringify(row)}\n`;
  }
}
