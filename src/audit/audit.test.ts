import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import type { AuditRowInput } from '../storage/store.ts';
import { MemoryStore } from '../../test/support/memory-store.ts';
import { AuditWriter } from './audit-writer.ts';
import { argumentsHash, canonicalJson } from './canonical-json.ts';
import { verifyChain } from './chain.ts';
import { REDACTED, redactSecrets } from './redact.ts';

const row = (n: number, extra: Partial<AuditRowInput> = {}): AuditRowInput => ({
  time: 1_700_000_000_000 + n,
  kind: 'call',
  requestId: `r-${n}`,
  sessionId: 's',
  traceId: null,
  user: 'ada',
  agent: 'agent-1',
  tenant: 't1',
  target: 'files',
  tool: 'read_file',
  toolVersion: null,
  method: 'tools/call',
  argsHash: null,
  args: null,
  outcome: 'ok',
  errorType: null,
  latencyMs: 3,
  bytesIn: 10,
  bytesOut: 20,
  targetVersion: '1.0.0',
  ...extra,
});

describe('canonical JSON', () => {
  it('is RFC 8785 for I-JSON input (checked against the canonicalize library)', () => {
    const value = { b: [1, 2.5, 1e21, -0, 'é', { z: null, a: true }], a: 'x\ny', '\u00e9': 1, A: 0.000001 };
    expect(canonicalJson(value)).toBe(canonicalize(value));
  });

  it('hashes independently of key order, and keeps lone surrogates and NUL distinct', () => {
    expect(argumentsHash({ a: 1, b: 2 })).toBe(argumentsHash({ b: 2, a: 1 }));
    expect(argumentsHash({ s: '\ud800' })).not.toBe(argumentsHash({ s: '\ufffd' }));
    expect(canonicalJson({ s: '\ud800\u0000' })).toBe('{"s":"\\ud800\\u0000"}');
    expect(argumentsHash(undefined)).toBeNull();
  });
});

describe('redaction', () => {
  it('masks secret-looking keys at any depth and configured extra keys, nothing else', () => {
    const redacted = redactSecrets({ path: '/etc', apiKey: 'k', nested: [{ accessToken: 't', Password: 'p', author: 'a' }], ssn: '123' }, new Set(['ssn']));
    expect(redacted).toEqual({ path: '/etc', apiKey: REDACTED, nested: [{ accessToken: REDACTED, Password: REDACTED, author: 'a' }], ssn: REDACTED });
  });
});

describe('the audit writer', () => {
  it('commits the rows of concurrent calls together and chains them', async () => {
    const store = new MemoryStore();
    const writer = new AuditWriter({ store, clock: new ManualClock() });
    await Promise.all([1, 2, 3, 4, 5].map((n) => writer.append(row(n))));
    expect(store.rows.map((r) => r.requestId)).toEqual(['r-1', 'r-2', 'r-3', 'r-4', 'r-5']);
    expect(store.commits).toBe(1);
    expect(await verifyChain(store.queryAudit({}))).toEqual({ ok: true, checked: 5 });
  });

  it('fails closed while the store is down, and recovers by itself when it returns', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock();
    const changes: boolean[] = [];
    const writer = new AuditWriter({ store, clock, probeIntervalMs: 1000, onAvailability: (up) => changes.push(up) });
    await writer.append(row(1));
    store.down = true;
    await expect(writer.append(row(2))).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    expect(writer.accepting).toBe(false);
    await expect(writer.append(row(3))).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    store.down = false;
    clock.advance(1000);
    await waitUntil(() => writer.accepting);
    await writer.append(row(4));
    expect(store.rows.map((r) => r.requestId)).toEqual(['r-1', 'r-4']);
    expect(changes).toEqual([false, true]);
    await writer.close();
  });

  it('with a spool, journals rows during an outage and replays them in order on recovery', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock();
    const spoolPath = path.join(mkdtempSync(path.join(os.tmpdir(), 'gh-spool-')), 'audit.spool');
    const writer = new AuditWriter({ store, clock, spool: { path: spoolPath, maxBytes: 1 << 20 }, probeIntervalMs: 500 });
    await writer.append(row(1));
    store.down = true;
    await writer.append(row(2));
    await writer.append(row(3));
    expect(readFileSync(spoolPath, 'utf8').trim().split('\n')).toHaveLength(2);
    expect(store.rows).toHaveLength(1);
    store.down = false;
    clock.advance(500);
    await waitUntil(() => writer.available);
    await writer.append(row(4));
    expect(store.rows.map((r) => r.requestId)).toEqual(['r-1', 'r-2', 'r-3', 'r-4']);
    expect(readFileSync(spoolPath, 'utf8')).toBe('');
    expect((await verifyChain(store.queryAudit({}))).ok).toBe(true);
    await writer.close();
  });

  it('refuses rows once the spool is full', async () => {
    const store = new MemoryStore();
    const spoolPath = path.join(mkdtempSync(path.join(os.tmpdir(), 'gh-spool-')), 'audit.spool');
    const writer = new AuditWriter({ store, clock: new ManualClock(), spool: { path: spoolPath, maxBytes: 600 } });
    store.down = true;
    await writer.append(row(1));
    await expect(writer.append(row(2, { args: 'x'.repeat(500) }))).rejects.toMatchObject({ code: 'AUDIT_UNAVAILABLE' });
    await writer.close();
  });
});

