/**
 * What the SQLite and PostgreSQL stores share: every query is written once with kysely. The
 * subclasses supply only what differs by engine: how a write transaction takes the database's
 * write lock, the engine's own integrity check, and how resources are released.
 */
import { sql, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { AuditQuery, AuditRow, AuditRowInput, AuditSealer, Store } from './store.ts';
import { checkAuditInput, fromStoredRow, sealRows, toStoredRow, type Database } from './audit-table.ts';
import { migrateSchema, type SqlDialect } from './migrations.ts';
import { encodeText } from './text-codec.ts';
import { SqlApiKeyStore, type ApiKeyStore } from './api-key-table.ts';
import { createOAuthStore, type OAuthStore } from './oauth-store.ts';
import { sharedSecret } from './gateway-secret-table.ts';
import { createCredentialTable, type CredentialTable } from './credential-table.ts';

/** Rows per multi-row INSERT: 23 columns × 200 stays far below both engines' parameter limits. */
const INSERT_CHUNK = 200;
/** A query page holds at most this many rows… */
const PAGE_ROWS = 500;
/** …and stops early once their arguments reach this many bytes, so huge rows never pile up. */
const PAGE_ARG_BYTES = 8 * 1024 * 1024;
/** Rows deleted per statement when pruning: the write lock is held briefly, appends interleave. */
const PRUNE_BATCH = 5_000;

export interface CheckResult {
  ok: boolean;
  detail: string;
}

export abstract class SqlStore implements Store {
  abstract readonly kind: SqlDialect;
  private closing: Promise<void> | undefined;

  protected constructor(
    protected readonly db: Kysely<Database>,
    /** PostgreSQL locks the chain head row (`for update`); SQLite's write lock already covers it. */
    private readonly lockHeadRow: boolean,
  ) {}

  /** Run `work` in a transaction that holds the write lock from its first statement. */
  protected abstract writeTransaction<T>(work: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  /** The engine's own check of its files or pages. */
  protected abstract engineCheck(): Promise<CheckResult>;
  /** Release connections and files; called once. */
  protected abstract release(): Promise<void>;

  /** The authorization server's tables (migration 0002_oauth) on this store's connection. */
  oauthStore(): OAuthStore {
    this.assertOpen();
    return createOAuthStore(this.db, this.kind);
  }

  /** The API key table (migration 0003_api_keys) on this store's connection. */
  apiKeyStore(): ApiKeyStore {
    this.assertOpen();
    return new SqlApiKeyStore(this.db);
  }

  /** The credential vault's rows (migration 0005_upstream_credentials) on this store's connection. */
  credentialTable(): CredentialTable {
    this.assertOpen();
    return createCredentialTable(this.db);
  }

  /**
   * A gateway-wide secret (migration 0004_gateway_secret), generated on first use and then the
   * same for every process on this database.
   */
  async sharedSecret(name: string, generate: () => string, now: number): Promise<string> {
    this.assertOpen();
    return sharedSecret(this.db, name, generate, now);
  }

  async migrate(): Promise<{ from: number; to: number }> {
    this.assertOpen();
    return migrateSchema(this.db, this.kind);
  }

  async appendAudit(rows: readonly AuditRowInput[], seal: AuditSealer): Promise<AuditRow[]> {
    this.assertOpen();
    if (rows.length === 0) return [];
    rows.forEach((row, i) => checkAuditInput(row, i));
    return this.writeTransaction(async (trx) => {
      // The head row is read under the write lock, so concurrent appenders (other processes,
      // other replicas) extend one chain with gap-free seqs that commit in seq order. Readers
      // paging by `afterSeq` therefore never skip a row that commits late.
      let head = trx.selectFrom('gatehouse_audit_head').select(['last_seq', 'last_hash']).where('id', '=', 1);
      if (this.lockHeadRow) head = head.forUpdate();
      const written = sealRows(await head.executeTakeFirst(), rows, seal);
      for (let i = 0; i < written.length; i += INSERT_CHUNK) {
        const chunk = written.slice(i, i + INSERT_CHUNK);
        await trx.insertInto('gatehouse_audit').values(chunk.map((row) => toStoredRow(row, row.seq, row.prevHash, row.hash))).execute();
      }
      const last = written[written.length - 1]!;
      await trx.updateTable('gatehouse_audit_head').set({ last_seq: last.seq, last_hash: encodeText(last.hash) }).where('id', '=', 1).execute();
      return written;
    });
  }

  async lastAudit(): Promise<AuditRow | undefined> {
    this.assertOpen();
    const row = await this.db.selectFrom('gatehouse_audit').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
    return row === undefined ? undefined : fromStoredRow(row);
  }

  /**
   * Keyset paging (`seq > last seen`), one short query per page: no cursor or transaction stays
   * open while the consumer is slow, so a long export never holds back WAL checkpoints or a
   * pooled connection. Each page first reads only sizes, then loads at most PAGE_ARG_BYTES.
   */
  async *queryAudit(query: AuditQuery): AsyncIterable<AuditRow> {
    this.assertOpen();
    let after = query.afterSeq ?? 0;
    let remaining = query.limit ?? Number.POSITIVE_INFINITY;
    while (remaining > 0) {
      const want = Math.min(PAGE_ROWS, remaining);
      const sizes = await this.filtered(query)
        .select(['seq', sql<number | string | null>`octet_length(args)`.as('args_bytes')])
        .where('seq', '>', after)
        .orderBy('seq')
        .limit(want)
        .execute();
      if (sizes.length === 0) return;
      let take = 0;
      let bytes = 0;
      for (const size of sizes) {
        take += 1;
        bytes += Number(size.args_bytes ?? 0);
        if (bytes >= PAGE_ARG_BYTES) break;
      }
      const last = Number(sizes[take - 1]!.seq);
      const rows = await this.filtered(query).selectAll().where('seq', '>', after).where('seq', '<=', last).orderBy('seq').execute();
      for (const row of rows) yield fromStoredRow(row);
      remaining -= rows.length;
      after = last;
      if (take === sizes.length && sizes.length < want) return;
    }
  }

  private filtered(query: AuditQuery): SelectQueryBuilder<Database, 'gatehouse_audit', object> {
    let qb = this.db.selectFrom('gatehouse_audit');
    if (query.from !== undefined) qb = qb.where('time', '>=', query.from);
    if (query.to !== undefined) qb = qb.where('time', '<', query.to);
    // Stored text is encoded (text-codec.ts); the encoding is injective, so equality holds.
    if (query.user !== undefined) qb = qb.where('user_id', '=', encodeText(query.user));
    if (query.agent !== undefined) qb = qb.where('agent_id', '=', encodeText(query.agent));
    if (query.tenant !== undefined) qb = qb.where('tenant_id', '=', encodeText(query.tenant));
    if (query.tool !== undefined) qb = qb.where('tool', '=', encodeText(query.tool));
    if (query.outcome !== undefined) qb = qb.where('outcome', '=', encodeText(query.outcome));
    return qb;
  }

  /**
   * Retention removes a prefix of the chain, never rows in its middle: by age it stops at the
   * first row at or after `before` (a few older rows after it wait for a later prune), so
   * what remains always verifies as an unbroken chain.
   */
  async pruneAudit(options: { before?: number; keep?: number }): Promise<number> {
    this.assertOpen();
    let cutoff = 0;
    if (options.keep !== undefined) {
      if (!Number.isSafeInteger(options.keep) || options.keep < 0) throw new TypeError(`keep must be a non-negative integer, got ${options.keep}`);
      const edge = await this.db.selectFrom('gatehouse_audit').select('seq').orderBy('seq', 'desc').limit(1).offset(options.keep).executeTakeFirst();
      if (edge !== undefined) cutoff = Math.max(cutoff, Number(edge.seq));
    }
    if (options.before !== undefined) {
      const firstKept = await this.db.selectFrom('gatehouse_audit').select('seq').where('time', '>=', options.before).orderBy('seq').limit(1).executeTakeFirst();
      cutoff = Math.max(cutoff, firstKept === undefined ? await this.maxSeq() : Number(firstKept.seq) - 1);
    }
    let deleted = 0;
    // Bounded: each pass deletes every row up to `upTo`, so `first` grows by a batch or more.
    for (;;) {
      const first = await this.db.selectFrom('gatehouse_audit').select('seq').orderBy('seq').limit(1).executeTakeFirst();
      if (first === undefined || Number(first.seq) > cutoff) return deleted;
      const upTo = Math.min(cutoff, Number(first.seq) + PRUNE_BATCH - 1);
      const result = await this.writeTransaction((trx) => trx.deleteFrom('gatehouse_audit').where('seq', '<=', upTo).executeTakeFirst());
      deleted += Number(result.numDeletedRows);
    }
  }

  private async maxSeq(): Promise<number> {
    const row = await this.db.selectFrom('gatehouse_audit').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    return row === undefined ? 0 : Number(row.seq);
  }

  /** Reads the chain head: proves the database answers and holds a migrated schema. */
  async ping(): Promise<void> {
    this.assertOpen();
    await this.db.selectFrom('gatehouse_audit_head').select('last_seq').where('id', '=', 1).executeTakeFirstOrThrow();
  }

  async integrityCheck(): Promise<CheckResult> {
    this.assertOpen();
    const engine = await this.engineCheck();
    // A damaged file can make the chain queries fail too; the engine's verdict says it all.
    if (!engine.ok) return engine;
    const chain = await this.chainCheck();
    return { ok: engine.ok && chain.ok, detail: `${engine.detail}; ${chain.detail}` };
  }

  /**
   * The chain's bookkeeping, the same on both engines: one head row; the rows form one
   * contiguous seq range (retention only removes a prefix) that ends at the head, whose hash
   * the head repeats. A row lost or removed from the middle, or a torn append, fails here.
   */
  private async chainCheck(): Promise<CheckResult> {
    const heads = await this.db.selectFrom('gatehouse_audit_head').select(['last_seq', 'last_hash']).execute();
    if (heads.length !== 1) return { ok: false, detail: `chain: expected one head row, found ${heads.length}` };
    const head = { seq: Number(heads[0]!.last_seq), storedHash: heads[0]!.last_hash };
    const stats = await this.db
      .selectFrom('gatehouse_audit')
      .select((eb) => [eb.fn.countAll().as('rows'), eb.fn.min('seq').as('first'), eb.fn.max('seq').as('last')])
      .executeTakeFirstOrThrow();
    const rows = Number(stats.rows);
    if (rows === 0) return { ok: true, detail: `chain: no rows, head at seq ${head.seq}` };
    const first = Number(stats.first);
    const last = Number(stats.last);
    if (last !== head.seq) return { ok: false, detail: `chain: the newest row is seq ${last} but the head says ${head.seq}` };
    if (rows !== last - first + 1) {
      const gap = await sql<{ missing: number | string }>`
        select a.seq + 1 as missing from gatehouse_audit a
        where a.seq < ${last} and not exists (select 1 from gatehouse_audit b where b.seq = a.seq + 1)
        order by a.seq limit 1`.execute(this.db);
      return { ok: false, detail: `chain: seq ${first}..${last} holds ${rows} rows; seq ${Number(gap.rows[0]?.missing)} is the first missing` };
    }
    const newest = await this.db.selectFrom('gatehouse_audit').select('hash').where('seq', '=', last).executeTakeFirstOrThrow();
    if (newest.hash !== head.storedHash) return { ok: false, detail: `chain: the hash of seq ${last} differs from the head's` };
    return { ok: true, detail: `chain: ${rows} rows, seq ${first}..${last} contiguous, head matches` };
  }

  /** Idempotent; every other method refuses once closing has begun. */
  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new Error(`the ${this.kind} store is closed`);
  }
}
