// The credential vault contract on a real, throwaway PostgreSQL server started by this file
// (test/support/postgres-server.ts): one server, one database per test, dropped after.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../test/support/postgres-server.ts';
import { PostgresStore } from '../storage/postgres-store.ts';
import { describeCredentialVaultContract, type CredentialTableFixture } from './credential-vault.contract.ts';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
}, 120_000);
afterAll(async () => {
  await server?.stop();
});

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

let databases = 0;
async function freshPostgres(): Promise<CredentialTableFixture & { url: string }> {
  const name = `vault_${++databases}`;
  const url = await server.createDatabase(name);
  const store = PostgresStore.open({ connectionString: url, max: 4 });
  const dispose = async (): Promise<void> => {
    try {
      await store.close();
    } finally {
      await withClient(server.url, async (client) => void (await client.query(`drop database ${pg.escapeIdentifier(name)} with (force)`)));
    }
  };
  try {
    await store.migrate();
  } catch (err) {
    await dispose();
    throw err;
  }
  return { url, table: store.credentialTable(), dispose };
}

describeCredentialVaultContract('PostgreSQL', { fresh: freshPostgres });

describe('credential table on PostgreSQL', () => {
  it('has the primary key and the (status, refresh_at) index, and bigint times', async () => {
    const fixture = await freshPostgres();
    try {
      const { indexes, types } = await withClient(fixture.url, async (client) => ({
        indexes: (await client.query<{ indexdef: string }>(`select indexdef from pg_indexes where tablename = 'gatehouse_upstream_credentials' order by indexname`)).rows.map((r) => r.indexdef),
        types: (await client.query<{ column_name: string; data_type: string }>(`select column_name, data_type from information_schema.columns where table_name = 'gatehouse_upstream_credentials' and column_name like '%_at' order by 1`)).rows,
      }));
      expect(indexes.join('\n')).toMatch(/gatehouse_upstream_credentials_due .*\(status, refresh_at\)/);
      expect(indexes.join('\n')).toMatch(/gatehouse_upstream_credentials_pk .*\(tenant, target, subject, kind\)/);
      expect(types.every((t) => t.data_type === 'bigint')).toBe(true);
    } finally {
      await fixture.dispose();
    }
  });
});