describe('chain verification', () => {
  it('names the first row whose content, link or position was tampered with', async () => {
    const store = new MemoryStore();
    const writer = new AuditWriter({ store, clock: new ManualClock() });
    await Promise.all([1, 2, 3, 4].map((n) => writer.append(row(n))));
    const edited = store.rows.map((r) => ({ ...r }));
    edited[2]!.outcome = 'error';
    expect((await verifyChain(iterate(edited))).broken).toEqual({ seq: 3, reason: 'the row content does not match its hash' });
    const dropped = store.rows.filter((r) => r.seq !== 2);
    expect((await verifyChain(iterate(dropped))).broken?.seq).toBe(3);
    // Retention may prune the oldest rows: the chain is checked from the first row present.
    expect(await verifyChain(iterate(store.rows.slice(2)))).toEqual({ ok: true, checked: 2 });
  });
});

async function* iterate<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

async function waitUntil(check: () => boolean): Promise<void> {
  // Waits for the writer's real file I/O and promise chains (the writer's own timers run on
  // the ManualClock). Polls without sleeping; bounded at 10 s for a loaded CI machine.
  const deadline = performance.now() + 10_000;
  while (!check() && performance.now() < deadline) await new Promise((r) => setImmediate(r));
  expect(check()).toBe(true);
}

describe('export', () => {
  it('writes JSONL and CSV, quoting and defusing cells', async () => {
    const { exportRows } = await import('./audit-export.ts');
    const store = new MemoryStore();
    const writer = new AuditWriter({ store, clock: new ManualClock() });
    await writer.append(row(1, { args: '{"q":"=HYPERLINK(\\"x\\")","n":"a,b"}' }));
    const chunks: string[] = [];
    for await (const chunk of exportRows(store.queryAudit({}), 'csv')) chunks.push(chunk);
    expect(chunks[0]).toMatch(/^seq,time,kind,requestId,/);
    expect(chunks[1]).toContain('"{""q"":""=HYPERLINK(\\""x\\"")"",""n"":""a,b""}"');
    const lines: string[] = [];
    for await (const chunk of exportRows(store.queryAudit({}), 'jsonl')) lines.push(chunk);
    expect(JSON.parse(lines[0]!)).toMatchObject({ seq: 1, requestId: 'r-1', tool: 'read_file' });
  });
});

describe('a row the store refuses', () => {
  it('fails that call alone and keeps the store available for the others', async () => {
    const store = new MemoryStore();
    const original = store.appendAudit.bind(store);
    store.appendAudit = async (rows, seal) => {
      if (rows.some((r) => r.bytesIn < 0)) throw new Error('audit row: bytesIn must be a non-negative safe integer');
      return original(rows, seal);
    };
    const writer = new AuditWriter({ store, clock: new ManualClock() });
    const results = await Promise.allSettled([writer.append(row(1)), writer.append(row(2, { bytesIn: -1 })), writer.append(row(3))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'INTERNAL' });
    expect(writer.available).toBe(true);
    expect(store.rows.map((r) => r.requestId)).toEqual(['r-1', 'r-3']);
  });
});

describe('retention', () => {
  it('prunes by age and count at start and then every hour, on the injected clock', async () => {
    const { AuditService } = await import('./audit-service.ts');
    const { parseConfig } = await import('../config/load.ts');
    const { createLogger } = await import('../telemetry/log.ts');
    const store = new MemoryStore();
    const calls: Array<{ before?: number | undefined; keep?: number | undefined }> = [];
    store.pruneAudit = async (options) => {
      calls.push(options);
      return 0;
    };
    const clock = new ManualClock();
    const config = parseConfig({ targets: { t: { transport: 'stdio', command: 'x' } }, audit: { retention: { maxAgeDays: 30, maxRows: 1000 } } }, 'test', { configDir: '/' });
    const service = new AuditService({ store, config: () => config, clock, logger: createLogger('silent'), targetVersion: () => null });
    await service.start();
    clock.advance(0);
    await waitUntil(() => calls.length === 1);
    expect(calls[0]).toEqual({ before: clock.now() - 30 * 24 * 60 * 60_000, keep: 1000 });
    clock.advance(60 * 60_000);
    await waitUntil(() => calls.length === 2);
    await service.close();
  });
});
