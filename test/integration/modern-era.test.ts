// 2026-07-28 agents on the same URL as legacy ones: the SDK v2 client pinned to the modern
// era, and raw requests for the header and `_meta` rules.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { faultStdioCommand, fixtureStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { post, startGateway, type TestGateway } from '../support/gateway-harness.ts';

const MODERN = '2026-07-28';
const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} };

describe('2026-07-28 downstream', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    const a = fixtureStdioCommand('all');
    const f = faultStdioCommand();
    gw = await startGateway({
      targets: {
        a: { transport: 'stdio', command: a.command, args: a.args, cwd: REPO_ROOT, era: 'legacy' },
        ok: { transport: 'stdio', command: f.command, args: f.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'ok' }, era: 'legacy' },
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('serves the SDK v2 client pinned to 2026-07-28, with no session', async () => {
    const client = new Client({ name: 'modern-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('ping_tool');
    const result = await client.callTool({ name: 'add_numbers', arguments: { a: 1, b: 2 } });
    expect(result.content).toEqual([{ type: 'text', text: '3' }]);
    await client.close();
    const calls = gw.records.filter((r) => r.protocolVersion === MODERN && r.method === 'tools/call');
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((r) => r.sessionId?.startsWith('r-'))).toBe(true);
  });

  it('serves the SDK v2 client on its default 2025-era session too, on the same URL', async () => {
    const client = new Client({ name: 'session-agent', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(gw.url));
    await client.connect(transport);
    const sid = transport.sessionId;
    expect(sid).toMatch(/^[0-9a-f]{32}$/);
    const result = await client.callTool({ name: 'add_numbers', arguments: { a: 20, b: 22 } });
    expect(result.content).toEqual([{ type: 'text', text: '42' }]);
    await client.close();
    const call = gw.records.filter((r) => r.method === 'tools/call' && r.sessionId === sid).at(-1);
    expect(call?.protocolVersion).toMatch(/^2025-/);
  });

  function modern(body: { id: number; method: string; params?: Record<string, unknown> }, headers: Record<string, string> = {}) {
    return post(gw.url, { jsonrpc: '2.0', ...body }, { 'mcp-protocol-version': MODERN, 'mcp-method': body.method, ...headers });
  }

  it('answers server/discover with the versions and capabilities it serves', async () => {
    const res = await modern({ id: 1, method: 'server/discover', params: { _meta: meta } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: Record<string, unknown> };
    expect(body.result).toMatchObject({ resultType: 'complete', supportedVersions: expect.arrayContaining([MODERN, '2025-11-25']) });
    expect(body.result['_meta']).toMatchObject({ 'io.modelcontextprotocol/serverInfo': { name: 'gatehouse' } });
  });

  it('adds resultType and cache hints to list results', async () => {
    const res = await modern({ id: 2, method: 'tools/list', params: { _meta: meta } });
    const body = (await res.json()) as { result: Record<string, unknown> };
    expect(body.result).toMatchObject({ resultType: 'complete', cacheScope: 'private' });
    expect(typeof body.result['ttlMs']).toBe('number');
  });

  it('refuses a header that does not match the body with -32020 and 400', async () => {
    const res = await modern({ id: 3, method: 'tools/call', params: { name: 'ping_tool', arguments: {}, _meta: meta } }, { 'mcp-name': 'other_tool' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32020);
  });

  it('accepts a base64-encoded Mcp-Name', async () => {
    const encoded = `=?base64?${Buffer.from('ping_tool').toString('base64')}?=`;
    const res = await modern({ id: 4, method: 'tools/call', params: { name: 'ping_tool', arguments: {}, _meta: meta } }, { 'mcp-name': encoded });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: { content: unknown } }).result.content).toEqual([{ type: 'text', text: 'pong' }]);
  });

  it('refuses missing per-request _meta with -32602 and 400', async () => {
    const res = await post(gw.url, { jsonrpc: '2.0', id: 5, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN } } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32602);
  });

  it('refuses an unsupported version with -32022 listing the supported ones', async () => {
    const res = await post(gw.url, { jsonrpc: '2.0', id: 6, method: 'tools/list', params: { _meta: { ...meta, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } }, { 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' });
    expect(res.status).toBe(400);
    const error = ((await res.json()) as { error: { code: number; data: { supported: string[]; requested: string } } }).error;
    expect(error.code).toBe(-32022);
    expect(error.data.supported).toContain(MODERN);
    expect(error.data.requested).toBe('2099-01-01');
  });

  it('answers an unknown method with 404 and -32601', async () => {
    const res = await modern({ id: 7, method: 'no/such', params: { _meta: meta } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32601);
  });

  it('answers methods 2026-07-28 removed with 404 and -32601, before checking _meta', async () => {
    for (const method of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe']) {
      const res = await modern({ id: 8, method, params: {} });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32601);
    }
  });

  it('adds cache hints to a forwarded resources/read', async () => {
    const res = await modern({ id: 9, method: 'resources/read', params: { uri: 'test://static-text', _meta: meta } }, { 'mcp-name': 'test://static-text' });
    const body = (await res.json()) as { result: Record<string, unknown> };
    expect(body.result).toMatchObject({ resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
    expect(Array.isArray(body.result['contents'])).toBe(true);
  });

  describe('input required (MRTR) bridged from a legacy upstream', () => {
    const withElicitation = { ...meta, 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} }, sampling: {} } };
    const call = (id: number, params: Record<string, unknown>) =>
      modern({ id, method: 'tools/call', params: { _meta: withElicitation, ...params } }, { 'mcp-name': String(params['name']) });

    it('turns an upstream elicitation into an InputRequiredResult and completes on retry', async () => {
      const first = (await (await call(20, { name: 'test_elicitation', arguments: { message: 'who are you?' } })).json()) as {
        id: number;
        result: { resultType: string; inputRequests: Record<string, { method: string; params: { message: string } }>; requestState: string };
      };
      expect(first.id).toBe(20);
      expect(first.result.resultType).toBe('input_required');
      const [key, request] = Object.entries(first.result.inputRequests)[0]!;
      expect(request.method).toBe('elicitation/create');
      expect(request.params.message).toBe('who are you?');
      expect(first.result.requestState).toMatch(/^[A-Za-z0-9_-]{22}$/);

      const inputResponses = { [key]: { action: 'accept', content: { username: 'mallory', email: 'm@example.com' } } };
      const retry = (await (await call(21, { name: 'test_elicitation', arguments: { message: 'who are you?' }, inputResponses, requestState: first.result.requestState })).json()) as {
        id: number;
        result: { resultType: string; content: unknown };
      };
      expect(retry.id).toBe(21);
      expect(retry.result.resultType).toBe('complete');
      expect(JSON.stringify(retry.result.content)).toContain('mallory');

      // The state is single-use: presenting it again is refused.
      const again = await call(22, { name: 'test_elicitation', arguments: {}, inputResponses, requestState: first.result.requestState });
      expect(((await again.json()) as { error: { code: number; data: { type: string } } }).error).toMatchObject({ code: -32602, data: { type: 'invalid_input_response' } });
    });

    it('refuses a tampered or foreign requestState', async () => {
      const first = (await (await call(30, { name: 'test_sampling', arguments: { prompt: 'hi' } })).json()) as { result: { requestState: string; inputRequests: Record<string, unknown> } };
      expect(Object.values(first.result.inputRequests)[0]).toMatchObject({ method: 'sampling/createMessage' });
      const tampered = await call(31, { name: 'test_sampling', arguments: { prompt: 'hi' }, inputResponses: {}, requestState: `${first.result.requestState}x` });
      expect(((await tampered.json()) as { error: { data: { type: string } } }).error.data.type).toBe('invalid_input_response');
      // Bound to the original tool: the same state on another tool is refused.
      const foreign = await call(32, { name: 'test_elicitation', arguments: {}, inputResponses: {}, requestState: first.result.requestState });
      expect(((await foreign.json()) as { error: { data: { type: string } } }).error.data.type).toBe('invalid_input_response');
    });

    it('does not ask an agent for input it did not declare', async () => {
      const res = await modern({ id: 40, method: 'tools/call', params: { name: 'test_elicitation', arguments: { message: 'x' }, _meta: meta } }, { 'mcp-name': 'test_elicitation' });
      const body = (await res.json()) as { result?: { resultType: string }; error?: unknown };
      expect(body.result?.resultType).not.toBe('input_required');
    });
  });

  it('acknowledges subscriptions/listen first, tagged with the subscription id', async () => {
    const controller = new AbortController();
    const res = await fetch(gw.url, {
      method: 'POST',
      signal: controller.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 42, method: 'subscriptions/listen', params: { _meta: meta, notifications: { toolsListChanged: true, bogus: true } } }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    const text = new TextDecoder().decode(value);
    const data = JSON.parse(text.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { method: string; params: Record<string, unknown> };
    expect(data.method).toBe('notifications/subscriptions/acknowledged');
    expect(data.params).toMatchObject({ notifications: { toolsListChanged: true }, _meta: { 'io.modelcontextprotocol/subscriptionId': 42 } });
    expect(data.params['notifications']).not.toHaveProperty('bogus');
    controller.abort();
  });
});
