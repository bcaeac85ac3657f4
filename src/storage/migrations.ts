/**
 * The schema, as one list of kysely migrations that serves SQLite and PostgreSQL alike, and
 * the guard that refuses a database written by a newer Gatehouse before anything touches it.
 *
 * A released migration is frozen: a schema change is a new migration with the next number,
 * never an edit (databases in the field already ran the old text). So migrations use literal
 * values, not constants from elsewhere in the code that might change.
 */
import { Migrator, sql, type Kysely, type Migration } from 'kysely';
import { GatehouseError } from '../protocol/errors.ts';
import type { Database } from './audit-table.ts';

export type SqlDialect = 'sqlite' | 'postgres';

/** kysely's migrator tables, renamed so every table of ours starts with `gatehouse_`. */
export const MIGRATION_TABLE = 'gatehouse_migration';
export const MIGRATION_LOCK_TABLE = 'gatehouse_migration_lock';

/** Columns the audit query filters on; each gets an index ending in seq (the query order). */
const FILTER_COLUMNS = ['user_id', 'agent_id', 'tenant_id', 'tool', 'outcome'] as const;

/** Names are `NNNN_what`: the number is the schema version the migration brings. */
function migrationsFor(dialect: SqlDialect): Record<string, Migration> {
  return {
    '0001_audit': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('gatehouse_audit')
          // SQLite: exactly `integer primary key` makes seq the rowid (no second b-tree).
          // PostgreSQL: bigint, since a busy gateway outgrows int4 in years, not decades.
          .addColumn('seq', dialect === 'sqlite' ? 'integer' : 'bigint', (c) => c.primaryKey())
          .addColumn('time', 'bigint', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('call', 'admin')`))
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('session_id', 'text')
          .addColumn('trace_id', 'text')
          .addColumn('user_id', 'text')
          .addColumn('agent_id', 'text')
          .addColumn('tenant_id', 'text')
          .addColumn('target', 'text')
          .addColumn('tool', 'text')
          .addColumn('tool_version', 'text')
          .addColumn('method', 'text', (c) => c.notNull())
          .addColumn('args_hash', 'text')
          // TEXT, not jsonb: the stored JSON is hashed as written, and jsonb would re-serialize
          // it (key order, whitespace, escapes); it also cannot hold \u0000.
          .addColumn('args', 'text')
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('error_type', 'text')
          // A double holds every finite JS number exactly, fractional latencies included.
          .addColumn('latency_ms', 'double precision', (c) => c.notNull())
          .addColumn('bytes_in', 'bigint', (c) => c.notNull())
          .addColumn('bytes_out', 'bigint', (c) => c.notNull())
          .addColumn('target_version', 'text')
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        // Time ranges and age-based pruning.
        await db.schema.createIndex('gatehouse_audit_time').on('gatehouse_audit').column('time').execute();
        for (const column of FILTER_COLUMNS) {
          await db.schema.createIndex(`gatehouse_audit_${column}`).on('gatehouse_audit').columns([column, 'seq']).execute();
        }
        await db.schema
          .createTable('gatehouse_audit_head')
          .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
          .addColumn('last_seq', 'bigint', (c) => c.notNull())
          .addColumn('last_hash', 'text', (c) => c.notNull())
          .execute();
        await sql`insert into gatehouse_audit_head (id, last_seq, last_hash) values (1, 0, ${'0'.repeat(64)})`.execute(db);
      },
    },
    // The OAuth authorization server (src/auth/authorization-server.ts); queries in oauth-store.ts.
    '0002_oauth': {
      async up(db: Kysely<unknown>): Promise<void> {
        // oidc-provider's models (sessions, codes, refresh tokens, grants, dynamic clients, …),
        // one row per (model, id). payload is JSON text; times are epoch milliseconds.
        await db.schema
          .createTable('gatehouse_oauth_model')
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('grant_id', 'text')
          .addColumn('uid', 'text')
          .addColumn('user_code', 'text')
          .addColumn('expires_at', 'bigint')
          .addColumn('consumed_at', 'bigint')
          .addPrimaryKeyConstraint('gatehouse_oauth_model_pk', ['model', 'id'])
          .execute();
        await db.schema.createIndex('gatehouse_oauth_model_grant').on('gatehouse_oauth_model').columns(['grant_id']).execute();
        await db.schema.createIndex('gatehouse_oauth_model_uid').on('gatehouse_oauth_model').columns(['uid']).execute();
        await db.schema.createIndex('gatehouse_oauth_model_user_code').on('gatehouse_oauth_model').columns(['user_code']).execute();
        await db.schema.createIndex('gatehouse_oauth_model_expires').on('gatehouse_oauth_model').columns(['expires_at']).execute();
        // Signing keys (purpose 'sig', a private JWK) and cookie keys (purpose 'cookie', a random secret).
        // Private material is stored in clear for now: encryption at rest is a later issue.
        await db.schema
          .createTable('gatehouse_oauth_key')
          .addColumn('kid', 'text', (c) => c.primaryKey())
          .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('sig', 'cookie')`))
          .addColumn('material', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('retired_at', 'bigint')
          .execute();
        // Revoked access tokens (kind 'jti') and grants (kind 'gid'), kept until no token they cover can still be valid.
        await db.schema
          .createTable('gatehouse_oauth_revocation')
          .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('jti', 'gid')`))
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('gatehouse_oauth_revocation_pk', ['kind', 'id'])
          .execute();
        // Human users as the IdP login last saw them: tenant, roles and profile claims.
        await db.schema
          .createTable('gatehouse_oauth_account')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('claims', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0003_api_keys': {
      async up(db: Kysely<unknown>): Promise<void> {
        // Service-account credentials: only the SHA-256 of the key is kept (the plaintext is
        // shown once, at creation); lookups are by that hash.
        await db.schema
          .createTable('gatehouse_api_key')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text')
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .execute();
        await db.schema.createIndex('gatehouse_api_key_name').on('gatehouse_api_key').column('name').execute();
      },
    },
    // Gateway-wide secrets every replica must share (the task id HMAC key); queries in
    // gateway-secret-table.ts. Not gatehouse_oauth_key: that table's purposes are the AS's own
    // and checked, and these secrets exist without the authorization server.
    '0004_gateway_secret': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('gatehouse_gateway_secret')
          .addColumn('name', 'text', (c) => c.primaryKey())
          // base64url; stored in clear like the AS keys until encryption at rest lands.
          .addColumn('material', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    // The credential vault (src/vault/credential-vault.ts): upstream tokens and client
    // registrations, AES-256-GCM envelopes in `ciphertext`; queries in credential-table.ts.
    '0005_upstream_credentials': {
      async up(db: Kysely<unknown>): Promise<void> {
        // No check constraints on kind or status: SQLite cannot alter one without rebuilding the
        // table, and new kinds are expected; the vault validates what it writes.
        await db.schema
          .createTable('gatehouse_upstream_credentials')
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('target', 'text', (c) => c.notNull())
          // `service`, or `user:<id>`.
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          // In clear next to the envelope (which names it too) so rotation and status can query it.
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('ciphertext', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .addColumn('refresh_at', 'bigint')
          .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('last_error', 'text')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('gatehouse_upstream_credentials_pk', ['tenant', 'target', 'subject', 'kind'])
          .execute();
        // The refresh job's query: status = 'active' and refresh_at <= now, oldest first.
        await db.schema.createIndex('gatehouse_upstream_credentials_due').on('gatehouse_upstream_credentials').columns(['status', 'refresh_at']).execute();
      },
    },
  };
}

function versionOf(name: string): number {
  const match = /^(\d+)_/.exec(name);
  return match ? Number(match[1]) : 0;
}

/** The schema version this build writes. */
export const SCHEMA_VERSION = Math.max(...Object.keys(migrationsFor('sqlite')).map(versionOf));

async function tableExists(db: Kysely<Database>, dialect: SqlDialect, table: string): Promise<boolean> {
  const query =
    dialect === 'sqlite'
      ? sql<{ present: number }>`select count(*) as present from sqlite_master where type = 'table' and name = ${table}`
      : sql<{ present: number }>`select (to_regclass(${table}) is not null)::int as present`;
  const result = await query.execute(db);
  return Number(result.rows[0]?.present ?? 0) > 0;
}

async function appliedMigrations(db: Kysely<Database>, dialect: SqlDialect): Promise<string[]> {
  if (!(await tableExists(db, dialect, MIGRATION_TABLE))) return [];
  const result = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(db);
  return result.rows.map((row) => row.name);
}

/** Throws STORE_VERSION_TOO_NEW when `applied` holds a version this build does not know. */
function refuseNewer(applied: readonly string[]): void {
  const newest = Math.max(0, ...applied.map(versionOf));
  if (newest <= SCHEMA_VERSION) return;
  throw new GatehouseError(
    'STORE_VERSION_TOO_NEW',
    `the database has schema version ${newest}, written by a newer Gatehouse; this build knows versions up to ${SCHEMA_VERSION}. ` +
      'It was left unmodified: run the newer Gatehouse, or point storage at another database.',
    { data: { databaseVersion: newest, supportedVersion: SCHEMA_VERSION } },
  );
}

/**
 * Bring the schema to SCHEMA_VERSION. A database with a newer version is refused before any
 * statement that could modify it runs (kysely's migrator would create its tables first).
 */
export async function migrateSchema(db: Kysely<Database>, dialect: SqlDialect): Promise<{ from: number; to: number }> {
  const before = await appliedMigrations(db, dialect);
  refuseNewer(before);
  const from = Math.max(0, ...before.map(versionOf));
  const migrations = migrationsFor(dialect);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  // Replicas starting together serialize on kysely's lock (an advisory lock on PostgreSQL),
  // and all pending migrations run in one transaction on both dialects.
  const { error } = await migrator.migrateToLatest();
  if (error !== undefined) {
    // A newer replica may have migrated between the check above and the migrator's lock; the
    // migrator then refused ("previously executed migration is missing") without writing.
    refuseNewer(await appliedMigrations(db, dialect));
    throw error;
  }
  const after = await appliedMigrations(db, dialect);
  return { from, to: Math.max(0, ...after.map(versionOf)) };
}
