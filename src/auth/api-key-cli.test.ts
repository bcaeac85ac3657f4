// `gatehouse keys create|list|revoke` against a real SQLite store: the key is printed once,
// listing never shows a secret or a hash, revocation takes effect.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { registerApiKeyCommands } from './api-key-cli.ts';
import { hashApiKey } from './api-keys.ts';

describe('gatehouse keys', () => {
  it('creates (printing the key once), lists without secrets, and revokes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-keys-cli-'));
    const file = path.join(dir, 'gatehouse.db');
    const config = parseConfig({ auth: { mode: 'oauth', apiKeys: { maxTtlDays: 30 } }, targets: { t: { transport: 'stdio', command: 'true' } } }, 'test', { configDir: dir });
    const output: string[] = [];
    const run = async (...args: string[]): Promise<string> => {
      output.length = 0;
      const program = new Command('gatehouse').exitOverride();
      registerApiKeyCommands(
        program,
        async () => {
          const store = SqliteStore.open({ file });
          await store.migrate();
          return { keys: store.apiKeyStore(), config, close: () => store.close() };
        },
        (text) => output.push(text),
      );
      await program.parseAsync(['node', 'gatehouse', 'keys', ...args, '-c', 'unused.yaml']);
      return output.join('');
    };
    const created = await run('create', '--user', 'svc-ci', '--agent', 'ci-bot', '--roles', 'reader,builder', '--ttl-days', '7');
    const secret = /gh_[A-Za-z0-9_-]{43}/.exec(created)![0];
    expect(created).toContain('shown once');
    const listed = await run('list');
    expect(listed).toMatch(/key_\w+ +active +user=svc-ci agent=ci-bot tenant=default roles=reader,builder/);
    expect(listed).not.toContain(secret);
    expect(listed).not.toContain(hashApiKey(secret));
    const json = await run('list', '--json');
    expect(json).not.toContain(hashApiKey(secret));
    const id = /key_\w+/.exec(listed)![0];
    expect(await run('revoke', id)).toBe(`revoked ${id}\n`);
    expect(await run('list')).toMatch(/revoked/);
    await expect(run('revoke', id)).rejects.toThrow(/no active API key/);
    await expect(run('create', '--user', 'u', '--agent', 'a', '--ttl-days', '31')).rejects.toThrow(/maxTtlDays/);
    await expect(run('create', '--user', 'u', '--agent', 'a', '--ttl-days', '1', '--tenant', 'nope')).rejects.toThrow(/auth.tenants/);
  });
});
