/**
 * The API key table (`gatehouse_api_key`, migration 0003): service-account credentials, stored
 * as the SHA-256 of the key only. The plaintext never reaches this module. Queries are written
 * once with kysely and serve SQLite and PostgreSQL alike.
 */
import type { ColumnType, Kysely, Selectable } from 'kysely';
import type { Database } from './audit-table.ts';
import { decodeNullableText, decodeText, encodeNullableText, encodeText } from './text-codec.ts';

/** `bigint` columns: node-postgres returns int8 as a string, better-sqlite3 as a number. */
type BigIntColumn = ColumnType<number | string, number, number>;
type NullableBigIntColumn = ColumnType<number | string | null, number | null, number | null>;

export interface ApiKeyTable {
  id: string;
  name: string | null;
  user_id: string;
  agent_id: string;
  tenant_id: string;
  /** JSON array of role names. */
  roles: string;
  /** SHA-256 (hex) of the key; unique. */
  key_hash: string;
  created_at: BigIntColumn;
  expires_at: BigIntColumn;
  revoked_at: NullableBigIntColumn;
}

// A type alias, not an interface: kysely's withTables needs an indexable type.
export type ApiKeyDatabase = {
  gatehouse_api_key: ApiKeyTable;
};

/** One API key as stored (never the secret). Times are epoch milliseconds. */
export interface ApiKeyRow {
  id: string;
  /** A label (`dev` for the development credential); not unique. */
  name: string | null;
  user: string;
  agent: string;
  tenant: string;
  roles: string[];
  keyHash: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** What API key authentication and the `keys` CLI need from storage. */
export interface ApiKeyStore {
  insert(row: Omit<ApiKeyRow, 'revokedAt'>): Promise<void>;
  findByHash(keyHash: string): Promise<ApiKeyRow | undefined>;
  /** Every key, newest first (revoked and expired ones included). */
  list(): Promise<ApiKeyRow[]>;
  /** Revoke one key; false when no unrevoked key has this id. */
  revoke(id: string, at: number): Promise<boolean>;
  /** Revoke every unrevoked key with this name; returns their ids. */
  revokeByName(name: string, at: number): Promise<string[]>;
}

function fromStored(row: Selectable<ApiKeyTable>): ApiKeyRow {
  const roles = JSON.parse(decodeText(row.roles)) as unknown;
  return {
    id: row.id,
    name: decodeNullableText(row.name),
    user: decodeText(row.user_id),
    agent: decodeText(row.agent_id),
    tenant: decodeText(row.tenant_id),
    roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [],
    keyHash: row.key_hash,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

export class SqlApiKeyStore implements ApiKeyStore {
  private readonly db: Kysely<Database & ApiKeyDatabase>;

  /** Over the store's kysely handle of a migrated database. */
  constructor(handle: Kysely<Database>) {
    this.db = handle.withTables<ApiKeyDatabase>();
  }

  async insert(row: Omit<ApiKeyRow, 'revokedAt'>): Promise<void> {
    await this.db
      .insertInto('gatehouse_api_key')
      .values({
        id: row.id,
        name: encodeNullableText(row.name),
        user_id: encodeText(row.user),
        agent_id: encodeText(row.agent),
        tenant_id: encodeText(row.tenant),
        roles: encodeText(JSON.stringify(row.roles)),
        key_hash: row.keyHash,
        created_at: row.createdAt,
        expires_at: row.expiresAt,
        revoked_at: null,
      })
      .execute();
  }

  async findByHash(keyHash: string): Promise<ApiKeyRow | undefined> {
    const row = await this.db.selectFrom('gatehouse_api_key').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
    return row === undefined ? undefined : fromStored(row);
  }

  async list(): Promise<ApiKeyRow[]> {
    const rows = await this.db.selectFrom('gatehouse_api_key').selectAll().orderBy('created_at', 'desc').orderBy('id').execute();
    return rows.map(fromStored);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const result = await this.db.updateTable('gatehouse_api_key').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async revokeByName(name: string, at: number): Promise<string[]> {
    const stored = encodeText(name);
    const ids = await this.db.selectFrom('gatehouse_api_key').select('id').where('name', '=', stored).where('revoked_at', 'is', null).execute();
    if (ids.length === 0) return [];
    await this.db.updateTable('gatehouse_api_key').set({ revoked_at: at }).where('name', '=', stored).where('revoked_at', 'is', null).execute();
    return ids.map((r) => r.id);
  }
}
