// A Store held in memory, with a switch that makes it fail: for the fault-injection tests of
// the audit writer (an audit store that goes away and comes back). The real stores run the
// same writer in the storage and audit integration tests.
import { GENESIS_HASH, type AuditQuery, type AuditRow, type AuditRowInput, type AuditSealer, type Store } from '../../src/storage/store.ts';

export class MemoryStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly rows: AuditRow[] = [];
  /** While true, every operation fails like an unreachable database. */
  down = false;
  commits = 0;

  private check(): void {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
  }

  async migrate(): Promise<{ from: number; to: number }> {
    return { from: 1, to: 1 };
  }

  async appendAudit(rows: readonly AuditRowInput[], seal: AuditSealer): Promise<AuditRow[]> {
    this.check();
    const written: AuditRow[] = [];
    let prev = this.rows.at(-1)?.hash ?? GENESIS_HASH;
    for (const row of rows) {
      const hash = seal(prev, row);
      const full = { ...row, seq: this.rows.length + written.length + 1, prevHash: prev, hash };
      written.push(full);
      prev = hash;
    }
    this.rows.push(...written);
    this.commits++;
    return written;
  }

  async lastAudit(): Promise<AuditRow | undefined> {
    this.check();
    return this.rows.at(-1);
  }

  async *queryAudit(query: AuditQuery): AsyncIterable<AuditRow> {
    this.check();
    for (const row of this.rows) if (row.seq > (query.afterSeq ?? 0)) yield row;
  }

  async pruneAudit(_options: { before?: number; keep?: number }): Promise<number> {
    return 0;
  }

  async ping(): Promise<void> {
    this.check();
  }

  async integrityCheck(): Promise<{ ok: boolean; detail: string }> {
    return { ok: true, detail: 'memory' };
  }

  async close(): Promise<void> {}
}
