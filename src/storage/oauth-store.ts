/**
 * The authorization server's tables (migration 0002_oauth), written once with kysely for
 * SQLite and PostgreSQL: oidc-provider's models, signing and cookie keys, revocations and
 * accounts. The auth code above speaks only `OAuthStore`; no SQL leaves `src/storage/`.
 */
import type { ColumnType, Kysely } from 'kysely';
import type { Database } from './audit-table.ts';
import type { SqlDialect } from './migrations.ts';

/** `bigint` columns: node-postgres returns int8 as a string, better-sqlite3 as a number. */
type BigIntColumn = ColumnType<number | string, number, number>;
type NullableBigInt = ColumnType<number | string | null, number | null, number | null>;

interface ModelTable {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: NullableBigInt;
  consumed_at: NullableBigInt;
}

interface KeyTable {
  kid: string;
  purpose: string;
  material: string;
  created_at: BigIntColumn;
  retired_at: NullableBigInt;
}

interface RevocationTable {
  kind: string;
  id: string;
  expires_at: BigIntColumn;
}

interface AccountTable {
  id: string;
  tenant: string;
  roles: string;
  claims: string;
  updated_at: BigIntColumn;
}

export type OAuthTables = {
  gatehouse_oauth_model: ModelTable;
  gatehouse_oauth_key: KeyTable;
  gatehouse_oauth_revocation: RevocationTable;
  gatehouse_oauth_account: AccountTable;
};

/** One stored oidc-provider model instance. Times are epoch milliseconds. */
export interface StoredModel {
  payload: string;
  expiresAt: number | null;
  consumedAt: number | null;
}

export interface StoredKey {
  kid: string;
  purpose: 'sig' | 'cookie';
  /** A private JWK (JSON) for 'sig', a base64url secret for 'cookie'. Never logged. */
  material: string;
  createdAt: number;
  retiredAt: number | null;
}

export type RevocationKind = 'jti' | 'gid';

export interface StoredAccount {
  id: string;
  tenant: string;
  roles: string[];
  claims: Record<string, unknown>;
  updatedAt: number;
}

export interface OAuthStore {
  readonly dialect: SqlDialect;
  upsertModel(model: string, id: string, row: { payload: string; grantId: string | null; uid: string | null; userCode: string | null; expiresAt: number | null }): Promise<void>;
  /** The row, whether expired or not (the caller decides with its clock). */
  findModel(model: string, id: string): Promise<StoredModel | undefined>;
  findModelBy(model: string, column: 'uid' | 'user_code', value: string): Promise<(StoredModel & { id: string }) | undefined>;
  consumeModel(model: string, id: string, at: number): Promise<void>;
  destroyModel(model: string, id: string): Promise<void>;
  destroyModelsOfGrant(model: string, grantId: string): Promise<void>;
  /** Delete model rows that expired before `now`; returns how many. */
  pruneModels(now: number): Promise<number>;
  listKeys(purpose: 'sig' | 'cookie'): Promise<StoredKey[]>;
  insertKey(key: StoredKey): Promise<void>;
  retireKey(kid: string, at: number): Promise<void>;
  deleteKey(kid: string): Promise<void>;
  addRevocation(kind: RevocationKind, id: string, expiresAt: number): Promise<void>;
  listRevocations(now: number): Promise<{ kind: RevocationKind; id: string; expiresAt: number }[]>;
  pruneRevocations(now: number): Promise<number>;
  upsertAccount(account: StoredAccount): Promise<void>;
  findAccount(id: string): Promise<StoredAccount | undefined>;
}

const toNumber = (value: number | string): number => Number(value);
const toNullableNumber = (value: number | string | null): number | null => (value === null ? null : Number(value));

