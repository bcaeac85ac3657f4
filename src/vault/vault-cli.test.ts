// `gatehouse vault generate-key|status|rotate` against a real SQLite store: a generated key is
// accepted by the keyring, status counts rows per key without printing a secret, rotation moves
// every row to the active key so the old one can be dropped.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { parseConfig } from '../config/load.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { createCredentialVault } from './credential-vault.ts';
import { registerVaultCommands } from './vault-cli.ts';
import { VaultCipher, createVaultCipher } from './vault-cipher.ts';

const CANARY = 'canary-cli-0c2d-refresh-token';

describe('gatehouse vault', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-vault-cli-'));
  const file = path.join(dir, 'gatehouse.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const output: string[] = [];
  const run = async (config: GatehouseConfig | undefined, ...args: string[]): Promise<string> => {
    output.length = 0;
    const program = new Command('gatehouse').exitOverride();
    registerVaultCommands(
      program,
      async () => {
        const store = SqliteStore.open({ file });
        await store.migrate();
        return { table: store.credentialTable(), config: config!, configDir: dir, close: () => store.close() };
      },
      (text) => output.push(text),
    );
    await program.parseAsync(['node', 'gatehouse', 'vault', ...args, ...(config === undefined ? [] : ['-c', 'unused.yaml'])]);
    return output.join('');
  };
  const configWith = (vault: unknown): GatehouseConfig => parseConfig({ targets: { t: { transport: 'stdio', command: 'true' } }, vault }, 'test', { configDir: dir });

  it('generates keys the keyring accepts, a different one each time', async () => {
    const first = (await run(undefined, 'generate-key')).split('\n')[0]!;
    const second = (await run(undefined, 'generate-key')).split('\n')[0]!;
    expect(first).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(first).not.toBe(second);
    expect(new VaultCipher([{ id: 'k', secret: first }]).activeKeyId).toBe('k');
    expect(await run(undefined, 'generate-key')).toContain('vault.keys');
  });

  it('reports keys and row counts, rotates, and shows the old key may be dropped', async () => {
    const k1 = (await run(undefined, 'generate-key')).split('\n')[0]!;
    const k2 = (await run(undefined, 'generate-key')).split('\n')[0]!;
    writeFileSync(path.join(dir, 'k1.key'), k1);
    writeFileSync(path.join(dir, 'k2.key'), k2);
    const oneKey = configWith({ keys: [{ id: 'k1', secret: { file: 'k1.key' } }] });
    const twoKeys = configWith({
      keys: [
        { id: 'k1', secret: { file: 'k1.key' } },
        { id: 'k2', secret: { file: 'k2.key' } },
      ],
    });
    const onlyNew = configWith({ keys: [{ id: 'k2', secret: { file: 'k2.key' } }] });

    // Rows written under k1, as a running gateway would.
    const store = SqliteStore.open({ file });
    await store.migrate();
    const clock = new ManualClock();
    const vault = createCredentialVault(store.credentialTable(), createVaultCipher(oneKey.vault, dir), clock);
    for (const user of ['alice', 'bob', 'carol']) await vault.put({ tenant: 'default', target: 't', subject: `user:${user}`, kind: 'oauth-tokens' }, { refresh_token: CANARY });
    await store.close();

    const before = await run(twoKeys, 'status');
    expect(before).toContain('active key: k2');
    expect(before).toContain('key check: ok');
    expect(before).toMatch(/k1 +3 rows +decrypt only \(run `gatehouse vault rotate`\)/);
    expect(before).toMatch(/k2 +0 rows +active/);
    expect(await run(onlyNew, 'status')).toMatch(/k1 +3 rows +NOT CONFIGURED/);

    expect(await run(twoKeys, 'rotate')).toBe('rewrote 3 credential(s) under key k2\n');
    expect(await run(twoKeys, 'rotate')).toBe('rewrote 0 credential(s) under key k2\n');
    expect(await run(twoKeys, 'status')).toMatch(/k1 +0 rows +decrypt only \(no rows: may be dropped\)/);
    const json = JSON.parse(await run(onlyNew, 'status', '--json')) as unknown;
    expect(json).toEqual({ activeKey: 'k2', keyCheck: 'ok', keys: [{ id: 'k2', configured: true, active: true, rows: 3 }] });

    // With only the new key, every row still reads.
    const reopened = SqliteStore.open({ file });
    try {
      const k2Only = createCredentialVault(reopened.credentialTable(), createVaultCipher(onlyNew.vault, dir), clock);
      expect((await k2Only.get({ tenant: 'default', target: 't', subject: 'user:bob', kind: 'oauth-tokens' }))!.value).toEqual({ refresh_token: CANARY });
    } finally {
      await reopened.close();
    }

    // A broken key is reported by status (by id, never by value) and refused by rotate.
    writeFileSync(path.join(dir, 'bad.key'), 'not-a-key');
    const broken = configWith({ keys: [{ id: 'k2', secret: { file: 'k2.key' } }, { id: 'k3', secret: { file: 'bad.key' } }] });
    const status = await run(broken, 'status');
    expect(status).toMatch(/key check: vault\.keys k3: the secret must be 32 random bytes/);
    expect(status).not.toContain('not-a-key');
    await expect(run(broken, 'rotate')).rejects.toThrow(/vault\.keys k3/);
    for (const text of [before, status]) {
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain(k1);
      expect(text).not.toContain(k2);
    }
  });
});
