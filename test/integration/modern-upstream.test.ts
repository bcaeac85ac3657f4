// A 2026-07-28 upstream (the project's SDK v2 fixture) behind the gateway: tasks routed by
// the gateway's task ids, x-mcp-header parameters checked downstream and mirrored upstream,
// input-required results turned into server→client requests for 2025-era sessions, and list
// changes learnt from the upstream's subscription stream.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startModernFixture, type ModernFixture } from '../fixtures/modern-process.ts';
import { waitFor } from '../fixtures/fixture-client.ts';
import { post, startGateway, type TestGateway } from '../support/gateway-harness.ts';

const MODERN = '2026-07-28';
const TASKS = 'io.modelcontextprotocol/tasks';
const meta = (capabilities: Record<string, unknown> = {}) => ({
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': capabilities,
});
const withTasks = { extensions: { [TASKS]: {} } };

interface RpcBody {
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

describe('a 2026-07-28 upstream behind the gateway', () => {
  let fixture: ModernFixture;
  let gw: TestGateway;

  beforeAll(async () => {
    fixture = await startModernFixture({ name: 'modern' });
    gw = await startGateway({ targets: { m: { transport: 'streamable-http', url: fixture.url, era: 'modern' } } });
    await waitFor(() => gw.gateway.catalog.all.toolByName.has('slow_compute'), 10_000);
  });

  afterAll(async () => {
    await gw?.stop();
    await fixture?.stop();
  });

  async function modern(method: string, params: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ status: number; body: RpcBody }> {
    const name = params['name'] ?? params['taskId'];
    const res = await post(gw.url, { jsonrpc: '2.0', id: 1, method, params }, {
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
      ...headers,
    });
    return { status: res.status, body: (await res.json()) as RpcBody };
  }

  describe('tasks extension', () => {
    it('advertises the extension to modern agents when a target offers it', async () => {
      const { body } = await modern('server/discover', { _meta: meta() });
      expect(body.result?.['capabilities']).toMatchObject({ extensions: { [TASKS]: {} } });
    });

    it('hands out task ids that route tasks/get back to the owning target', async () => {
      const created = await modern('tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'routed' }, _meta: meta(withTasks) });
      expect(created.body.result).toMatchObject({ resultType: 'task', status: 'working' });
      const taskId = created.body.result?.['taskId'] as string;
      expect(taskId.startsWith('gt1.')).toBe(true);

      const polled = await modern('tasks/get', { taskId, _meta: meta(withTasks) });
      expect(polled.status).toBe(200);
      expect(polled.body.result).toMatchObject({ taskId, resultType: 'complete' });
      expect(['working', 'completed']).toContain(polled.body.result?.['status']);

      const cancelled = await modern('tasks/cancel', { taskId, _meta: meta(withTasks) });
      expect(cancelled.body.result).toMatchObject({ resultType: 'complete' });
      expect(cancelled.body.result).not.toHaveProperty('taskId');
      const after = await modern('tasks/get', { taskId, _meta: meta(withTasks) });
      expect(['cancelled', 'completed']).toContain(after.body.result?.['status']);
    });

    it('refuses tasks/* without the extension (-32021, HTTP 400) before looking at the id', async () => {
      const { status, body } = await modern('tasks/get', { taskId: 'not-even-ours', _meta: meta() });
      expect(status).toBe(400);
      expect(body.error).toMatchObject({ code: -32021, data: { requiredCapabilities: { extensions: { [TASKS]: {} } } } });
    });

    it('answers an id it did not issue as an unknown task (-32602)', async () => {
      for (const taskId of ['task-1', `gt1.${Buffer.from('elsewhere').toString('base64url')}.x`]) {
        const { body } = await modern('tasks/get', { taskId, _meta: meta(withTasks) });
        expect(body.error).toMatchObject({ code: -32602, data: { type: 'task_not_found' } });
      }
    });

    it('routes a task id issued before a restart on the same database, and not one from another database', async () => {
      const sqlite = (dir: string) => ({ driver: 'sqlite' as const, path: path.join(dir, 'gatehouse.db') });
      const shared = sqlite(mkdtempSync(path.join(os.tmpdir(), 'gh-taskkey-')));
      const on = async (storage: ReturnType<typeof sqlite>) => {
        const started = await startGateway({ storage, targets: { m: { transport: 'streamable-http', url: fixture.url, era: 'modern' } } });
        await waitFor(() => started.gateway.catalog.all.toolByName.has('slow_compute'), 10_000);
        return started;
      };
      const ask = async (target: TestGateway, method: string, params: Record<string, unknown>) => {
        const name = String(params['name'] ?? params['taskId']);
        const res = await post(target.url, { jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: meta(withTasks) } }, { 'mcp-protocol-version': MODERN, 'mcp-method': method, 'mcp-name': name });
        return (await res.json()) as RpcBody;
      };
      const before = await on(shared);
      let taskId: string;
      try {
        taskId = (await ask(before, 'tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'restart' } })).result?.['taskId'] as string;
        expect(taskId.startsWith('gt1.')).toBe(true);
      } finally {
        await before.stop();
      }
      const after = await on(shared);
      const elsewhere = await on(sqlite(mkdtempSync(path.join(os.tmpdir(), 'gh-taskkey-'))));
      try {
        expect((await ask(after, 'tasks/get', { taskId })).result).toMatchObject({ taskId, resultType: 'complete' });
        expect((await ask(elsewhere, 'tasks/get', { taskId })).error).toMatchObject({ code: -32602, data: { type: 'task_not_found' } });
        await ask(after, 'tasks/cancel', { taskId });
      } finally {
        await Promise.all([after.stop(), elsewhere.stop()]);
      }
    });

    it('keeps an upstream -32021 at HTTP 400 when a task-required tool is called without the extension', async () => {
      const { status, body } = await modern('tools/call', { name: 'failing_job', arguments: {}, _meta: meta() });
      expect(status).toBe(400);
      expect(body.error?.code).toBe(-32021);
    });

    it('gives 2025-era sessions no task surface', async () => {
      const init = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'old', version: '1' } } });
      const sid = init.headers.get('mcp-session-id')!;
      const res = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId: 'x' } }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
      expect(((await res.json()) as RpcBody).error?.code).toBe(-32601);
    });
  });

  describe('x-mcp-header parameters', () => {
    const args = { region: 'Hello, 世界', priority: 7, query: 'SELECT 1' };

    it('passes a call whose headers match, mirroring them afresh upstream', async () => {
      const { status, body } = await modern('tools/call', { name: 'test_custom_headers', arguments: args, _meta: meta() }, {
        'mcp-param-region': '=?base64?SGVsbG8sIOS4lueVjA==?=',
        'mcp-param-priority': '7',
      });
      // The fixture itself rejects a call whose Mcp-Param headers are missing or wrong, so a
      // result proves the gateway wrote them upstream.
      expect(status).toBe(200);
      expect(body.result?.['isError']).not.toBe(true);
    });

    it.each([
      ['a missing header', { 'mcp-param-priority': '7' }],
      ['a mismatching header', { 'mcp-param-region': 'elsewhere', 'mcp-param-priority': '7' }],
      ['broken base64', { 'mcp-param-region': '=?base64?SGVsbG8?=', 'mcp-param-priority': '7' }],
    ])('rejects %s with -32020 and HTTP 400, and keeps serving', async (_what, headers) => {
      const { status, body } = await modern('tools/call', { name: 'test_custom_headers', arguments: args, _meta: meta() }, headers);
      expect(status).toBe(400);
      expect(body.error).toMatchObject({ code: -32020, data: { type: 'header_mismatch' } });
      const again = await modern('tools/call', { name: 'greet', arguments: { name: 'still here' }, _meta: meta() });
      expect(again.body.result?.['content']).toEqual([{ type: 'text', text: 'Hello, still here!' }]);
    });
  });

  describe('2025-era sessions', () => {
    async function connectLegacy(stubborn = false): Promise<{ client: Client; elicitations: unknown[]; toolListChanged: () => number }> {
      const client = new Client({ name: 'legacy-agent', version: '1.0.0' }, { capabilities: { elicitation: {} } });
      const elicitations: unknown[] = [];
      let changed = 0;
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        elicitations.push(request.params);
        // Fill whatever the form asks for; `stubborn` answers the wrong field every time.
        const fields = Object.keys((request.params as { requestedSchema?: { properties?: object } }).requestedSchema?.properties ?? {});
        const content = Object.fromEntries(fields.map((f) => [stubborn ? `not_${f}` : f, f === 'color' ? 'blue' : 'Ada']));
        return { action: 'accept', content };
      });
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed++;
      });
      await client.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
      return { client, elicitations, toolListChanged: () => changed };
    }

    it('are asked for the input a modern upstream requires, then get the final result', async () => {
      const { client, elicitations } = await connectLegacy();
      try {
        const result = await client.callTool({ name: 'test_input_required_result_elicitation', arguments: {} });
        expect(elicitations).toHaveLength(1);
        expect(result.content).toEqual([{ type: 'text', text: 'Hello, Ada!' }]);
        const multi = await client.callTool({ name: 'test_input_required_result_multi_round', arguments: {} });
        expect(elicitations).toHaveLength(3);
        expect(multi.isError).not.toBe(true);
        expect(JSON.stringify(multi.content)).toContain('blue');
      } finally {
        await client.close();
      }
    });

    it('give up with a typed error when the upstream never stops asking', async () => {
      const { client, elicitations } = await connectLegacy(true);
      try {
        await expect(client.callTool({ name: 'test_input_required_result_elicitation', arguments: {} })).rejects.toThrow(/still asked for input after 16 rounds/);
        expect(elicitations).toHaveLength(16);
      } finally {
        await client.close();
      }
    });

    it('refuses input the session did not declare (sampling) with -32021 instead of asking', async () => {
      const { client } = await connectLegacy();
      try {
        await expect(client.callTool({ name: 'test_input_required_result_sampling', arguments: {} })).rejects.toMatchObject({ code: -32021 });
      } finally {
        await client.close();
      }
    });

    it('hear of list changes the upstream announces on its subscription stream', async () => {
      const { client, toolListChanged } = await connectLegacy();
      try {
        expect(gw.gateway.catalog.all.toolByName.has('test_dynamic_tool')).toBe(false);
        await client.callTool({ name: 'test_trigger_tool_change', arguments: {} });
        await waitFor(() => toolListChanged() > 0, 10_000);
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('test_dynamic_tool');
      } finally {
        await client.close();
      }
    });
  });
});
