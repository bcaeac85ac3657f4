// The audit trail end to end: a reconciliation of N calls (some failing, some rejected before
// they became calls) against exactly N rows, redaction proven with a canary secret, export and
// chain verification through the admin API, and fail-closed behaviour when the real
// PostgreSQL store goes away and comes back.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { waitFor } from '../fixtures/fixture-client.ts';
import { post, startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { startPostgres, type PostgresServer } from '../support/postgres-server.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';
import type { AuditRow } from '../../src/storage/store.ts';

const CANARY = `sk-canary-${randomUUID()}`;
const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'recon-agent', version: '1' } };
const fault = faultStdioCommand();
const targets = { ok: { transport: 'stdio' as const, command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'ok' }, era: 'legacy' as const } };

function call(gw: TestGateway, name: string, args: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  return post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args, _meta: meta } }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name, ...headers });
}

async function auditRows(gw: TestGateway, query = ''): Promise<AuditRow[]> {
  const res = await fetch(`${gw.adminBase}/audit${query}`);
  expect(res.status).toBe(200);
  return (await res.text()).split('\n').filter(Boolean).map((line) => JSON.parse(line) as AuditRow);
}

describe('audit trail reconciliation', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({ targets, audit: { redactKeys: ['ssn'] } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('finds exactly one row per call, rejected ones included, with who, what and how it ended', async () => {
    const markers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const marker = randomUUID();
      markers.push(marker);
      expect((await call(gw, 'ping_tool', { marker, apiKey: CANARY, ssn: '078-05-1120' })).status).toBe(200);
    }
    for (let i = 0; i < 3; i++) await call(gw, 'no_such_tool', { i });
    // Refused before they become calls: malformed JSON, a header/body mismatch, a foreign Origin.
    for (let i = 0; i < 2; i++) expect((await post(gw.url, '{"jsonrpc":"2.0",', { 'mcp-protocol-version': '2026-07-28' })).status).toBe(400);
    for (let i = 0; i < 2; i++) expect((await call(gw, 'ping_tool', {}, { 'mcp-name': 'other_tool' })).status).toBe(400);
    expect((await call(gw, 'ping_tool', {}, { origin: 'https://evil.example' })).status).toBe(403);

    const calls = (await auditRows(gw)).filter((r) => r.kind === 'call');
    expect(calls).toHaveLength(6 + 3 + 2 + 2 + 1);
    const answered = calls.filter((r) => r.outcome === 'ok');
    expect(answered.map((r) => JSON.parse(r.args!).marker).sort()).toEqual([...markers].sort());
    for (const row of answered) {
      expect(row).toMatchObject({ agent: 'recon-agent', user: null, tenant: null, target: 'ok', tool: 'ping_tool', method: 'tools/call', errorType: null });
      expect(row.argsHash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.bytesOut).toBeGreaterThan(0);
      expect(JSON.parse(row.args!)).toMatchObject({ apiKey: '[REDACTED]', ssn: '[REDACTED]' });
    }
    expect(calls.filter((r) => r.errorType === 'tool_not_found')).toHaveLength(3);
    const rejected = calls.filter((r) => r.outcome === 'rejected');
    expect(rejected.map((r) => r.errorType).sort()).toEqual(['forbidden_origin', 'header_mismatch', 'header_mismatch', 'parse_error', 'parse_error']);
  });

  it('exports CSV, filters by tool and outcome, verifies the chain, and never shows the canary', async () => {
    const csv = await (await fetch(`${gw.adminBase}/audit?format=csv&tool=ping_tool&outcome=ok`)).text();
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toMatch(/^seq,time,kind,requestId,/);
    expect(lines.length - 1).toBe(6);
    expect(csv).not.toContain(CANARY);
    const verify = await fetch(`${gw.adminBase}/audit/verify`);
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true });
    const admin = (await auditRows(gw)).filter((r) => r.kind === 'admin').map((r) => r.method);
    expect(admin).toEqual(expect.arrayContaining(['audit/query', 'audit/verify']));
    expect(JSON.stringify(gw.logLines)).not.toContain(CANARY);
    expect(await (await fetch(`${gw.adminBase}/metrics`)).text()).not.toContain(CANARY);
  });
});

describe('fail closed when the audit store goes away (real PostgreSQL behind a line that can be cut)', () => {
  let pgServer: PostgresServer;
  let line: FaultProxy;
  let gw: TestGateway;

  beforeAll(async () => {
    pgServer = await startPostgres();
    line = await startFaultProxy(pgServer.port);
    gw = await startGateway({
      targets,
      storage: { driver: 'postgres', url: `postgres://postgres@127.0.0.1:${line.port}/${pgServer.database}`, connectTimeoutMs: 500 },
      audit: { probeIntervalMs: 100 },
    });
  }, 120_000);
  afterAll(async () => {
    await gw?.stop();
    await line?.close();
    await pgServer?.stop();
  });

  it('refuses calls with audit_unavailable while it is gone, keeps serving, and recovers by itself', { timeout: 60_000 }, async () => {
    const before = randomUUID();
    expect((await (await call(gw, 'ping_tool', { marker: before })).json()) as object).toHaveProperty('result');

    line.cut();
    const refused = (await (await call(gw, 'ping_tool', { marker: randomUUID() })).json()) as { error?: { data?: { type?: string } } };
    expect(refused.error?.data?.type).toBe('audit_unavailable');
    // Known down now: the next call is refused before it reaches the target.
    const executedBefore = gw.records.filter((r) => r.target === 'ok' && r.outcome === 'ok').length;
    const gated = (await (await call(gw, 'ping_tool', { marker: randomUUID() })).json()) as { error?: { data?: { type?: string } } };
    expect(gated.error?.data?.type).toBe('audit_unavailable');
    expect(gw.records.filter((r) => r.target === 'ok' && r.outcome === 'ok').length).toBe(executedBefore);
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);

    line.restore();
    const after = randomUUID();
    await waitFor(async () => 'result' in ((await (await call(gw, 'ping_tool', { marker: after })).json()) as object), 20_000);
    const markers = (await auditRows(gw, '?outcome=ok&tool=ping_tool')).map((r) => JSON.parse(r.args!).marker as string);
    expect(markers[0]).toBe(before);
    expect(markers).toContain(after);
    expect((await (await fetch(`${gw.adminBase}/audit/verify`)).json()) as object).toMatchObject({ ok: true });
  });
});
