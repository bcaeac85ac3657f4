/**
 * The store for several replicas: PostgreSQL through a node-postgres pool. Appends lock the
 * chain head row (`SELECT … FOR UPDATE`), so replicas extend one chain in commit order.
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './audit-table.ts';
import { SqlStore, type CheckResult } from './sql-store.ts';

export class PostgresStore extends SqlStore {
  readonly kind = 'postgres' as const;

  private constructor(db: Kysely<Database>) {
    super(db, true);
  }

  /** Create the pool; connections open lazily, so this never fails on an unreachable server. */
  static open(config: pg.PoolConfig): PostgresStore {
    const pool = new pg.Pool({ application_name: 'gatehouse', ...config });
    // An idle pooled connection that dies (server restart, network cut) is reported here; without
    // a listener it would crash the process. The pool drops it and the next query reconnects,
    // which is how the store recovers by itself when the database returns.
    pool.on('error', () => {});
    return new PostgresStore(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }));
  }

  protected writeTransaction<T>(work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  /**
   * amcheck when the database has it (`CREATE EXTENSION amcheck`, which needs a superuser once):
   * `verify_heapam` on the audit tables and `bt_index_check(…, heapallindexed)` on each of
   * their b-tree indexes, which finds corrupt pages and index entries missing for heap rows.
   * Without it, PostgreSQL offers no page-level check over SQL; the shared chain check (seq
   * contiguity and head consistency) still runs, and the detail says amcheck was not used.
   */
  protected async engineCheck(): Promise<CheckResult> {
    const installed = await sql<{ n: number }>`select count(*)::int as n from pg_extension where extname = 'amcheck'`.execute(this.db);
    if (Number(installed.rows[0]?.n ?? 0) === 0) return { ok: true, detail: 'amcheck: not installed in this database (page-level check skipped)' };
    try {
      const heap = await sql<{ relname: string; blkno: number; msg: string }>`
        select c.relname, v.blkno, v.msg
        from (values ('gatehouse_audit'::regclass), ('gatehouse_audit_head'::regclass)) as t(rel)
        join pg_class c on c.oid = t.rel
        cross join lateral verify_heapam(t.rel) v
        limit 5`.execute(this.db);
      if (heap.rows.length > 0) return { ok: false, detail: `amcheck verify_heapam: ${heap.rows.map((r) => `${r.relname} block ${r.blkno}: ${r.msg}`).join(' | ')}` };
      const indexes = await sql<{ relname: string }>`
        select c.relname, bt_index_check(index => i.indexrelid, heapallindexed => true)
        from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam
        where i.indrelid in ('gatehouse_audit'::regclass, 'gatehouse_audit_head'::regclass) and am.amname = 'btree'`.execute(this.db);
      return { ok: true, detail: `amcheck: heap of 2 tables and ${indexes.rows.length} b-tree indexes verified` };
    } catch (err) {
      // bt_index_check raises on the first corruption it finds; lacking EXECUTE is not corruption.
      const message = err instanceof Error ? err.message : String(err);
      if (/permission denied/i.test(message)) return { ok: true, detail: `amcheck: not permitted for this user (${message})` };
      return { ok: false, detail: `amcheck: ${message}` };
    }
  }

  protected async release(): Promise<void> {
    // kysely's PostgreSQL driver ends the pool.
    await this.db.destroy();
  }
}
