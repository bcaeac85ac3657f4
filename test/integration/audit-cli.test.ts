// The operator's commands on a real SQLite trail: `gatehouse migrate`, `gatehouse audit verify`
// (clean, then after a row is edited behind the gateway's back) and `gatehouse audit query`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditWriter } from '../../src/audit/audit-writer.ts';
import { systemClock } from '../../src/clock.ts';
import { openStore } from '../../src/storage/open-store.ts';
import type { AuditRowInput } from '../../src/storage/store.ts';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';

const MAIN = path.join(REPO_ROOT, 'src/main.ts');

function gatehouse(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const row = (n: number, tool: string, outcome: string): AuditRowInput => ({
  time: Date.parse('2026-11-01T00:00:00Z') + n * 60_000,
  kind: 'call',
  requestId: `r-${n}`,
  sessionId: null,
  traceId: null,
  user: null,
  agent: n % 2 === 0 ? 'ci-bot' : 'desk-agent',
  tenant: null,
  target: 'files',
  tool,
  toolVersion: null,
  method: 'tools/call',
  argsHash: null,
  args: JSON.stringify({ n, note: '=1+1, "quoted"' }),
  outcome,
  errorType: outcome === 'ok' ? null : 'upstream_error',
  latencyMs: 1.5,
  bytesIn: 10,
  bytesOut: 20,
  targetVersion: '1.0.0',
});

describe('gatehouse migrate and audit', () => {
  let dir: string;
  let config: string;
  let db: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'gh-audit-cli-'));
    db = path.join(dir, 'trail.db');
    config = path.join(dir, 'gatehouse.yaml');
    writeFileSync(config, `storage: { driver: sqlite, path: trail.db }\ntargets:\n  files: { transport: stdio, command: node }\n`);
  });

  it('migrates a new database once', () => {
    expect(gatehouse('migrate', '--config', config).stdout).toMatch(/migrated schema version 0 -> \d+/);
    expect(gatehouse('migrate', '--config', config).stdout).toMatch(/already at schema version \d+/);
  }, 120_000);

  it('verifies the chain, then names the first row edited behind its back', async () => {
    const store = await openStore({ storage: { driver: 'sqlite', path: db, synchronous: 'full', busyTimeoutMs: 5000 } });
    const writer = new AuditWriter({ store, clock: systemClock });
    await Promise.all([1, 2, 3, 4, 5].map((n) => writer.append(row(n, n <= 3 ? 'read_file' : 'write_file', n === 2 ? 'upstream_error' : 'ok'))));
    await writer.close();
    await store.close();

    const clean = gatehouse('audit', 'verify', '--config', config);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('audit chain ok: 5 rows');

    const query = gatehouse('audit', 'query', '--config', config, '--tool', 'read_file', '--outcome', 'ok', '--format', 'csv');
    expect(query.code).toBe(0);
    const lines = query.stdout.trim().split('\r\n');
    expect(lines).toHaveLength(3); // header + rows 1 and 3
    expect(lines[1]).toContain('"{""n"":1,""note"":""=1+1, \\""quoted\\""""}"');
    const jsonl = gatehouse('audit', 'query', '--config', config, '--agent', 'ci-bot', '--from', '2026-11-01T00:03:00Z');
    expect(jsonl.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([4]);

    const raw = new BetterSqlite3(db);
    raw.prepare("UPDATE gatehouse_audit SET outcome = 'ok' WHERE seq = 2").run();
    raw.close();
    const broken = gatehouse('audit', 'verify', '--config', config);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/BROKEN at row 2/);
  }, 120_000);

  it('refuses bad filters with a clear message', () => {
    const bad = gatehouse('audit', 'query', '--config', config, '--from', 'yesterday-ish');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--from: not a time/);
  }, 60_000);
});
