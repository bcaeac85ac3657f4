/**
 * The upstream credential table (`gatehouse_upstream_credentials`, migration 0005): rows of the
 * credential vault, one per tenant × target × subject × kind. This module moves envelopes and
 * metadata; it never sees a key or a plaintext (src/vault/ encrypts before anything lands
 * here). Queries are written once with kysely and serve SQLite and PostgreSQL alike.
 */
import type { ColumnType, Expression, ExpressionBuilder, Kysely, Selectable, SqlBool } from 'kysely';
import type { Database } from './audit-table.ts';
import { decodeNullableText, decodeText, encodeNullableText, encodeText } from './text-codec.ts';

/** `bigint` columns: node-postgres returns int8 as a string, better-sqlite3 as a number. */
type NullableBigIntColumn = ColumnType<number | string | null, number | null, number | null>;
type BigIntColumn = ColumnType<number | string, number, number>;

interface UpstreamCredentialsTable {
  tenant: string;
  target: string;
  subject: string;
  kind: string;
  key_id: string;
  ciphertext: string;
  status: string;
  expires_at: NullableBigIntColumn;
  refresh_at: NullableBigIntColumn;
  failures: number;
  last_error: string | null;
  updated_at: BigIntColumn;
}

// A type alias, not an interface: kysely's withTables needs an indexable type.
type CredentialDatabase = {
  gatehouse_upstream_credentials: UpstreamCredentialsTable;
};

/** A row's primary key. The vault narrows the strings (subject and kind) to its own types. */
export interface CredentialRowKey {
  tenant: string;
  target: string;
  subject: string;
  kind: string;
}

/** A row without its ciphertext. Times are epoch milliseconds. */
export interface CredentialRowSummary extends CredentialRowKey {
  keyId: string;
  status: string;
  expiresAt: number | null;
  refreshAt: number | null;
  failures: number;
  lastError: string | null;
  updatedAt: number;
}

export interface CredentialRow extends CredentialRowSummary {
  /** The vault's envelope (`v1.<keyId>.…`). */
  ciphertext: string;
}

export interface CredentialRowFilter {
  tenant?: string | undefined;
  target?: string | undefined;
  subject?: string | undefined;
  kind?: string | undefined;
}

/** What the credential vault needs from storage. */
export interface CredentialTable {
  find(key: CredentialRowKey): Promise<CredentialRow | undefined>;
  /** Insert, or replace every column of the row with this key. */
  upsert(row: CredentialRow): Promise<void>;
  /** Update the given metadata and `updatedAt`; false when no row has this key. */
  updateMeta(key: CredentialRowKey, changes: Partial<Pick<CredentialRowSummary, 'status' | 'refreshAt' | 'failures' | 'lastError'>> & { updatedAt: number }): Promise<boolean>;
  delete(key: CredentialRowKey): Promise<boolean>;
  /** Delete the rows matching every given field; returns how many. */
  deleteWhere(filter: CredentialRowFilter): Promise<number>;
  /** Summaries matching every given field, in key order. */
  list(filter: CredentialRowFilter): Promise<CredentialRowSummary[]>;
  /** `oauth-tokens` rows with status `active` and `refreshAt` at or before `now`, earliest first. */
  due(now: number, limit: number): Promise<CredentialRowSummary[]>;
  /** Move a due row's `refresh_at` from `expected` to `until`, only if still `expected` and active: true when this caller won it. */
  claim(key: CredentialRowKey, expected: number, until: number, updatedAt: number): Promise<boolean>;
  /** Up to `limit` rows whose key id is not `keyId`, after `after` in key order (keyset paging). */
  pageNotUnderKey(keyId: string, after: CredentialRowKey | undefined, limit: number): Promise<CredentialRow[]>;
  /**
   * Replace a row's envelope only if it still holds `from`: a write that landed since it was
   * read (a refresh storing new tokens) wins over a re-encryption of the old value.
   */
  replaceEnvelope(key: CredentialRowKey, from: { keyId: string; ciphertext: string }, to: { keyId: string; ciphertext: string }): Promise<boolean>;
  /** Row counts per key id. */
  countByKey(): Promise<Array<{ keyId: string; rows: number }>>;
}

const SUMMARY_COLUMNS = ['tenant', 'target', 'subject', 'kind', 'key_id', 'status', 'expires_at', 'refresh_at', 'failures', 'last_error', 'updated_at'] as const;

type SummaryColumns = Pick<Selectable<UpstreamCredentialsTable>, (typeof SUMMARY_COLUMNS)[number]>;

const nullableNumber = (value: number | string | null): number | null => (value === null ? null : Number(value));

function summaryOf(row: SummaryColumns): CredentialRowSummary {
  return {
    tenant: decodeText(row.tenant),
    target: decodeText(row.target),
    subject: decodeText(row.subject),
    kind: decodeText(row.kind),
    keyId: row.key_id,
    status: decodeText(row.status),
    expiresAt: nullableNumber(row.expires_at),
    refreshAt: nullableNumber(row.refresh_at),
    failures: Number(row.failures),
    lastError: decodeNullableText(row.last_error),
    updatedAt: Number(row.updated_at),
  };
}