/** The store over an open kysely handle of a migrated database. */
export function createOAuthStore(handle: Kysely<Database>, dialect: SqlDialect): OAuthStore {
  // The migrations own the schema; this view adds the OAuth tables to the handle's types.
  const db = handle.withTables<OAuthTables>();
  return {
    dialect,
    async upsertModel(model, id, row) {
      const values = { payload: row.payload, grant_id: row.grantId, uid: row.uid, user_code: row.userCode, expires_at: row.expiresAt };
      await db
        .insertInto('gatehouse_oauth_model')
        .values({ model, id, ...values, consumed_at: null })
        .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet(values))
        .execute();
    },
    async findModel(model, id) {
      const row = await db.selectFrom('gatehouse_oauth_model').select(['payload', 'expires_at', 'consumed_at']).where('model', '=', model).where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : { payload: row.payload, expiresAt: toNullableNumber(row.expires_at), consumedAt: toNullableNumber(row.consumed_at) };
    },
    async findModelBy(model, column, value) {
      const row = await db
        .selectFrom('gatehouse_oauth_model')
        .select(['id', 'payload', 'expires_at', 'consumed_at'])
        .where('model', '=', model)
        .where(column, '=', value)
        .executeTakeFirst();
      return row === undefined ? undefined : { id: row.id, payload: row.payload, expiresAt: toNullableNumber(row.expires_at), consumedAt: toNullableNumber(row.consumed_at) };
    },
    async consumeModel(model, id, at) {
      await db.updateTable('gatehouse_oauth_model').set({ consumed_at: at }).where('model', '=', model).where('id', '=', id).execute();
    },
    async destroyModel(model, id) {
      await db.deleteFrom('gatehouse_oauth_model').where('model', '=', model).where('id', '=', id).execute();
    },
    async destroyModelsOfGrant(model, grantId) {
      await db.deleteFrom('gatehouse_oauth_model').where('model', '=', model).where('grant_id', '=', grantId).execute();
    },
    async pruneModels(now) {
      const result = await db.deleteFrom('gatehouse_oauth_model').where('expires_at', 'is not', null).where('expires_at', '<', now).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
    async listKeys(purpose) {
      const rows = await db.selectFrom('gatehouse_oauth_key').selectAll().where('purpose', '=', purpose).orderBy('created_at', 'desc').orderBy('kid').execute();
      return rows.map((row) => ({ kid: row.kid, purpose, material: row.material, createdAt: toNumber(row.created_at), retiredAt: toNullableNumber(row.retired_at) }));
    },
    async insertKey(key) {
      await db
        .insertInto('gatehouse_oauth_key')
        .values({ kid: key.kid, purpose: key.purpose, material: key.material, created_at: key.createdAt, retired_at: key.retiredAt })
        .execute();
    },
    async retireKey(kid, at) {
      await db.updateTable('gatehouse_oauth_key').set({ retired_at: at }).where('kid', '=', kid).where('retired_at', 'is', null).execute();
    },
    async deleteKey(kid) {
      await db.deleteFrom('gatehouse_oauth_key').where('kid', '=', kid).execute();
    },
    async addRevocation(kind, id, expiresAt) {
      await db
        .insertInto('gatehouse_oauth_revocation')
        .values({ kind, id, expires_at: expiresAt })
        .onConflict((oc) => oc.columns(['kind', 'id']).doUpdateSet({ expires_at: expiresAt }))
        .execute();
    },
    async listRevocations(now) {
      const rows = await db.selectFrom('gatehouse_oauth_revocation').selectAll().where('expires_at', '>=', now).execute();
      return rows.map((row) => ({ kind: row.kind === 'gid' ? 'gid' : 'jti', id: row.id, expiresAt: toNumber(row.expires_at) }));
    },
    async pruneRevocations(now) {
      const result = await db.deleteFrom('gatehouse_oauth_revocation').where('expires_at', '<', now).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
    async upsertAccount(account) {
      const values = { tenant: account.tenant, roles: JSON.stringify(account.roles), claims: JSON.stringify(account.claims), updated_at: account.updatedAt };
      await db
        .insertInto('gatehouse_oauth_account')
        .values({ id: account.id, ...values })
        .onConflict((oc) => oc.column('id').doUpdateSet(values))
        .execute();
    },
    async findAccount(id) {
      const row = await db.selectFrom('gatehouse_oauth_account').selectAll().where('id', '=', id).executeTakeFirst();
      if (row === undefined) return undefined;
      return { id: row.id, tenant: row.tenant, roles: parseStringArray(row.roles), claims: parseObject(row.claims), updatedAt: toNumber(row.updated_at) };
    },
  };
}

function parseStringArray(text: string): string[] {
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function parseObject(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
