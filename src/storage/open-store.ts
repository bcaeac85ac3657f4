/**
 * Opening the configured store: the one place that chooses between SQLite and PostgreSQL.
 * Opening does not migrate; callers run `store.migrate()` (the gateway at start, `gatehouse
 * migrate` on demand), which also refuses a database written by a newer Gatehouse.
 */
import path from 'node:path';
import type pg from 'pg';
import type { PostgresStorageConfig, SqliteStorageConfig, StorageConfig } from '../config/storage-schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { Store } from './store.ts';

export interface OpenStoreOptions {
  /**
   * Directory a relative SQLite path resolves against. Normalization resolves it against the
   * config file's directory; this is for callers holding a config that was not normalized.
   */
  configDir?: string;
  /** Where `passwordEnv` is looked up; `process.env` by default. */
  env?: NodeJS.ProcessEnv;
}

/** The SQLite file a config points at, absolute. */
export function sqliteFileOf(storage: SqliteStorageConfig, configDir = process.cwd()): string {
  return path.resolve(configDir, storage.path);
}

/**
 * node-postgres settings for a PostgreSQL section. The password is read from the environment
 * here and placed only in memory (as the URL's `password` parameter, because node-postgres
 * lets a URL's empty password override a separate `password` field).
 */
export function postgresPoolConfig(storage: PostgresStorageConfig, env: NodeJS.ProcessEnv = process.env): pg.PoolConfig {
  let password: string | undefined;
  if (storage.passwordEnv !== undefined) {
    password = env[storage.passwordEnv];
    if (password === undefined) throw new GatehouseError('CONFIG_INVALID', `storage.passwordEnv names ${storage.passwordEnv}, which is not set in the environment`);
  }
  const ssl = storage.ssl === 'disable' ? false : { rejectUnauthorized: storage.ssl === 'verify-full' };
  const pool = { ssl, max: storage.poolSize, connectionTimeoutMillis: storage.connectTimeoutMs, idleTimeoutMillis: 30_000 };
  if (storage.url !== undefined) {
    const url = new URL(storage.url);
    if (password !== undefined) url.searchParams.set('password', password);
    return { ...pool, connectionString: url.toString() };
  }
  return { ...pool, host: storage.host, port: storage.port ?? 5432, database: storage.database, user: storage.user, ...(password === undefined ? {} : { password }) };
}

/** Where the store is, for logs and CLI output; never includes a password. */
export function describeStorage(storage: StorageConfig, configDir?: string): string {
  if (storage.driver === 'sqlite') return `sqlite ${sqliteFileOf(storage, configDir)}`;
  if (storage.url !== undefined) return `postgres ${storage.url}`;
  return `postgres postgres://${storage.user ?? ''}@${storage.host ?? ''}:${storage.port ?? 5432}/${storage.database ?? ''}`;
}

/** Open the store `config.storage` describes. */
export async function openStore(config: { storage: StorageConfig }, logger?: GatewayLogger, options: OpenStoreOptions = {}): Promise<Store> {
  const storage = config.storage;
  // The PostgreSQL driver is loaded only for a PostgreSQL store (~15 MB of idle RSS otherwise).
  const store =
    storage.driver === 'sqlite'
      ? SqliteStore.open({ file: sqliteFileOf(storage, options.configDir), synchronous: storage.synchronous, busyTimeoutMs: storage.busyTimeoutMs })
      : (await import('./postgres-store.ts')).PostgresStore.open(postgresPoolConfig(storage, options.env));
  logger?.info({ kind: 'storage', driver: storage.driver, location: describeStorage(storage, options.configDir) }, 'storage opened');
  return store;
}
