// The credential vault contract on real SQLite (a temp folder per test, removed after), plus a
// check that the migration created the refresh job's index.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { describeCredentialVaultContract, type CredentialTableFixture } from './credential-vault.contract.ts';

async function freshSqlite(): Promise<CredentialTableFixture & { file: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-vault-sqlite-'));
  const file = path.join(dir, 'gatehouse.db');
  const store = SqliteStore.open({ file });
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    file,
    table: store.credentialTable(),
    dispose: async () => {
      try {
        await store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

describeCredentialVaultContract('SQLite', { fresh: freshSqlite });

describe('credential table on SQLite', () => {
  it('has the primary key and the (status, refresh_at) index the due query uses', async () => {
    const fixture = await freshSqlite();
    try {
      const db = new BetterSqlite3(fixture.file, { readonly: true });
      try {
        const indexes = db.prepare(`select name from pragma_index_list('gatehouse_upstream_credentials') order by name`).all() as Array<{ name: string }>;
        expect(indexes.map((i) => i.name)).toContain('gatehouse_upstream_credentials_due');
        const columns = db.prepare(`select name from pragma_index_info('gatehouse_upstream_credentials_due') order by seqno`).all() as Array<{ name: string }>;
        expect(columns.map((c) => c.name)).toEqual(['status', 'refresh_at']);
        const plan = db.prepare(`explain query plan select * from gatehouse_upstream_credentials where status = 'active' and refresh_at <= 5 and kind = 'oauth-tokens' order by refresh_at limit 10`).all() as Array<{ detail: string }>;
        expect(plan.map((p) => p.detail).join(' ')).toContain('gatehouse_upstream_credentials_due');
      } finally {
        db.close();
      }
    } finally {
      await fixture.dispose();
    }
  });
});
