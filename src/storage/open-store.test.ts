import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../config/schema.ts';
import { storageSchema, type PostgresStorageConfig } from '../config/storage-schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { describeStorage, openStore, postgresPoolConfig } from './open-store.ts';
import { SCHEMA_VERSION } from './migrations.ts';

const TARGETS = { targets: { t: { transport: 'stdio', command: 'true' } } };

function postgres(input: Record<string, unknown>): PostgresStorageConfig {
  const parsed = storageSchema.parse({ driver: 'postgres', ...input });
  if (parsed.driver !== 'postgres') throw new Error('expected postgres');
  return parsed;
}

function issuesOf(input: Record<string, unknown>): string[] {
  const result = storageSchema.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('storage config', () => {
  it('defaults to SQLite under .gatehouse/ with synchronous=normal', () => {
    expect(configSchema.parse(TARGETS).storage).toEqual({ driver: 'sqlite', path: '.gatehouse/gatehouse.db', synchronous: 'normal', busyTimeoutMs: 5_000 });
  });

  it('refuses a password in the URL, TLS settings in the URL, and mixed URL and fields', () => {
    expect(issuesOf({ driver: 'postgres', url: 'postgres://gh:secret@db:5432/gh' })).toEqual([expect.stringMatching(/^url: .*passwordEnv/)]);
    expect(issuesOf({ driver: 'postgres', url: 'postgres://gh@db/gh?password=secret' })).toEqual([expect.stringMatching(/^url: .*password/)]);
    expect(issuesOf({ driver: 'postgres', url: 'postgres://gh@db/gh?sslmode=require' })).toEqual([expect.stringMatching(/^url: .*ssl field/)]);
    expect(issuesOf({ driver: 'postgres', url: 'mysql://gh@db/gh' })).toEqual([expect.stringMatching(/^url: the scheme/)]);
    expect(issuesOf({ driver: 'postgres', url: 'postgres://gh@db/gh', host: 'db' })).toEqual([expect.stringMatching(/^host: give either url/)]);
    expect(issuesOf({ driver: 'postgres', host: 'db' })).toEqual(['database: database is required when url is not given', 'user: user is required when url is not given']);
    expect(issuesOf({ driver: 'postgres', url: 'postgres://gh@db/gh', password: 'x' })).toHaveLength(1);
  });

  it('reads the password from the named environment variable and keeps it out of descriptions', () => {
    const fields = postgres({ host: 'db.internal', database: 'gh', user: 'gatehouse', passwordEnv: 'GH_PG_PASSWORD', ssl: 'verify-full' });
    expect(postgresPoolConfig(fields, { GH_PG_PASSWORD: 's3cret' })).toMatchObject({ host: 'db.internal', port: 5432, database: 'gh', user: 'gatehouse', password: 's3cret', ssl: { rejectUnauthorized: true }, max: 10 });
    const url = postgres({ url: 'postgres://gatehouse@db.internal:6543/gh', passwordEnv: 'GH_PG_PASSWORD' });
    const pool = postgresPoolConfig(url, { GH_PG_PASSWORD: 'p@ss word&%' });
    expect(new URL(pool.connectionString!).searchParams.get('password')).toBe('p@ss word&%');
    expect(pool.ssl).toBe(false);
    expect(describeStorage(url)).toBe('postgres postgres://gatehouse@db.internal:6543/gh');
    expect(describeStorage(fields)).not.toContain('s3cret');
    const missing = (() => {
      try {
        postgresPoolConfig(url, {});
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    expect(missing).toBeInstanceOf(GatehouseError);
    expect((missing as GatehouseError).code).toBe('CONFIG_INVALID');
    expect((missing as GatehouseError).message).toContain('GH_PG_PASSWORD');
  });

  it('opens SQLite at a path relative to the config directory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-open-'));
    dirs.push(dir);
    const config = configSchema.parse(TARGETS);
    const store = await openStore(config, undefined, { configDir: dir });
    try {
      expect(store.kind).toBe('sqlite');
      expect(await store.migrate()).toEqual({ from: 0, to: SCHEMA_VERSION });
      expect(existsSync(path.join(dir, '.gatehouse', 'gatehouse.db'))).toBe(true);
      expect(describeStorage(config.storage, dir)).toBe(`sqlite ${path.join(dir, '.gatehouse', 'gatehouse.db')}`);
    } finally {
      await store.close();
    }
  });
});
