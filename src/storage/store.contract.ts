/**
 * The store contract: the same assertions against every Store implementation. A test file
 * calls `describeStoreContract` with a harness that hands out a store over a fresh, empty
 * database, plus raw SQL access to that database for faking versions and damage.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GatehouseError } from '../protocol/errors.ts';
import { SCHEMA_VERSION } from './migrations.ts';
import { SqlStore } from './sql-store.ts';
import { GENESIS_HASH, type AuditRow, type AuditRowInput, type Store } from './store.ts';
import { auditInput, testSeal } from './store.fixtures.ts';

export interface StoreFixture {
  /** A store over a fresh database; not migrated yet. */
  store: Store;
  /** Another store over the same database (another process or replica). */
  openAnother(): Promise<Store>;
  /** Run a raw SQL statement on the database. */
  exec(sqlText: string): Promise<void>;
  /** Everything a modification would change: tables, indexes, migration rows, row counts. */
  fingerprint(): Promise<string>;
  /** Close the stores this fixture opened and remove the database. */
  dispose(): Promise<void>;
}

export interface StoreHarness {
  fresh(): Promise<StoreFixture>;
}

async function collect(rows: AsyncIterable<AuditRow>): Promise<AuditRow[]> {
  const out: AuditRow[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

/** Every row links to the previous one and its hash matches its content. */
function expectChain(rows: readonly AuditRow[], firstPrev?: string): void {
  let prev = firstPrev ?? rows[0]?.prevHash;
  rows.forEach((row, i) => {
    if (i > 0) expect(row.seq).toBe(rows[i - 1]!.seq + 1);
    expect(row.prevHash).toBe(prev);
    expect(row.hash).toBe(testSeal(row.prevHash, row));
    prev = row.hash;
  });
}

export function describeStoreContract(name: string, harness: StoreHarness): void {
  describe(`${name} store contract`, () => {
    let fixture: StoreFixture | undefined;
    const fresh = async (migrated = true): Promise<StoreFixture> => {
      fixture = await harness.fresh();
      if (migrated) await fixture.store.migrate();
      return fixture;
    };
    afterEach(async () => {
      await fixture?.dispose();
      fixture = undefined;
    });

    it('migrates an empty database to the current version, then reports nothing to do', async () => {
      const { store } = await fresh(false);
      expect(await store.migrate()).toEqual({ from: 0, to: SCHEMA_VERSION });
      expect(await store.migrate()).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
      await store.ping();
      expect(await store.lastAudit()).toBeUndefined();
      expect(await collect(store.queryAudit({}))).toEqual([]);
      expect((await store.integrityCheck()).ok).toBe(true);
    });

    it('generates a gateway secret once and gives every process on the database the same one', async () => {
      const f = await fresh();
      const sql = (store: Store): SqlStore => {
        if (!(store instanceof SqlStore)) throw new Error('the contract runs against the SQL stores');
        return store;
      };
      const first = await sql(f.store).sharedSecret('task-id-key', () => 'first', 1);
      const other = await f.openAnother();
      expect(first).toBe('first');
      expect(await sql(other).sharedSecret('task-id-key', () => 'second', 2)).toBe('first');
      expect(await sql(other).sharedSecret('another', () => 'third', 3)).toBe('third');
    });

    it('refuses a database written by a newer version, with a typed error, and leaves it untouched', async () => {
      const f = await fresh();
      await f.store.appendAudit([auditInput()], testSeal);
      await f.exec(`insert into gatehouse_migration (name, timestamp) values ('9999_from_the_future', '2031-01-01T00:00:00.000Z')`);
      const before = await f.fingerprint();
      const later = await f.openAnother(); // as a gateway process starting on it would
      for (const store of [f.store, later]) {
        const error = await store.migrate().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(error).toBeInstanceOf(GatehouseError);
        expect((error as GatehouseError).code).toBe('STORE_VERSION_TOO_NEW');
        expect((error as GatehouseError).details.data).toEqual({ databaseVersion: 9999, supportedVersion: SCHEMA_VERSION });
        expect((error as GatehouseError).message).toMatch(/newer Gatehouse.*left unmodified/);
      }
      expect(await f.fingerprint()).toBe(before);
    });

    it('appends in order, seals the chain from the genesis hash, and continues it across appends', async () => {
      const { store } = await fresh();
      const first = await store.appendAudit([auditInput(), auditInput({ kind: 'admin', method: 'admin', tool: 'config/reload' }), auditInput()], testSeal);
      expect(first.map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(first[0]!.prevHash).toBe(GENESIS_HASH);
      expectChain(first, GENESIS_HASH);
      const second = await store.appendAudit([auditInput()], testSeal);
      expect(second[0]).toMatchObject({ seq: 4, prevHash: first[2]!.hash });
      expect(await store.lastAudit()).toEqual(second[0]);
      expect(await collect(store.queryAudit({}))).toEqual([...first, ...second]);
      expect(await store.appendAudit([], testSeal)).toEqual([]);
    });

    it('stores NUL bytes, lone surrogates, huge and deeply nested arguments exactly', async () => {
      const { store } = await fresh();
      const odd = ['nul\u0000inside', 'lone high \ud800 end', 'lone low \udc00 start', 'reversed \udc00\ud800', '\ud800', 'pair \ud83d\ude00 ok', 'escape char \ue000 and \ue0000041', '\u0000'];
      const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
      const deepObject = `${'{"a":'.repeat(50_000)}null${'}'.repeat(50_000)}`;
      const huge = JSON.stringify({ blob: 'x'.repeat(6 * 1024 * 1024), tail: '\u00e9\u4e2d\ud83d\ude00' });
      const rows = [
        ...odd.map((text) => auditInput({ args: JSON.stringify({ text }), user: text, tool: text, requestId: text, sessionId: text, errorType: text })),
        // Raw (unescaped) text too: the store keeps whatever string it is given.
        ...odd.map((text) => auditInput({ args: text })),
        auditInput({ args: deep }),
        auditInput({ args: deepObject }),
        auditInput({ args: huge }),
        auditInput({ latencyMs: 0.1 + 0.2, time: Number.MAX_SAFE_INTEGER, bytesIn: 0, bytesOut: 2 ** 40 }),
      ];
      const written = await store.appendAudit(rows, testSeal);
      const read = await collect(store.queryAudit({}));
      expect(read.length).toBe(rows.length);
      read.forEach((row, i) => {
        // Compared field by field: one mismatch in a 6 MB string should not print it all.
        for (const key of Object.keys(written[i]!) as (keyof AuditRow)[]) {
          if (row[key] !== written[i]![key]) expect.fail(`row ${i} field ${key} changed on the way through the database`);
        }
      });
      expectChain(read, GENESIS_HASH);
      for (const text of odd) {
        const matches = await collect(store.queryAudit({ user: text }));
        expect(matches.map((r) => r.tool)).toEqual([text]);
      }
    });

    it('filters by time range, user, agent, tool, outcome and tenant, and pages with afterSeq and limit', async () => {
      const { store } = await fresh();
      const inputs: AuditRowInput[] = [];
      for (let i = 0; i < 60; i++) {
        inputs.push(
          auditInput({
            time: 10_000 + i * 10,
            user: i % 2 === 0 ? 'alice' : 'bob',
            agent: i % 3 === 0 ? 'agent-a' : 'agent-b',
            tool: i % 4 === 0 ? 'search' : 'echo',
            outcome: i % 5 === 0 ? 'error' : 'ok',
            tenant: i < 30 ? 'acme' : 'globex',
          }),
        );
      }
      const all = await store.appendAudit(inputs, testSeal);
      const seqs = async (query: Parameters<Store['queryAudit']>[0]): Promise<number[]> => (await collect(store.queryAudit(query))).map((r) => r.seq);
      const expected = (pick: (row: AuditRow) => boolean): number[] => all.filter(pick).map((r) => r.seq);
      expect(await seqs({ user: 'bob' })).toEqual(expected((r) => r.user === 'bob'));
      expect(await seqs({ agent: 'agent-a' })).toEqual(expected((r) => r.agent === 'agent-a'));
      expect(await seqs({ tool: 'search' })).toEqual(expected((r) => r.tool === 'search'));
      expect(await seqs({ outcome: 'error' })).toEqual(expected((r) => r.outcome === 'error'));
      expect(await seqs({ tenant: 'globex' })).toEqual(expected((r) => r.tenant === 'globex'));
      // `from` is inclusive, `to` exclusive.
      expect(await seqs({ from: 10_100, to: 10_200 })).toEqual(expected((r) => r.time >= 10_100 && r.time < 10_200));
      expect(await seqs({ user: 'alice', tool: 'search', outcome: 'error', from: 10_000 })).toEqual(expected((r) => r.user === 'alice' && r.tool === 'search' && r.outcome === 'error'));
      expect(await seqs({ user: 'nobody' })).toEqual([]);
      expect(await seqs({ afterSeq: 55 })).toEqual([56, 57, 58, 59, 60]);
      expect(await seqs({ user: 'alice', limit: 3 })).toEqual([1, 3, 5]);
      expect(await seqs({ user: 'alice', afterSeq: 5, limit: 2 })).toEqual([7, 9]);
    });

    it('streams large results page by page, cutting pages by size as well as by count', async () => {
      const { store } = await fresh();
      await store.appendAudit(Array.from({ length: 1_234 }, () => auditInput()), testSeal);
      const big = 'y'.repeat(3 * 1024 * 1024);
      await store.appendAudit(Array.from({ length: 5 }, () => auditInput({ args: big })), testSeal);
      let count = 0;
      let last = 0;
      for await (const row of store.queryAudit({})) {
        expect(row.seq).toBe(last + 1);
        last = row.seq;
        count += 1;
      }
      expect(count).toBe(1_239);
      const tail = await collect(store.queryAudit({ afterSeq: 1_234 }));
      expect(tail.map((r) => r.args?.length)).toEqual([big.length, big.length, big.length, big.length, big.length]);
      // An abandoned iteration holds nothing open: the store keeps working.
      for await (const row of store.queryAudit({})) if (row.seq === 10) break;
      await store.appendAudit([auditInput()], testSeal);
    });

    it('prunes by count and by age as a prefix of the chain, and keeps the chain going', async () => {
      const { store } = await fresh();
      await store.appendAudit(Array.from({ length: 100 }, (_, i) => auditInput({ time: 1_000 + i })), testSeal);
      expect(await store.pruneAudit({ keep: 30 })).toBe(70);
      expect((await collect(store.queryAudit({}))).map((r) => r.seq)[0]).toBe(71);
      expect(await store.pruneAudit({ before: 1_080 })).toBe(10);
      expect((await collect(store.queryAudit({})))[0]!.seq).toBe(81);
      expect(await store.pruneAudit({ keep: 1_000, before: 0 })).toBe(0);
      // Age pruning stops at the first recent row, so an older row after it stays (no holes).
      await store.appendAudit([auditInput({ time: 5 }), auditInput({ time: 9_999 })], testSeal);
      expect(await store.pruneAudit({ before: 1_095 })).toBe(15); // seq 81..95; seq 101 (time 5) stays
      expect((await collect(store.queryAudit({}))).map((r) => r.seq)).toEqual([96, 97, 98, 99, 100, 101, 102]);
      expect((await store.integrityCheck()).ok).toBe(true);
      // Everything pruned: the next row still chains to the last one written.
      expect(await store.pruneAudit({ keep: 0 })).toBe(7);
      expect(await store.lastAudit()).toBeUndefined();
      const [next] = await store.appendAudit([auditInput()], testSeal);
      expect(next).toMatchObject({ seq: 103 });
      expect(next!.prevHash).not.toBe(GENESIS_HASH);
      expect((await store.integrityCheck()).ok).toBe(true);
    });

    it('prunes more rows than one delete batch', async () => {
      const { store } = await fresh();
      for (let i = 0; i < 6; i++) await store.appendAudit(Array.from({ length: 2_000 }, () => auditInput({ args: null })), testSeal);
      expect(await store.pruneAudit({ keep: 500 })).toBe(11_500);
      expect((await collect(store.queryAudit({ limit: 1 })))[0]!.seq).toBe(11_501);
      expect(await store.pruneAudit({ before: Number.MAX_SAFE_INTEGER })).toBe(500);
    });

    it('checks integrity: the engine check passes, and a hole or a stale head is found and named', async () => {
      const f = await fresh();
      await f.store.appendAudit(Array.from({ length: 10 }, () => auditInput()), testSeal);
      const healthy = await f.store.integrityCheck();
      expect(healthy).toMatchObject({ ok: true });
      expect(healthy.detail).toContain('seq 1..10 contiguous');
      await f.exec('delete from gatehouse_audit where seq = 4');
      const holed = await f.store.integrityCheck();
      expect(holed.ok).toBe(false);
      expect(holed.detail).toContain('seq 4 is the first missing');
      await f.exec('delete from gatehouse_audit where seq <= 4');
      expect((await f.store.integrityCheck()).ok).toBe(true);
      await f.exec('update gatehouse_audit_head set last_seq = 11');
      expect(await f.store.integrityCheck()).toMatchObject({ ok: false, detail: expect.stringContaining('head says 11') });
    });

    it('keeps one gap-free chain under concurrent appends from two stores on one database', async () => {
      const f = await fresh();
      const other = await f.openAnother();
      const batches = Array.from({ length: 20 }, (_, b) => Array.from({ length: 5 }, (_, i) => auditInput({ requestId: `b${b}-r${i}` })));
      const results = await Promise.all(batches.map((batch, b) => (b % 2 === 0 ? f.store : other).appendAudit(batch, testSeal)));
      for (const [b, written] of results.entries()) {
        // A batch's rows are consecutive and in the order given.
        expect(written.map((r) => r.requestId)).toEqual(batches[b]!.map((r) => r.requestId));
        expect(written.map((r) => r.seq - written[0]!.seq)).toEqual([0, 1, 2, 3, 4]);
      }
      const read = await collect(other.queryAudit({}));
      expect(read.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expectChain(read, GENESIS_HASH);
    });

    it('rolls back a failed append entirely', async () => {
      const { store } = await fresh();
      await store.appendAudit([auditInput()], testSeal);
      await expect(store.appendAudit([auditInput(), auditInput({ latencyMs: Number.NaN })], testSeal)).rejects.toThrow(/latencyMs/);
      await expect(store.appendAudit([auditInput({ time: 1.5 })], testSeal)).rejects.toThrow(/time/);
      let calls = 0;
      const failingSeal = (prev: string, row: AuditRowInput): string => {
        calls += 1;
        if (calls === 2) throw new Error('sealer failed');
        return testSeal(prev, row);
      };
      await expect(store.appendAudit([auditInput(), auditInput()], failingSeal)).rejects.toThrow('sealer failed');
      expect((await collect(store.queryAudit({}))).map((r) => r.seq)).toEqual([1]);
      const [next] = await store.appendAudit([auditInput()], testSeal);
      expect(next!.seq).toBe(2);
      expect((await store.integrityCheck()).ok).toBe(true);
    });

    it('closes idempotently and refuses work afterwards', async () => {
      const f = await fresh();
      await f.store.close();
      await f.store.close();
      await expect(f.store.ping()).rejects.toThrow(/closed/);
      await expect(f.store.appendAudit([auditInput()], testSeal)).rejects.toThrow(/closed/);
    });
  });
}
