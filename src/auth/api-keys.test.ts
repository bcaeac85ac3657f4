// API keys against both real stores (SQLite file, throwaway PostgreSQL): created once in
// plaintext, stored as a hash, looked up through the cache, expired and revoked.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { PostgresStore } from '../storage/postgres-store.ts';
import type { SqlStore } from '../storage/sql-store.ts';
import type { ApiKeyStore } from '../storage/api-key-table.ts';
import { startPostgres, type PostgresServer } from '../../test/support/postgres-server.ts';
import { ApiKeyService, hashApiKey } from './api-keys.ts';

const DAY = 24 * 60 * 60_000;

function describeApiKeys(kind: string, open: () => Promise<SqlStore>): void {
  describe(`API keys on ${kind}`, () => {
    let store: SqlStore;
    const clock = new ManualClock(1_800_000_000_000);
    let keys: ApiKeyService;

    beforeAll(async () => {
      store = await open();
      await store.migrate();
      keys = new ApiKeyService(store.apiKeyStore(), clock, () => 90);
    }, 120_000);
    afterAll(async () => {
      await store?.close();
    });

    it('creates a gh_ key of 32 random bytes, stores only its SHA-256, and authenticates it', async () => {
      const { key, secret } = await keys.create({ user: 'svc-build', agent: 'ci', tenant: 'acme', roles: ['reader', 'builder'], ttlDays: 30 });
      expect(secret).toMatch(/^gh_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(secret.slice(3), 'base64url')).toHaveLength(32);
      expect(JSON.stringify(key)).not.toContain(secret.slice(3));
      expect(key).not.toHaveProperty('keyHash');
      const stored = await store.apiKeyStore().findByHash(hashApiKey(secret));
      expect(stored).toMatchObject({ id: key.id, user: 'svc-build', roles: ['reader', 'builder'], expiresAt: clock.now() + 30 * DAY, revokedAt: null });
      // Nothing in the table holds the plaintext.
      expect(JSON.stringify(await store.apiKeyStore().list())).not.toContain(secret);
      const principal = await keys.authenticate(secret);
      expect(principal).toEqual({ tenant: 'acme', user: 'svc-build', agent: 'ci', roles: ['reader', 'builder'], scopes: [], method: 'api-key', credentialId: key.id, expiresAt: key.expiresAt });
    });

    it('requires an expiry within auth.apiKeys.maxTtlDays', async () => {
      await expect(keys.create({ user: 'u', agent: 'a', tenant: 't', roles: [], ttlDays: 0 })).rejects.toThrow(/at least 1/);
      await expect(keys.create({ user: 'u', agent: 'a', tenant: 't', roles: [], ttlDays: 91 })).rejects.toThrow(/maxTtlDays/);
    });

    it('refuses role names the config could not hold, * (every grant) above all', async () => {
      await expect(keys.create({ user: 'u', agent: 'a', tenant: 'acme', roles: ['*'], ttlDays: 1 })).rejects.toMatchObject({ code: 'INVALID_PARAMS' });
      await expect(keys.create({ user: 'u', agent: 'a', tenant: 'acme', roles: ['reader', 'ad min'], ttlDays: 1 })).rejects.toMatchObject({ code: 'INVALID_PARAMS' });
      expect((await keys.list()).some((k) => k.user === 'u')).toBe(false);
    });

    it('refuses unknown, malformed and expired keys with INVALID_TOKEN', async () => {
      await expect(keys.authenticate(`gh_${'A'.repeat(43)}`)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
      await expect(keys.authenticate('gh_short')).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
      const { secret } = await keys.create({ user: 'u', agent: 'a', tenant: 'default', roles: [], ttlDays: 1 });
      await expect(keys.authenticate(secret)).resolves.toMatchObject({ user: 'u' });
      clock.advance(DAY);
      await expect(keys.authenticate(secret)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    });

    it('a revocation bites at once in this process, though the lookup was cached', async () => {
      const { key, secret } = await keys.create({ user: 'u2', agent: 'a', tenant: 'default', roles: [], ttlDays: 5 });
      await keys.authenticate(secret);
      expect(await keys.revoke(key.id)).toBe(true);
      await expect(keys.authenticate(secret)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
      expect(await keys.revoke(key.id)).toBe(false);
      const listed = (await keys.list()).find((k) => k.id === key.id);
      expect(listed?.revokedAt).toBe(clock.now());
    });

    it('a revocation by another process is seen once the cache entry ages out', async () => {
      const { key, secret } = await keys.create({ user: 'u3', agent: 'a', tenant: 'default', roles: [], ttlDays: 5 });
      await keys.authenticate(secret);
      const other = new ApiKeyService(store.apiKeyStore(), clock, () => 90);
      await other.revoke(key.id);
      clock.advance(31_000);
      await expect(keys.authenticate(secret)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    });

    it('the development key replaces the previous one and lives 12 hours', async () => {
      const first = await keys.mintDevKey('default', ['admin']);
      await expect(keys.authenticate(first.secret)).resolves.toMatchObject({ user: 'dev', agent: 'dev', roles: ['admin'] });
      const second = await keys.mintDevKey('default', ['admin']);
      expect(second.revoked).toEqual([first.key.id]);
      await expect(keys.authenticate(first.secret)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
      await expect(keys.authenticate(second.secret)).resolves.toMatchObject({ user: 'dev' });
      expect(second.key.expiresAt - second.key.createdAt).toBe(12 * 60 * 60_000);
    });

    it('fails closed with AUTH_UNAVAILABLE when the store cannot answer', async () => {
      const real = store.apiKeyStore();
      const down: ApiKeyStore = {
        insert: (row) => real.insert(row),
        findByHash: () => Promise.reject(new Error('connect ECONNREFUSED')),
        list: () => real.list(),
        revoke: (id, at) => real.revoke(id, at),
        revokeByName: (name, at) => real.revokeByName(name, at),
      };
      const broken = new ApiKeyService(down, clock, () => 90);
      await expect(broken.authenticate(`gh_${'B'.repeat(43)}`)).rejects.toMatchObject({ code: 'AUTH_UNAVAILABLE' });
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
describeApiKeys('SQLite', async () => SqliteStore.open({ file: path.join(dir, 'keys.db') }));

let pgServer: PostgresServer | undefined;
afterAll(async () => {
  await pgServer?.stop();
}, 60_000);
describeApiKeys('PostgreSQL', async () => {
  pgServer = await startPostgres();
  return PostgresStore.open({ connectionString: pgServer.url, max: 2 });
});
