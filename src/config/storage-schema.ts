/**
 * The `storage` section: where audit rows (and later other state) live. SQLite is the embedded
 * default; PostgreSQL serves several replicas. A password never appears in the file: it comes
 * from the environment variable `passwordEnv` names (a URL with a password is refused).
 */
import { z } from 'zod';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const sqliteStorage = z.strictObject({
  driver: z.literal('sqlite'),
  /** The database file; relative to the config file's directory. */
  path: z.string().min(1).default('.gatehouse/gatehouse.db').describe('SQLite database file, relative to the config file'),
  /**
   * `normal` (SQLite's advice for WAL) survives a killed gateway but may lose the last commits
   * on power loss; `full` fsyncs the WAL at every commit, so a resolved audit append survives
   * power loss too, at an fsync per commit (docs/audit.md, Durability).
   */
  synchronous: z.enum(['full', 'normal']).default('normal').describe('normal: survives a killed gateway; full: also survives power loss, at an fsync per commit'),
  /** How long a write waits for another process holding the file's lock. */
  busyTimeoutMs: z.number().int().min(0).max(600_000).default(5_000),
});

/** Where a connection URL may hide a secret or a setting that has its own field here. */
function postgresUrlIssue(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL (postgres://user@host:port/database)';
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return 'the scheme must be postgres: or postgresql:';
  if (url.password !== '' || url.searchParams.has('password')) return 'the URL must not carry a password; name an environment variable in passwordEnv';
  if (url.searchParams.has('sslmode') || url.searchParams.has('ssl')) return 'set TLS with the ssl field, not in the URL';
  return undefined;
}

const postgresStorage = z
  .strictObject({
    driver: z.literal('postgres'),
    /** `postgres://user@host:port/database`, without a password. Exclusive with host/port/database/user. */
    url: z.string().min(1).optional().describe('postgres://user@host:port/database, without a password (see passwordEnv)'),
    /** Host name, address, or a Unix socket directory (starts with `/`). */
    host: z.string().min(1).optional(),
    /** Defaults to 5432. */
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    /** Name of the environment variable holding the password. */
    passwordEnv: z.string().regex(ENV_NAME, 'an environment variable name').optional().describe('Name of the environment variable holding the password; passwords are never written in the file'),
    /** `require`: encrypt without verifying the certificate; `verify-full`: verify it against the system CAs. */
    ssl: z.enum(['disable', 'require', 'verify-full']).default('disable'),
    poolSize: z.number().int().min(1).max(200).default(10),
    /** How long acquiring a connection may take before the store counts as unavailable. */
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(5_000),
  })
  .superRefine((value, ctx) => {
    const fields = (['host', 'port', 'database', 'user'] as const).filter((key) => value[key] !== undefined);
    if (value.url !== undefined) {
      const issue = postgresUrlIssue(value.url);
      if (issue !== undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: issue });
      if (fields.length > 0) ctx.addIssue({ code: 'custom', path: [fields[0]!], message: 'give either url or host/port/database/user, not both' });
    } else {
      for (const key of ['host', 'database', 'user'] as const) {
        if (value[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is required when url is not given` });
      }
    }
  });

export const storageSchema = z.discriminatedUnion('driver', [sqliteStorage, postgresStorage]);

export type StorageConfig = z.output<typeof storageSchema>;
export type SqliteStorageConfig = Extract<StorageConfig, { driver: 'sqlite' }>;
export type PostgresStorageConfig = Extract<StorageConfig, { driver: 'postgres' }>;
