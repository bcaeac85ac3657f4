import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { describeStoreContract, type StoreHarness } from './store.contract.ts';
import { auditInput, testSeal } from './store.fixtures.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { AuditRow, Store } from './store.ts';

const scratch: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sqlite-'));
  scratch.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function withRaw<T>(file: string, use: (db: BetterSqlite3.Database) => T): T {
  const db = new BetterSqlite3(file, { timeout: 5_000 });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

const harness: StoreHarness = {
  async fresh() {
    const dir = tempDir();
    const file = path.join(dir, 'data', 'gatehouse.db');
    const stores: Store[] = [];
    const open = (): Store => {
      const store = SqliteStore.open({ file });
      stores.push(store);
      return store;
    };
    return {
      store: open(),
      openAnother: async () => open(),
      exec: async (text) => withRaw(file, (db) => void db.exec(text)),
      fingerprint: async () =>
        withRaw(file, (db) =>
          JSON.stringify([
            db.prepare('select type, name, sql from sqlite_master order by name').all(),
            db.prepare('select * from gatehouse_migration order by name').all(),
            db.prepare('select * from gatehouse_audit_head').all(),
            db.prepare('select seq, hash from gatehouse_audit order by seq').all(),
          ]),
        ),
      dispose: async () => {
        for (const store of stores) await store.close();
      },
    };
  },
};

describeStoreContract('SQLite', harness);

describe('SQLite store', () => {
  it('creates a private file in WAL mode under a new data directory', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'nested', 'data', 'gatehouse.db');
    const store = SqliteStore.open({ file });
    try {
      await store.migrate();
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      expect(withRaw(file, (db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
    } finally {
      await store.close();
    }
  });

  it('waits for another connection\'s write lock without blocking the event loop', async () => {
    const file = path.join(tempDir(), 'gatehouse.db');
    const store = SqliteStore.open({ file, busyTimeoutMs: 5_000 });
    try {
      await store.migrate();
      const holder = new BetterSqlite3(file);
      holder.exec('begin immediate');
      let ticks = 0;
      const ticker = setInterval(() => (ticks += 1), 10);
      const append = store.appendAudit([auditInput()], testSeal);
      await new Promise((r) => setTimeout(r, 300));
      holder.exec('commit');
      holder.close();
      const [row] = await append;
      clearInterval(ticker);
      expect(row!.seq).toBe(1);
      expect(ticks).toBeGreaterThan(10);
      // And gives up with SQLITE_BUSY once its own timeout passes.
      const short = SqliteStore.open({ file, busyTimeoutMs: 100 });
      const blocker = new BetterSqlite3(file);
      blocker.exec('begin immediate');
      await expect(short.appendAudit([auditInput()], testSeal)).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      blocker.exec('rollback');
      blocker.close();
      await short.close();
    } finally {
      await store.close();
    }
  });

  it('reports a damaged index page from PRAGMA integrity_check', async () => {
    const file = path.join(tempDir(), 'gatehouse.db');
    const store = SqliteStore.open({ file });
    await store.migrate();
    await store.appendAudit(Array.from({ length: 2_000 }, (_, i) => auditInput({ user: `user-${i % 97}` })), testSeal);
    await store.close(); // checkpoints the WAL into the file
    const { rootpage, pageSize } = withRaw(file, (db) => ({
      rootpage: (db.prepare(`select rootpage from sqlite_master where name = 'gatehouse_audit_user_id'`).get() as { rootpage: number }).rootpage,
      pageSize: db.pragma('page_size', { simple: true }) as number,
    }));
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(pageSize - 200, 0xa5), 0, pageSize - 200, (rootpage - 1) * pageSize + 100);
    closeSync(fd);
    const reopened = SqliteStore.open({ file });
    try {
      const verdict = await reopened.integrityCheck();
      expect(verdict.ok).toBe(false);
      expect(verdict.detail).toMatch(/^PRAGMA integrity_check: /);
    } finally {
      await reopened.close();
    }
  });

  it('keeps every acknowledged append when the writing process is killed with SIGKILL', { timeout: 60_000 }, async () => {
    const file = path.join(tempDir(), 'gatehouse.db');
    const here = path.dirname(fileURLToPath(import.meta.url));
    // The writer acknowledges each batch on stdout only after appendAudit resolved.
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(path.join(here, 'sqlite-store.ts'))});
      const { auditInput, testSeal } = await import(${JSON.stringify(path.join(here, 'store.fixtures.ts'))});
      const store = SqliteStore.open({ file: ${JSON.stringify(file)} });
      await store.migrate();
      for (let i = 0; i < 100000; i++) {
        const rows = await store.appendAudit(Array.from({ length: 10 }, () => auditInput({ args: JSON.stringify({ i, pad: 'z'.repeat(500) }) })), testSeal);
        process.stdout.write(rows.at(-1).seq + '\\n');
      }`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = 0;
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) acked = Math.max(acked, Number(line));
        if (acked >= 2_000) resolve();
      });
    });
    child.removeAllListeners('exit');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const store = SqliteStore.open({ file });
    try {
      const last = await store.lastAudit();
      expect(last!.seq).toBeGreaterThanOrEqual(acked);
      expect((await store.integrityCheck()).ok).toBe(true);
      let expected = 1;
      let prev: AuditRow | undefined;
      for await (const row of store.queryAudit({})) {
        expect(row.seq).toBe(expected++);
        if (prev) expect(row.prevHash).toBe(prev.hash);
        expect(row.hash).toBe(testSeal(row.prevHash, row));
        prev = row;
      }
      // The chain continues after the crash.
      const [next] = await store.appendAudit([auditInput()], testSeal);
      expect(next!.prevHash).toBe(last!.hash);
    } finally {
      await store.close();
    }
  });
});
