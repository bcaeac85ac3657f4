// Every malformed request, hostile header and oversized body gets its typed error, and the
// gateway keeps serving afterwards. Faulty upstreams (crash mid-call, never answers) too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { INIT, post, startGateway, type TestGateway } from '../support/gateway-harness.ts';

describe('bad input', () => {
  let gw: TestGateway;
  let sid: string;
  const fault = faultStdioCommand();

  beforeAll(async () => {
    gw = await startGateway({
      listener: { maxBodyBytes: 64 * 1024, maxJsonDepth: 32 },
      targets: {
        ok: { transport: 'stdio', command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'ok' }, era: 'legacy' },
        hang: { transport: 'stdio', command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'hang' }, era: 'legacy', requestTimeoutMs: 300 },
        crash: { transport: 'stdio', command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'crash-on-call' }, era: 'legacy' },
      },
    });
    const res = await post(gw.url, INIT);
    sid = res.headers.get('mcp-session-id')!;
    expect(sid).toMatch(/^[0-9a-f]{32}$/);
  });

  afterAll(async () => {
    await gw?.stop();
  });

  const inSession = (body: unknown, headers: Record<string, string> = {}) => post(gw.url, body, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...headers });

  async function stillServing(): Promise<void> {
    const res = await inSession({ jsonrpc: '2.0', id: 'alive', method: 'ping' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 'alive', result: {} });
  }

  async function rpcError(res: Response): Promise<{ code: number; data: { type: string } }> {
    return ((await res.json()) as { error: { code: number; data: { type: string } } }).error;
  }

  it('malformed JSON → -32700', async () => {
    const res = await inSession('{"jsonrpc": "2.0", "id": 1, "method": ');
    expect(res.status).toBe(400);
    expect(await rpcError(res)).toMatchObject({ code: -32700, data: { type: 'parse_error' } });
    await stillServing();
  });

  it('null id and missing method → -32600', async () => {
    const nullId = await inSession({ jsonrpc: '2.0', id: null, method: 'ping' });
    expect(nullId.status).toBe(400);
    expect(await rpcError(nullId)).toMatchObject({ code: -32600 });
    const noMethod = await inSession({ jsonrpc: '2.0', id: 3 });
    expect(await rpcError(noMethod)).toMatchObject({ code: -32600 });
    await stillServing();
  });

  it('a batch on 2025-11-25 → -32600 and nothing executed', async () => {
    const before = gw.records.filter((r) => r.method === 'tools/call').length;
    const res = await inSession([{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ping_tool', arguments: {} } }]);
    expect(res.status).toBe(400);
    expect(await rpcError(res)).toMatchObject({ code: -32600, data: { type: 'batch_not_supported' } });
    expect(gw.records.filter((r) => r.method === 'tools/call').length).toBe(before);
    await stillServing();
  });

  it('a batch on a 2025-03-26 session is executed: one response per request, none for notifications', async () => {
    const init = await post(gw.url, { ...INIT, params: { ...INIT.params, protocolVersion: '2025-03-26' } });
    const old = init.headers.get('mcp-session-id')!;
    const res = await post(
      gw.url,
      [
        { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'ok__ping_tool', arguments: {} } },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 'b', method: 'ping' },
        { jsonrpc: '2.0', id: 'c', method: 'no/such/method' },
      ],
      { 'mcp-session-id': old },
    );
    expect(res.status).toBe(200);
    const answers = (await res.json()) as Array<{ id: string; result?: unknown; error?: { code: number } }>;
    expect(answers.map((a) => a.id).sort()).toEqual(['a', 'b', 'c']);
    expect(answers.find((a) => a.id === 'a')?.result).toMatchObject({ content: [{ type: 'text', text: 'pong' }] });
    expect(answers.find((a) => a.id === 'b')?.result).toEqual({});
    expect(answers.find((a) => a.id === 'c')?.error?.code).toBe(-32601);
    await stillServing();
  });

  it('unknown method → -32601', async () => {
    const res = await inSession({ jsonrpc: '2.0', id: 4, method: 'no/such/method' });
    expect(await rpcError(res)).toMatchObject({ code: -32601, data: { type: 'method_not_found' } });
    await stillServing();
  });

  it('body over the limit → 413', async () => {
    const res = await inSession({ jsonrpc: '2.0', id: 5, method: 'ping', params: { pad: 'x'.repeat(70 * 1024) } });
    expect(res.status).toBe(413);
    await stillServing();
  });

  it('wrong content type → 415, wrong Accept → 406', async () => {
    const ct = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'text/plain', accept: 'application/json, text/event-stream', 'mcp-session-id': sid }, body: '{}' });
    expect(ct.status).toBe(415);
    const acc = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/html', 'mcp-session-id': sid }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) });
    expect(acc.status).toBe(406);
    await stillServing();
  });

  it('spoofed Origin or Host → 403 (DNS-rebinding protection)', async () => {
    expect((await inSession({ jsonrpc: '2.0', id: 6, method: 'ping' }, { origin: 'http://evil.example.com' })).status).toBe(403);
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(gw.url, { method: 'POST', headers: { host: 'evil.example.com', 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(JSON.stringify(INIT));
    });
    expect(status).toBe(403);
    await stillServing();
  });

  it('missing session → 400, unknown session → 404', async () => {
    const missing = await post(gw.url, { jsonrpc: '2.0', id: 7, method: 'tools/list' });
    expect(missing.status).toBe(400);
    const unknown = await post(gw.url, { jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'mcp-session-id': 'f'.repeat(32) });
    expect(unknown.status).toBe(404);
    await stillServing();
  });

  it('unsupported protocol version → 400', async () => {
    const res = await inSession({ jsonrpc: '2.0', id: 9, method: 'ping' }, { 'mcp-protocol-version': '1999-01-01' });
    expect(res.status).toBe(400);
    expect(await rpcError(res)).toMatchObject({ data: { type: 'unsupported_protocol_version' } });
    await stillServing();
  });

  it('deeply nested arguments → a typed rejection, never a crash', async () => {
    // Built as text: the test's own JSON.stringify would overflow on 10,000 levels.
    const deep = `${'['.repeat(10_000)}"leaf"${']'.repeat(10_000)}`;
    const res = await inSession(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"ping_tool","arguments":{"deep":${deep}}}}`);
    expect(res.status).toBe(400);
    expect(await rpcError(res)).toMatchObject({ code: -32600, data: { type: 'arguments_too_deep' } });
    await stillServing();
  });

  it('an upstream that crashes mid-call → typed error within a second', async () => {
    const started = performance.now();
    const res = await inSession({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'crash__ping_tool', arguments: {} } });
    const body = (await res.json()) as { error: { data: { type: string } } };
    expect(body.error.data.type).toBe('upstream_unavailable');
    expect(performance.now() - started).toBeLessThan(1_000);
    await stillServing();
  });

  it('an upstream that never answers → timeout error and notifications/cancelled upstream', async () => {
    const res = await inSession({ jsonrpc: '2.0', id: 12, method: 'tools/call', params: { name: 'hang__ping_tool', arguments: {} } });
    const body = (await res.json()) as { error: { data: { type: string } } };
    expect(body.error.data.type).toBe('upstream_timeout');
    await expect.poll(() => gw.logLines.some((l) => l['target'] === 'hang' && String(l['msg']).startsWith('CANCELLED'))).toBe(true);
    await stillServing();
  });
});
