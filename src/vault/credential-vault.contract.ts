/**
 * The credential vault contract: the same assertions over every store's credential table
 * (SQLite in credential-vault.test.ts, PostgreSQL in credential-vault-postgres.test.ts). A
 * harness hands out the table of a fresh, migrated database.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { CredentialTable } from '../storage/credential-table.ts';
import { createCredentialVault, type CredentialKey, type CredentialVault } from './credential-vault.ts';
import { VaultCipher, generateVaultKey } from './vault-cipher.ts';

export interface CredentialTableFixture {
  table: CredentialTable;
  /** Close the store and remove the database. */
  dispose(): Promise<void>;
}

export interface CredentialTableHarness {
  fresh(): Promise<CredentialTableFixture>;
}

/** A value no output may ever show. */
export const CANARY = 'canary-7f3e9a1c-upstream-refresh-token';

const K1 = generateVaultKey();
const K2 = generateVaultKey();

const tokens = (subject: CredentialKey['subject'], target = 'github', tenant = 'default'): CredentialKey => ({ tenant, target, subject, kind: 'oauth-tokens' });

async function rejection(promise: Promise<unknown>): Promise<GatehouseError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

export function describeCredentialVaultContract(name: string, harness: CredentialTableHarness): void {
  describe(`credential vault on ${name}`, () => {
    let fixture: CredentialTableFixture | undefined;
    const clock = new ManualClock();
    const fresh = async (keys = [{ id: 'k1', secret: K1 }]): Promise<{ table: CredentialTable; vault: CredentialVault }> => {
      fixture = await harness.fresh();
      return { table: fixture.table, vault: createCredentialVault(fixture.table, new VaultCipher(keys), clock) };
    };
    afterEach(async () => {
      await fixture?.dispose();
      fixture = undefined;
    });

    it('puts and gets JSON values, with metadata defaults, and stores only ciphertext', async () => {
      const { table, vault } = await fresh();
      expect(vault.activeKeyId).toBe('k1');
      expect(await vault.get(tokens('user:alice'))).toBeUndefined();
      const value = { access_token: CANARY, refresh_token: `${CANARY}-r`, scope: 'repo', nested: [1, null, 'ü'] };
      await vault.put(tokens('user:alice'), value, { expiresAt: clock.now() + 3_600_000, refreshAt: clock.now() + 3_480_000 });
      const stored = await vault.get<typeof value>(tokens('user:alice'));
      expect(stored).toEqual({
        key: tokens('user:alice'),
        value,
        meta: { status: 'active', expiresAt: clock.now() + 3_600_000, refreshAt: clock.now() + 3_480_000, failures: 0, lastError: null, updatedAt: clock.now(), keyId: 'k1' },
      });
      const row = await table.find(tokens('user:alice'));
      expect(row!.ciphertext).toMatch(/^v1\.k1\./);
      expect(row!.ciphertext).not.toContain(CANARY);
      expect(row!.ciphertext).not.toContain(Buffer.from(CANARY).toString('base64url').slice(0, 12));
    });

    it('replaces a value on put, resetting status, failures and timing unless given', async () => {
      const { vault } = await fresh();
      const key = tokens('service');
      await vault.put(key, { v: 1 }, { status: 'needs-consent', failures: 4, lastError: 'invalid_grant', expiresAt: 5, refreshAt: 6 });
      expect((await vault.get(key))!.meta).toMatchObject({ status: 'needs-consent', failures: 4, lastError: 'invalid_grant', expiresAt: 5, refreshAt: 6 });
      clock.advance(1_000);
      await vault.put(key, { v: 2 });
      expect(await vault.get(key)).toMatchObject({ value: { v: 2 }, meta: { status: 'active', failures: 0, lastError: null, expiresAt: null, refreshAt: null, updatedAt: clock.now() } });
    });

    it('marks metadata without touching the value, and ignores an absent row', async () => {
      const { vault } = await fresh();
      const key = tokens('user:bob');
      await vault.put(key, { token: CANARY }, { expiresAt: 100, refreshAt: 50 });
      clock.advance(10);
      await vault.mark(key, { failures: 2, refreshAt: 90, lastError: 'network' });
      expect(await vault.get(key)).toMatchObject({ value: { token: CANARY }, meta: { status: 'active', failures: 2, refreshAt: 90, lastError: 'network', expiresAt: 100, updatedAt: clock.now() } });
      await vault.mark(key, { status: 'needs-consent', lastError: null, refreshAt: null });
      expect((await vault.get(key))!.meta).toMatchObject({ status: 'needs-consent', failures: 2, refreshAt: null, lastError: null });
      await vault.mark(tokens('user:nobody'), { status: 'needs-consent' });
      expect(await vault.get(tokens('user:nobody'))).toBeUndefined();
    });

    it('deletes one row, a subject at a target, or a whole target, within one tenant', async () => {
      const { vault } = await fresh();
      const rows: CredentialKey[] = [
        tokens('user:alice'),
        { ...tokens('user:alice'), kind: 'oauth-discovery' },
        tokens('user:bob'),
        tokens('service'),
        tokens('user:alice', 'jira'),
        tokens('user:alice', 'github', 'acme'),
        { tenant: 'default', target: 'github', subject: 'service', kind: 'oauth-client' },
      ];
      for (const key of rows) await vault.put(key, { k: key });
      expect(await vault.delete(tokens('user:bob'))).toBe(true);
      expect(await vault.delete(tokens('user:bob'))).toBe(false);
      expect(await vault.deleteWhere({ tenant: 'default', target: 'github', subject: 'user:alice' })).toBe(2);
      expect(await vault.get(tokens('user:alice', 'jira'))).toBeDefined();
      expect(await vault.get(tokens('user:alice', 'github', 'acme'))).toBeDefined();
      expect(await vault.deleteWhere({ tenant: 'default', target: 'github' })).toBe(2);
      expect((await vault.list()).map((s) => `${s.key.tenant}/${s.key.target}/${s.key.subject}`)).toEqual(['acme/github/user:alice', 'default/jira/user:alice']);
      expect((await rejection(vault.deleteWhere({}))).code).toBe('INVALID_PARAMS');
      expect(await vault.deleteWhere({ subject: 'user:alice' })).toBe(2);
    });

    it('lists summaries, filtered, never a value', async () => {
      const { vault } = await fresh();
      await vault.put(tokens('user:alice'), { t: CANARY });
      await vault.put(tokens('service', 'jira'), { t: CANARY });
      await vault.put({ tenant: 'default', target: 'jira', subject: 'service', kind: 'oauth-client' }, { client_secret: CANARY });
      await vault.put(tokens('user:carol', 'jira', 'acme'), { t: CANARY });
      const all = await vault.list();
      expect(all).toHaveLength(4);
      expect(JSON.stringify(all)).not.toContain(CANARY);
      expect(all[0]).toEqual({ key: tokens('user:carol', 'jira', 'acme'), meta: expect.objectContaining({ keyId: 'k1', status: 'active' }) });
      expect(Object.keys(all[0]!)).toEqual(['key', 'meta']);
      expect((await vault.list({ target: 'jira', tenant: 'default' })).map((s) => s.key.kind)).toEqual(['oauth-client', 'oauth-tokens']);
      expect((await vault.list({ subject: 'service', kind: 'oauth-tokens' })).map((s) => s.key.target)).toEqual(['jira']);
      expect(await vault.list({ tenant: 'nope' })).toEqual([]);
    });

    it('finds due refreshes: active oauth-tokens rows at or before now, earliest first, limited', async () => {
      const { vault } = await fresh();
      const now = clock.now();
      await vault.put(tokens('user:a'), {}, { refreshAt: now - 10 });
      await vault.put(tokens('user:b'), {}, { refreshAt: now });
      await vault.put(tokens('user:c'), {}, { refreshAt: now + 1 });
      await vault.put(tokens('user:d'), {}, { refreshAt: now - 20, status: 'needs-consent' });
      await vault.put(tokens('user:e'), {});
      await vault.put({ ...tokens('user:f'), kind: 'oauth-client' }, {}, { refreshAt: now - 30 });
      await vault.put(tokens('user:g'), {}, { refreshAt: now - 5 });
      expect((await vault.due(now)).map((s) => s.key.subject)).toEqual(['user:a', 'user:g', 'user:b']);
      expect((await vault.due(now, 2)).map((s) => s.key.subject)).toEqual(['user:a', 'user:g']);
      await vault.mark(tokens('user:a'), { status: 'needs-consent' });
      await vault.mark(tokens('user:g'), { refreshAt: now + 60_000 });
      expect((await vault.due(now)).map((s) => s.key.subject)).toEqual(['user:b']);
    });

    it('lets one claimant take a due row: a second claim with the same expectation loses', async () => {
      const { vault } = await fresh();
      const now = clock.now();
      await vault.put(tokens('user:a'), {}, { refreshAt: now - 10 });
      await vault.put(tokens('user:b'), {}, { refreshAt: now - 10, status: 'needs-consent' });
      expect(await vault.claim(tokens('user:a'), now - 10, now + 60_000)).toBe(true);
      expect(await vault.claim(tokens('user:a'), now - 10, now + 60_000)).toBe(false);
      expect((await vault.due(now)).map((s) => s.key.subject)).toEqual([]);
      expect((await vault.get(tokens('user:a')))?.meta.refreshAt).toBe(now + 60_000);
      // A row that needs consent is nobody's to refresh; an absent one neither.
      expect(await vault.claim(tokens('user:b'), now - 10, now + 60_000)).toBe(false);
      expect(await vault.claim(tokens('user:z'), now - 10, now + 60_000)).toBe(false);
    });

    it('keeps odd user ids exactly, and refuses key parts the AAD could not tell apart', async () => {
      const { vault } = await fresh();
      const odd = tokens('user:ali\ue000ce 😀 Straße');
      await vault.put(odd, { ok: true });
      expect(await vault.get(odd)).toMatchObject({ key: odd, value: { ok: true } });
      expect((await vault.list({ subject: odd.subject })).length).toBe(1);
      for (const bad of [tokens('user:a\u0000b'), tokens('user:\ud800'), { ...tokens('user:a'), tenant: '' }, { ...tokens('user:a'), subject: 'alice' as 'service' }, { ...tokens('user:a'), kind: 'password' as 'oauth-tokens' }]) {
        expect((await rejection(vault.put(bad, {}))).code).toBe('INVALID_PARAMS');
        expect((await rejection(vault.get(bad))).code).toBe('INVALID_PARAMS');
      }
    });

    it('refuses a tampered row, and a ciphertext copied onto another row, naming the row but no secret', async () => {
      const { table, vault } = await fresh();
      await vault.put(tokens('user:alice'), { access_token: CANARY });
      await vault.put(tokens('user:mallory'), { access_token: 'mallory-own' });
      const alice = (await table.find(tokens('user:alice')))!;
      // Mallory's row now holds Alice's envelope: same key, another AAD.
      await table.upsert({ ...alice, ...tokens('user:mallory') });
      const copied = await rejection(vault.get(tokens('user:mallory')));
      expect(copied.code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
      expect(copied.message).toContain('subject user:mallory');
      expect(copied.message).toContain('target github');
      expect(copied.message).not.toContain(CANARY);
      expect(copied.message).not.toContain(alice.ciphertext.split('.')[3]!.slice(0, 10));
      // Moved onto another kind of the same subject, too.
      await table.upsert({ ...alice, kind: 'oauth-client' });
      expect((await rejection(vault.get({ ...tokens('user:alice'), kind: 'oauth-client' }))).code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
      // A flipped character in the ciphertext.
      const parts = alice.ciphertext.split('.');
      parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
      await table.upsert({ ...alice, ciphertext: parts.join('.') });
      expect((await rejection(vault.get(tokens('user:alice')))).message).toMatch(/does not verify/);
      // The key column and the envelope disagree.
      await vault.put(tokens('user:alice'), { access_token: CANARY });
      await table.upsert({ ...(await table.find(tokens('user:alice')))!, keyId: 'k0' });
      expect((await rejection(vault.get(tokens('user:alice')))).code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    });

    it('rotates every row to a new active key in batches; the old key can then be dropped', async () => {
      const { table } = await fresh();
      const v1 = createCredentialVault(table, new VaultCipher([{ id: 'k1', secret: K1 }]), clock);
      const keys: CredentialKey[] = [];
      for (let i = 0; i < 230; i += 1) keys.push({ tenant: i % 2 === 0 ? 'default' : 'acme', target: `t${i % 7}`, subject: `user:u${i}`, kind: 'oauth-tokens' });
      keys.push(tokens('service'), { ...tokens('service'), kind: 'oauth-client' });
      for (const [i, key] of keys.entries()) await v1.put(key, { n: i, secret: CANARY }, { refreshAt: i });
      const before = await table.find(tokens('service'));

      const both = createCredentialVault(
        table,
        new VaultCipher([
          { id: 'k1', secret: K1 },
          { id: 'k2', secret: K2 },
        ]),
        clock,
      );
      expect(both.activeKeyId).toBe('k2');
      // Written after the config change: already under k2, not rewritten.
      await both.put(tokens('user:late'), { late: true });
      expect(await both.rotate()).toEqual({ rewritten: keys.length, activeKey: 'k2' });
      expect(await both.rotate()).toEqual({ rewritten: 0, activeKey: 'k2' });
      expect(await table.countByKey()).toEqual([{ keyId: 'k2', rows: keys.length + 1 }]);
      const after = await table.find(tokens('service'));
      // Metadata is untouched by rotation; only the envelope and its key change.
      expect({ ...after, ciphertext: '', keyId: '' }).toEqual({ ...before, ciphertext: '', keyId: '' });

      const k2Only = createCredentialVault(table, new VaultCipher([{ id: 'k2', secret: K2 }]), clock);
      for (const [i, key] of keys.entries()) expect((await k2Only.get(key))!.value).toEqual({ n: i, secret: CANARY });
      expect((await k2Only.get(tokens('user:late')))!.value).toEqual({ late: true });
      // The old keyring alone reads nothing any more.
      expect((await rejection(v1.get(tokens('service')))).message).toMatch(/vault key k2, which is not configured/);
    });

    it('rotates what it can and reports rows it cannot decrypt, leaving them as they are', async () => {
      const { table, vault } = await fresh();
      await vault.put(tokens('user:a'), { a: 1 });
      await vault.put(tokens('user:b'), { b: CANARY });
      await vault.put(tokens('user:c'), { c: 3 });
      const b = (await table.find(tokens('user:b')))!;
      await table.upsert({ ...b, ...tokens('user:broken'), ciphertext: b.ciphertext });
      const rotating = createCredentialVault(
        table,
        new VaultCipher([
          { id: 'k1', secret: K1 },
          { id: 'k2', secret: K2 },
        ]),
        clock,
      );
      const error = await rejection(rotating.rotate());
      expect(error.code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
      expect(error.details.data).toEqual({ rewritten: 3, unreadable: 1, activeKey: 'k2' });
      expect(error.message).toContain('subject user:broken');
      expect(error.message).not.toContain(CANARY);
      expect(await table.countByKey()).toEqual([
        { keyId: 'k1', rows: 1 },
        { keyId: 'k2', rows: 3 },
      ]);
      expect((await rotating.get(tokens('user:b')))!.value).toEqual({ b: CANARY });
    });

    it('does not overwrite a value written while a rotation read the old one', async () => {
      const { table, vault } = await fresh();
      await vault.put(tokens('user:a'), { v: 'old' });
      const old = (await table.find(tokens('user:a')))!;
      await vault.put(tokens('user:a'), { v: 'new' });
      const fresher = (await table.find(tokens('user:a')))!;
      expect(await table.replaceEnvelope(tokens('user:a'), { keyId: old.keyId, ciphertext: old.ciphertext }, { keyId: 'k9', ciphertext: 'x' })).toBe(false);
      expect(await table.find(tokens('user:a'))).toEqual(fresher);
    });
  });
}
