// Runs the store contract against a real, throwaway PostgreSQL server started by the test
// itself (test/support/postgres-server.ts): one server for this file, one database per test.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../test/support/postgres-server.ts';
import { describeStoreContract, type StoreHarness } from './store.contract.ts';
import { auditInput, testSeal } from './store.fixtures.ts';
import { PostgresStore } from './postgres-store.ts';
import type { Store } from './store.ts';
import { SCHEMA_VERSION } from './migrations.ts';

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
async function freshDatabase(): Promise<{ name: string; url: string }> {
  const name = `store_${++databases}`;
  return { name, url: await server.createDatabase(name) };
}

const harness: StoreHarness = {
  async fresh() {
    const { name, url } = await freshDatabase();
    const stores: Store[] = [];
    const open = (): Store => {
      const store = PostgresStore.open({ connectionString: url, max: 4 });
      stores.push(store);
      return store;
    };
    return {
      store: open(),
      openAnother: async () => open(),
      exec: async (text) => withClient(url, async (client) => void (await client.query(text))),
      fingerprint: async () =>
        withClient(url, async (client) => {
          const parts = [
            (await client.query(`select table_name, column_name, data_type, is_nullable from information_schema.columns where table_schema = 'public' order by 1, 2`)).rows,
            (await client.query(`select indexname, indexdef from pg_indexes where schemaname = 'public' order by 1`)).rows,
            (await client.query('select * from gatehouse_migration order by name')).rows,
            (await client.query('select * from gatehouse_audit_head')).rows,
            (await client.query('select seq, hash from gatehouse_audit order by seq')).rows,
          ];
          return JSON.stringify(parts);
        }),
      dispose: async () => {
        for (const store of stores) await store.close();
        await withClient(server.url, async (client) => void (await client.query(`drop database ${pg.escapeIdentifier(name)} with (force)`)));
      },
    };
  },
};

describeStoreContract('PostgreSQL', harness);

describe('PostgreSQL store', () => {
  it('uses amcheck for the page-level check when the database has it, and says so when not', async () => {
    const { url } = await freshDatabase();
    const store = PostgresStore.open({ connectionString: url });
    try {
      await store.migrate();
      await store.appendAudit(Array.from({ length: 50 }, () => auditInput()), testSeal);
      const without = await store.integrityCheck();
      expect(without.ok).toBe(true);
      expect(without.detail).toContain('amcheck: not installed');
      await withClient(url, async (client) => void (await client.query('create extension amcheck')));
      const withAmcheck = await store.integrityCheck();
      expect(withAmcheck.ok).toBe(true);
      // The audit table's primary key and 6 filter indexes, and the head's primary key.
      expect(withAmcheck.detail).toContain('amcheck: heap of 2 tables and 8 b-tree indexes verified');
      expect(withAmcheck.detail).toContain('seq 1..50 contiguous');
    } finally {
      await store.close();
    }
  });

  it('survives the server closing its pooled connections, and reconnects on the next call', async () => {
    const { name, url } = await freshDatabase();
    const store = PostgresStore.open({ connectionString: url, max: 4 });
    try {
      await store.migrate();
      await Promise.all([store.ping(), store.ping(), store.ping()]); // several idle connections
      const killed = await withClient(server.url, async (client) => {
        const result = await client.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
        return result.rowCount;
      });
      expect(killed).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 100)); // the idle clients' 'error' events arrive
      // The first call may draw a connection the server already closed; the store must recover.
      await store.ping().catch(() => undefined);
      await store.ping();
      const [row] = await store.appendAudit([auditInput()], testSeal);
      expect(row!.seq).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('lets replicas that start together migrate one fresh database once', async () => {
    const { url } = await freshDatabase();
    const replicas = Array.from({ length: 4 }, () => PostgresStore.open({ connectionString: url, max: 2 }));
    try {
      const outcomes = await Promise.all(replicas.map((store) => store.migrate()));
      for (const outcome of outcomes) expect(outcome.to).toBe(SCHEMA_VERSION);
      const applied = await withClient(url, async (client) => (await client.query('select name from gatehouse_migration')).rows.length);
      expect(applied).toBe(SCHEMA_VERSION);
      const [row] = await replicas[3]!.appendAudit([auditInput()], testSeal);
      expect(row!.seq).toBe(1);
    } finally {
      for (const store of replicas) await store.close();
    }
  });

  it('starts its server quickly (initdb, pg_ctl start, create database)', () => {
    // Recorded for the CI budget; generous bounds for a loaded 2-core machine.
    expect(server.timings.initdbMs).toBeLessThan(30_000);
    expect(server.timings.startMs).toBeLessThan(30_000);
  });
});