/** Stored text passes through text-codec.ts (user ids may hold what PostgreSQL refuses); it is injective, so equality holds. */
function storedKey(key: CredentialRowKey): CredentialRowKey {
  return { tenant: encodeText(key.tenant), target: encodeText(key.target), subject: encodeText(key.subject), kind: encodeText(key.kind) };
}

/** The table over the store's kysely handle of a migrated database. */
export function createCredentialTable(handle: Kysely<Database>): CredentialTable {
  const db = handle.withTables<CredentialDatabase>();
  const table = 'gatehouse_upstream_credentials' as const;

  type Where = (eb: ExpressionBuilder<Database & CredentialDatabase, typeof table>) => Expression<SqlBool>;
  const byKey = (key: CredentialRowKey): Where => {
    const k = storedKey(key);
    return (eb) => eb.and({ tenant: k.tenant, target: k.target, subject: k.subject, kind: k.kind });
  };
  /** Every given field must match; an empty filter matches every row. */
  const matching = (filter: CredentialRowFilter): Where => {
    const fields: Partial<CredentialRowKey> = {};
    if (filter.tenant !== undefined) fields.tenant = encodeText(filter.tenant);
    if (filter.target !== undefined) fields.target = encodeText(filter.target);
    if (filter.subject !== undefined) fields.subject = encodeText(filter.subject);
    if (filter.kind !== undefined) fields.kind = encodeText(filter.kind);
    return (eb) => (Object.keys(fields).length === 0 ? eb.lit(true) : eb.and(fields));
  };

  return {
    async find(key) {
      const row = await db.selectFrom(table).selectAll().where(byKey(key)).executeTakeFirst();
      return row === undefined ? undefined : { ...summaryOf(row), ciphertext: row.ciphertext };
    },
    async upsert(row) {
      const k = storedKey(row);
      const values = {
        key_id: row.keyId,
        ciphertext: row.ciphertext,
        status: encodeText(row.status),
        expires_at: row.expiresAt,
        refresh_at: row.refreshAt,
        failures: row.failures,
        last_error: encodeNullableText(row.lastError),
        updated_at: row.updatedAt,
      };
      // INSERT … ON CONFLICT DO UPDATE: the same text on SQLite (3.24+) and PostgreSQL.
      await db
        .insertInto(table)
        .values({ ...k, ...values })
        .onConflict((oc) => oc.columns(['tenant', 'target', 'subject', 'kind']).doUpdateSet(values))
        .execute();
    },
    async updateMeta(key, changes) {
      const set: Partial<{ status: string; refresh_at: number | null; failures: number; last_error: string | null; updated_at: number }> = { updated_at: changes.updatedAt };
      if (changes.status !== undefined) set.status = encodeText(changes.status);
      if (changes.refreshAt !== undefined) set.refresh_at = changes.refreshAt;
      if (changes.failures !== undefined) set.failures = changes.failures;
      if (changes.lastError !== undefined) set.last_error = encodeNullableText(changes.lastError);
      const result = await db.updateTable(table).set(set).where(byKey(key)).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async delete(key) {
      const result = await db.deleteFrom(table).where(byKey(key)).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
    async deleteWhere(filter) {
      const result = await db.deleteFrom(table).where(matching(filter)).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
    async list(filter) {
      const rows = await db.selectFrom(table).select(SUMMARY_COLUMNS).where(matching(filter)).orderBy('tenant').orderBy('target').orderBy('subject').orderBy('kind').execute();
      return rows.map(summaryOf);
    },
    async due(now, limit) {
      const rows = await db
        .selectFrom(table)
        .select(SUMMARY_COLUMNS)
        .where('status', '=', 'active')
        .where('refresh_at', '<=', now)
        .where('kind', '=', 'oauth-tokens')
        .orderBy('refresh_at')
        .limit(limit)
        .execute();
      return rows.map(summaryOf);
    },
    async claim(key, expected, until, updatedAt) {
      const result = await db
        .updateTable(table)
        .set({ refresh_at: until, updated_at: updatedAt })
        .where(byKey(key))
        .where('status', '=', 'active')
        .where('refresh_at', '=', expected)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async pageNotUnderKey(keyId, after, limit) {
      let qb = db.selectFrom(table).selectAll().where('key_id', '<>', keyId);
      if (after !== undefined) {
        const k = storedKey(after);
        // Row values (SQLite 3.15+, PostgreSQL): strictly after the last row of the previous page.
        qb = qb.where(({ eb, refTuple, tuple }) => eb(refTuple('tenant', 'target', 'subject', 'kind'), '>', tuple(k.tenant, k.target, k.subject, k.kind)));
      }
      const rows = await qb.orderBy('tenant').orderBy('target').orderBy('subject').orderBy('kind').limit(limit).execute();
      return rows.map((row) => ({ ...summaryOf(row), ciphertext: row.ciphertext }));
    },
    async replaceEnvelope(key, from, to) {
      const result = await db
        .updateTable(table)
        .set({ key_id: to.keyId, ciphertext: to.ciphertext })
        .where(byKey(key))
        .where('key_id', '=', from.keyId)
        .where('ciphertext', '=', from.ciphertext)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async countByKey() {
      const rows = await db
        .selectFrom(table)
        .select((eb) => ['key_id', eb.fn.countAll().as('rows')])
        .groupBy('key_id')
        .orderBy('key_id')
        .execute();
      return rows.map((row) => ({ keyId: row.key_id, rows: Number(row.rows) }));
    },
  };
}
