// Kill -9 of the gateway under load, in SQLite mode and in PostgreSQL mode, then restart:
// every response a client received has exactly one audit row, the database passes its
// integrity check and its hash chain verifies, and the gateway is ready again within 5 s.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/chain.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { openStore } from '../../src/storage/open-store.ts';
import type { AuditRow } from '../../src/storage/store.ts';
import { faultStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { startPostgres, type PostgresServer } from '../support/postgres-server.ts';
import { createLogger } from '../../src/telemetry/log.ts';

const MAIN = path.join(REPO_ROOT, 'src/main.ts');
const READY_BUDGET_MS = 5_000;
const LOAD_WORKERS = 8;
/** Bounded load: the kill lands after this many answered calls, or after this long. */
const CALLS_BEFORE_KILL = 150;
const LOAD_LIMIT_MS = 20_000;

interface RunningGateway {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

function startGatewayProcess(configFile: string): Promise<RunningGateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--config', configFile], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start:\n${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}):\n${stderr}`));
    });
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-64 * 1024);
      const match = /MCP endpoint[^:]*: (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(stderr);
      if (match?.[1]) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, url: match[1], stderr: () => stderr });
      }
    });
  });
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const MODERN_META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };

/** One stateless 2026-07-28 call carrying a unique marker; resolves with the marker when answered with a result. */
async function markedCall(url: string): Promise<string | undefined> {
  const marker = randomUUID();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'ping_tool' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ping_tool', arguments: { marker }, _meta: MODERN_META } }),
  });
  const body = (await res.json()) as { result?: unknown };
  return body.result === undefined ? undefined : marker;
}

/** Drive load until `CALLS_BEFORE_KILL` answers, then kill -9 while calls are still in flight. */
async function loadThenKill(gw: RunningGateway): Promise<string[]> {
  const received: string[] = [];
  const deadline = Date.now() + LOAD_LIMIT_MS;
  let killing: Promise<void> | undefined;
  const worker = async (): Promise<void> => {
    while (killing === undefined && Date.now() < deadline) {
      try {
        const marker = await markedCall(gw.url);
        if (marker !== undefined) received.push(marker);
      } catch {
        return; // the connection died with the gateway
      }
      if (received.length >= CALLS_BEFORE_KILL) killing ??= killHard(gw.child);
    }
  };
  await Promise.all(Array.from({ length: LOAD_WORKERS }, () => worker()));
  await (killing ?? killHard(gw.child));
  return received;
}

async function waitReady(base: string): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < 15_000) {
    const res = await fetch(`${base}/readyz`).catch(() => undefined);
    if (res?.status === 200) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('not ready within 15 s');
}

function writeConfig(dir: string, storage: Record<string, unknown>): string {
  const fault = faultStdioCommand();
  const file = path.join(dir, 'gatehouse.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      listener: { host: '127.0.0.1', port: 0 },
      admin: { port: 0 },
      logging: { level: 'warn' },
      storage,
      targets: { ok: { transport: 'stdio', command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'ok' }, era: 'legacy' } },
    }),
  );
  return file;
}

async function auditRows(configFile: string): Promise<{ rows: AuditRow[]; integrity: { ok: boolean; detail: string }; chainOk: boolean }> {
  const config = await loadConfigFile(configFile, { configDir: path.dirname(configFile), port: undefined });
  const store = await openStore(config, createLogger('silent'));
  try {
    const rows: AuditRow[] = [];
    for await (const row of store.queryAudit({})) rows.push(row);
    const chain = await verifyChain(store.queryAudit({}));
    return { rows, integrity: await store.integrityCheck(), chainOk: chain.ok };
  } finally {
    await store.close();
  }
}

async function crashAndRecover(configFile: string): Promise<void> {
  const first = await startGatewayProcess(configFile);
  const received = await loadThenKill(first);
  expect(received.length).toBeGreaterThanOrEqual(CALLS_BEFORE_KILL);

  // Restart on the same database (the port may differ: the config asks for any free one).
  const restartedAt = Date.now();
  const second = await startGatewayProcess(configFile);
  try {
    await waitReady(second.url.replace(/\/mcp$/, ''));
    // From spawning the process (tsx start-up, migration check, target handshake included).
    expect(Date.now() - restartedAt).toBeLessThan(READY_BUDGET_MS);
    expect(await markedCall(second.url)).toBeDefined();
  } finally {
    await killHard(second.child);
  }

  const { rows, integrity, chainOk } = await auditRows(configFile);
  expect(integrity.ok, integrity.detail).toBe(true);
  expect(chainOk).toBe(true);
  const byMarker = new Map<string, number>();
  for (const row of rows) {
    const marker = row.args === null ? undefined : (JSON.parse(row.args) as { marker?: string }).marker;
    if (marker !== undefined) byMarker.set(marker, (byMarker.get(marker) ?? 0) + 1);
  }
  const missing = received.filter((m) => byMarker.get(m) !== 1);
  expect(missing, `answered calls without exactly one audit row`).toEqual([]);
}

describe('kill -9 under load', () => {
  it('SQLite: every answered call has exactly one row, the file is intact, ready again quickly', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-kill-sqlite-'));
    await crashAndRecover(writeConfig(dir, { driver: 'sqlite', path: path.join(dir, 'gatehouse.db') }));
  });

  describe('PostgreSQL', () => {
    let pg: PostgresServer;
    beforeAll(async () => {
      pg = await startPostgres();
    }, 120_000);
    afterAll(async () => {
      await pg?.stop();
    });

    it('every answered call has exactly one row, the database is consistent, ready again quickly', { timeout: 120_000 }, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-kill-pg-'));
      await crashAndRecover(writeConfig(dir, { driver: 'postgres', url: pg.url }));
    });
  });
});
