import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../clock.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { PostgresStore } from '../storage/postgres-store.ts';
import type { SqlStore } from '../storage/sql-store.ts';
import { startPostgres, type PostgresServer } from '../../test/support/postgres-server.ts';
import { OAuthAdapter } from './oauth-adapter.ts';
import { RELOAD_INTERVAL_MS, RevocationList } from './oauth-revocations.ts';
import { SigningKeys } from './oauth-keys.ts';

function adapterContract(name: string, open: () => Promise<SqlStore>, done: (store: SqlStore) => Promise<void>): void {
  describe(`OAuth storage on ${name}`, () => {
    let store: SqlStore;
    const clock = new ManualClock(1_800_000_000_000);
    beforeAll(async () => {
      store = await open();
      await store.migrate();
    });
    afterAll(async () => {
      await done(store);
    });

    it('upserts, finds, consumes, expires and destroys model rows', async () => {
      const codes = new OAuthAdapter('AuthorizationCode', store.oauthStore(), clock);
      await codes.upsert('c1', { kind: 'AuthorizationCode', grantId: 'g1', uid: 'u1', accountId: 'a' }, 60);
      expect(await codes.find('c1')).toMatchObject({ grantId: 'g1', accountId: 'a' });
      expect(await codes.findByUid('u1')).toMatchObject({ grantId: 'g1' });
      expect((await codes.find('c1'))!['consumed']).toBeUndefined();
      await codes.consume('c1');
      expect((await codes.find('c1'))!['consumed']).toBe(Math.floor(clock.now() / 1000));
      await codes.upsert('c1', { kind: 'AuthorizationCode', grantId: 'g1', accountId: 'b' }, 60);
      expect(await codes.find('c1')).toMatchObject({ accountId: 'b' });
      clock.advance(61_000);
      expect(await codes.find('c1')).toBeUndefined();
      expect(await store.oauthStore().pruneModels(clock.now())).toBeGreaterThanOrEqual(1);
      const sessions = new OAuthAdapter('Session', store.oauthStore(), clock);
      await sessions.upsert('s1', { kind: 'Session', uid: 'su' }, 3600);
      await sessions.destroy('s1');
      expect(await sessions.find('s1')).toBeUndefined();
      const clients = new OAuthAdapter('Client', store.oauthStore(), clock);
      await clients.upsert('dyn-1', { client_id: 'dyn-1' });
      clock.advance(10 ** 9);
      expect(await clients.find('dyn-1')).toEqual({ client_id: 'dyn-1' });
    });

    it('revokes by grant id within one model only', async () => {
      const rts = new OAuthAdapter('RefreshToken', store.oauthStore(), clock);
      const codes = new OAuthAdapter('AuthorizationCode', store.oauthStore(), clock);
      await rts.upsert('r1', { grantId: 'g2' }, 600);
      await rts.upsert('r2', { grantId: 'g2' }, 600);
      await rts.upsert('r3', { grantId: 'g3' }, 600);
      await codes.upsert('c2', { grantId: 'g2' }, 600);
      await rts.revokeByGrantId('g2');
      expect(await rts.find('r1')).toBeUndefined();
      expect(await rts.find('r2')).toBeUndefined();
      expect(await rts.find('r3')).toBeDefined();
      expect(await codes.find('c2')).toBeDefined();
    });

    it('persists revocations and signing keys, and prunes both after expiry', async () => {
      const list = await RevocationList.load(store.oauthStore(), clock);
      await list.revoke('jti', 'j1', clock.now() + 1000);
      await list.revoke('gid', 'g9', clock.now() + 5000);
      list.close();
      const again = await RevocationList.load(store.oauthStore(), clock);
      expect(again.isRevoked({ jti: 'j1' })).toBe(true);
      expect(again.isRevoked({ gid: 'g9' })).toBe(true);
      expect(again.isRevoked({ jti: 'g9' })).toBe(false);
      clock.advance(2000);
      expect(again.isRevoked({ jti: 'j1' })).toBe(false);
      await again.prune();
      expect(again.size).toBe(1);
      again.close();

      const keys = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      const reloaded = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      expect(reloaded.current().kid).toBe(keys.current().kid);
      const { kid } = await reloaded.rotate();
      const third = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      expect(third.current().kid).toBe(kid);
      expect(third.verificationKeys().keys).toHaveLength(2);
      clock.advance(300_001);
      const fourth = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      expect(fourth.verificationKeys().keys.map((k) => k.kid)).toEqual([kid]);
    });

    it("another replica's revocation bites here within one reload interval", async () => {
      const here = await RevocationList.load(store.oauthStore(), clock);
      const there = await RevocationList.load(store.oauthStore(), clock);
      try {
        await there.revoke('jti', 'replica-j', clock.now() + 60_000);
        expect(here.isRevoked({ jti: 'replica-j' })).toBe(false);
        clock.advance(RELOAD_INTERVAL_MS);
        // The reload is one query; wait for it without wall-clock sleeps.
        await vi.waitFor(() => expect(here.isRevoked({ jti: 'replica-j' })).toBe(true));
      } finally {
        here.close();
        there.close();
      }
    });

    it("another replica's key rotation becomes current here once the keys are re-read", async () => {
      const here = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      const there = await SigningKeys.load(store.oauthStore(), clock, 300_000);
      const before = here.current().kid;
      const { kid } = await there.rotate();
      expect(here.current().kid).toBe(before);
      await here.reload();
      expect(here.current().kid).toBe(kid);
      expect(here.verificationKeys().keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, before]));
    });

    it('stores accounts', async () => {
      const accounts = store.oauthStore();
      await accounts.upsertAccount({ id: 'alice', tenant: 'acme', roles: ['a'], claims: { email: 'a@x' }, updatedAt: clock.now() });
      await accounts.upsertAccount({ id: 'alice', tenant: 'acme', roles: ['a', 'b'], claims: {}, updatedAt: clock.now() });
      expect(await accounts.findAccount('alice')).toMatchObject({ tenant: 'acme', roles: ['a', 'b'], claims: {} });
      expect(await accounts.findAccount('nobody')).toBeUndefined();
    });
  });
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-oauth-adapter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
adapterContract('SQLite', async () => SqliteStore.open({ file: path.join(tmp, 'a.db') }), (s) => s.close());

let pgServer: PostgresServer | undefined;
adapterContract(
  'PostgreSQL',
  async () => {
    pgServer = await startPostgres();
    return PostgresStore.open({ connectionString: pgServer.url });
  },
  async (s) => {
    await s.close();
    await pgServer?.stop();
  },
);
