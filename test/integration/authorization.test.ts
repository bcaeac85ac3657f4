// Authorization end to end: grants by name and pattern, lists filtered by the same rules,
// toolset-restricted grants, argument constraints, scopes (step-up), tenant isolation (task
// ids included) and observe-only, through the real HTTP endpoint and real fixture servers.
//
// Test-only principal injection: the gateway runs with `auth.mode: none`, where every request
// authenticates as `anonymousPrincipal()`. This file mocks that one function (vi.mock, in this
// file only) to return the principal the test chose for the next request; no production code
// knows about it. Requests are 2026-07-28 (sessionless), so each one authenticates afresh.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { fixtureStdioCommand, startHttpFixture, REPO_ROOT, type HttpFixture } from '../fixtures/fixture-process.ts';
import { startModernFixture, type ModernFixture } from '../fixtures/modern-process.ts';
import { waitFor } from '../fixtures/fixture-client.ts';
import { post, startGateway, type TestGateway } from '../support/gateway-harness.ts';

const injected = vi.hoisted(() => ({ principal: undefined as Principal | undefined }));
vi.mock('../../src/auth/principal.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/auth/principal.ts')>();
  return { ...original, anonymousPrincipal: (agent: string | undefined) => injected.principal ?? original.anonymousPrincipal(agent) };
});

const MODERN = '2026-07-28';
const TASKS = 'io.modelcontextprotocol/tasks';
const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS]: {} } } };

const who = (user: string, extra: Partial<Principal> = {}): Principal => ({ tenant: 'default', user, agent: 'test-agent', roles: [], scopes: [], method: 'api-key', ...extra });
const reader = who('rita', { roles: ['reader'] });
const limited = who('lee', { roles: ['echo-limited'] });
const mathUser = who('max', { roles: ['math'] });
const stepUp = who('sam', { roles: ['deployer'] });
const bob = who('bob'); // roles through a binding
const mallory = who('mallory', { roles: ['tasker'] }); // same roles as bob, another principal
const acme = who('ann', { tenant: 'acme', roles: ['*'] });

interface Rpc {
  status: number;
  text: string;
  body: { result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };
}

const config = (observeOnly: boolean, urls: { b: string; m: string }) => {
  const a = fixtureStdioCommand('a');
  return {
    targets: {
      a: { transport: 'stdio' as const, command: a.command, args: a.args, cwd: REPO_ROOT, era: 'legacy' as const },
      b: { transport: 'streamable-http' as const, url: urls.b, tenant: 'acme' },
      m: { transport: 'streamable-http' as const, url: urls.m, era: 'modern' as const },
    },
    toolsets: { finder: { tools: ['a/echo', 'a/add_numbers'] }, acme_tools: { tools: ['b/*'], tenant: 'acme' } },
    policy: {
      observeOnly,
      roles: {
        reader: { grants: [{ targets: ['a'], tools: ['echo', 'test_simple_*'], resources: ['test://static-*'], prompts: ['test_simple_prompt'] }] },
        'echo-limited': { grants: [{ targets: ['a'], tools: ['echo'], arguments: { message: { pattern: 'hello[ a-z]*', maxLength: 20 } } }] },
        math: { grants: [{ targets: ['a'], tools: ['add_numbers'], toolsets: ['finder'] }] },
        deployer: { grants: [{ targets: ['a'], tools: ['add_numbers'], scopes: ['mcp:math'] }] },
        tasker: { grants: [{ targets: ['m'], tools: ['*'] }] },
      },
      bindings: [{ users: ['bob'], roles: ['tasker'] }],
    },
  };
};

async function rpc(gw: TestGateway, principal: Principal, method: string, params: Record<string, unknown>, path = ''): Promise<Rpc> {
  injected.principal = principal;
  const name = params['name'] ?? params['uri'] ?? params['taskId'];
  const res = await post(gw.url + path, { jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: meta } }, {
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as Rpc['body'] };
}

const names = (r: Rpc, key: string, field = 'name'): unknown[] => ((r.body.result?.[key] ?? []) as Array<Record<string, unknown>>).map((x) => x[field]);

describe('authorization', () => {
  let b: HttpFixture;
  let m: ModernFixture;
  let gw: TestGateway;

  beforeAll(async () => {
    [b, m] = await Promise.all([startHttpFixture({ mode: 'http', part: 'b', name: 'fixture-b' }), startModernFixture({ name: 'modern' })]);
    gw = await startGateway(config(false, { b: b.url, m: m.url }));
    await waitFor(() => ['echo', 'test_sampling', 'slow_compute'].every((n) => gw.gateway.catalog.all.toolByName.has(n)), 15_000);
  });

  afterAll(async () => {
    injected.principal = undefined;
    await gw?.stop();
    await Promise.all([b?.stop(), m?.stop()]);
  });

  it('lists only what a role may call: exact names and prefix patterns, tools, resources and prompts', async () => {
    expect(names(await rpc(gw, reader, 'tools/list', {}), 'tools')).toEqual(['test_simple_text', 'echo']);
    expect(names(await rpc(gw, reader, 'resources/list', {}), 'resources', 'uri')).toEqual(['test://static-text', 'test://static-binary']);
    expect(names(await rpc(gw, reader, 'prompts/list', {}), 'prompts')).toEqual(['test_simple_prompt']);
    expect(names(await rpc(gw, reader, 'resources/templates/list', {}), 'resourceTemplates')).toEqual([]);
    // Another role set gets another view, served from its own cache entry.
    expect(names(await rpc(gw, bob, 'tools/list', {}), 'tools')).toEqual(expect.arrayContaining(['slow_compute']));
    expect(names(await rpc(gw, bob, 'tools/list', {}), 'tools')).not.toContain('echo');
  });

  it('runs granted calls and records the decision on the call line', async () => {
    const r = await rpc(gw, reader, 'tools/call', { name: 'echo', arguments: { message: 'hi' } });
    expect(r.body.result?.['content']).toEqual([{ type: 'text', text: 'Echo: hi' }]);
    const read = await rpc(gw, reader, 'resources/read', { uri: 'test://static-text' });
    expect(read.body.result?.['contents']).toBeDefined();
    await waitFor(() => gw.logLines.some((l) => l['kind'] === 'call' && l['name'] === 'echo' && l['policy_decision'] === 'allow'), 5_000);
  });

  it('answers a denied tool, prompt and resource byte for byte like unknown ones', async () => {
    const pairs: Array<[string, Record<string, unknown>, Record<string, unknown>, string, string]> = [
      ['tools/call', { name: 'add_numbers', arguments: { a: 1, b: 2 } }, { name: 'no_such_tool', arguments: { a: 1, b: 2 } }, 'add_numbers', 'no_such_tool'],
      ['tools/call', { name: 'test_sampling', arguments: {} }, { name: 'no_such_tool', arguments: {} }, 'test_sampling', 'no_such_tool'],
      ['prompts/get', { name: 'test_prompt_with_arguments' }, { name: 'no_such_prompt' }, 'test_prompt_with_arguments', 'no_such_prompt'],
      ['resources/read', { uri: 'test://watched-resource' }, { uri: 'test://no-such-resource' }, 'test://watched-resource', 'test://no-such-resource'],
    ];
    for (const [method, denied, unknown, deniedName, unknownName] of pairs) {
      const x = await rpc(gw, reader, method, denied);
      const y = await rpc(gw, reader, method, unknown);
      expect(x.body.error).toBeDefined();
      expect(x.status).toBe(y.status);
      expect(x.text.replaceAll(deniedName, '<name>')).toBe(y.text.replaceAll(unknownName, '<name>'));
    }
    const record = gw.records.find((r) => r.name === 'test_prompt_with_arguments');
    expect(record).toMatchObject({ policyDecision: 'deny', policyReason: 'no grant for prompt test_prompt_with_arguments on target a' });
  });

  it('holds a visible tool to its argument constraints, naming the argument and not the value', async () => {
    expect((await rpc(gw, limited, 'tools/call', { name: 'echo', arguments: { message: 'hello world' } })).body.result).toBeDefined();
    const bad = await rpc(gw, limited, 'tools/call', { name: 'echo', arguments: { message: 'rm -rf /' } });
    expect(bad.body.error).toMatchObject({ code: -32602, data: { type: 'argument_not_permitted', argument: 'message', constraint: 'pattern' } });
    expect(bad.text).not.toContain('rm -rf');
    const long = await rpc(gw, limited, 'tools/call', { name: 'echo', arguments: { message: 'hello abcdefghijklmnopqrstuvwxyz' } });
    expect(long.body.error?.data).toMatchObject({ argument: 'message', constraint: 'maxLength' });
  });

  it('asks for the scope a grant needs with an insufficient_scope error (step-up)', async () => {
    const r = await rpc(gw, stepUp, 'tools/call', { name: 'add_numbers', arguments: { a: 1, b: 2 } });
    expect(r.body.error).toMatchObject({ data: { type: 'insufficient_scope', scope: 'mcp:math' } });
    const ok = await rpc(gw, { ...stepUp, scopes: ['mcp:math'] }, 'tools/call', { name: 'add_numbers', arguments: { a: 1, b: 2 } });
    expect(ok.body.result?.['content']).toEqual([{ type: 'text', text: '3' }]);
  });

  it('applies toolset-restricted grants only through that toolset endpoint', async () => {
    expect(names(await rpc(gw, mathUser, 'tools/list', {}), 'tools')).toEqual([]);
    expect((await rpc(gw, mathUser, 'tools/call', { name: 'add_numbers', arguments: { a: 1, b: 2 } })).body.error?.data?.['type']).toBe('tool_not_found');
    expect(names(await rpc(gw, mathUser, 'tools/list', {}, '/finder'), 'tools')).toEqual(['add_numbers']);
    expect((await rpc(gw, mathUser, 'tools/call', { name: 'add_numbers', arguments: { a: 20, b: 22 } }, '/finder')).body.result?.['content']).toEqual([{ type: 'text', text: '42' }]);
  });

  describe('tenants', () => {
    it('keep another tenant\'s targets out of lists and calls, even for role *', async () => {
      const mine = names(await rpc(gw, acme, 'tools/list', {}), 'tools');
      expect(mine).toEqual(expect.arrayContaining(['test_sampling']));
      expect(mine).not.toContain('echo');
      const admin = who('root', { roles: ['*'] });
      expect(names(await rpc(gw, admin, 'tools/list', {}), 'tools')).not.toContain('test_sampling');
      const x = await rpc(gw, admin, 'tools/call', { name: 'test_sampling', arguments: {} });
      const y = await rpc(gw, admin, 'tools/call', { name: 'no_such_tool', arguments: {} });
      expect(x.text.replace('test_sampling', '<n>')).toBe(y.text.replace('no_such_tool', '<n>'));
      // Another tenant's resource answers as any URI nobody lists does (here: acme's only
      // target is asked, as the owner of unlisted URIs, and does not serve resources).
      const theirs = await rpc(gw, acme, 'resources/read', { uri: 'test://static-text' });
      const nowhere = await rpc(gw, acme, 'resources/read', { uri: 'test://nowhere' });
      expect(theirs.body.error).toBeDefined();
      expect(theirs.text).toBe(nowhere.text);
    });

    it('answer another tenant\'s toolset endpoint like one that does not exist', async () => {
      const theirs = await rpc(gw, reader, 'tools/list', {}, '/acme_tools');
      const none = await rpc(gw, reader, 'tools/list', {}, '/no_such_toolset');
      expect(theirs.status).toBe(none.status);
      expect(names(await rpc(gw, acme, 'tools/list', {}, '/acme_tools'), 'tools')).toEqual(expect.arrayContaining(['test_sampling']));
    });

    it('bind task ids to the principal that created them', async () => {
      const created = await rpc(gw, bob, 'tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'mine' } });
      const taskId = created.body.result?.['taskId'] as string;
      expect(taskId.startsWith('gt1.')).toBe(true);
      expect((await rpc(gw, bob, 'tasks/get', { taskId })).body.result).toMatchObject({ taskId });
      const stolen = await rpc(gw, mallory, 'tasks/get', { taskId });
      const forged = `${taskId.slice(0, taskId.lastIndexOf('.'))}.nope`;
      const unknown = await rpc(gw, mallory, 'tasks/get', { taskId: forged });
      expect(stolen.body.error).toMatchObject({ code: -32602, data: { type: 'task_not_found' } });
      expect(stolen.status).toBe(unknown.status);
      expect(stolen.text.replace(taskId, '<id>')).toBe(unknown.text.replace(forged, '<id>'));
      expect((await rpc(gw, { ...acme, roles: ['tasker'] }, 'tasks/cancel', { taskId })).body.error?.data?.['type']).toBe('task_not_found');
      await rpc(gw, bob, 'tasks/cancel', { taskId });
    });
  });

  describe('observe-only', () => {
    let observed: TestGateway;

    beforeAll(async () => {
      observed = await startGateway(config(true, { b: b.url, m: m.url }));
      await waitFor(() => observed.gateway.catalog.all.toolByName.has('echo'), 15_000);
    });

    afterAll(async () => {
      await observed?.stop();
    });

    it('denies nothing, lists everything in the tenant, and logs would_deny with the reason', async () => {
      const listed = names(await rpc(observed, reader, 'tools/list', {}), 'tools');
      expect(listed).toEqual(expect.arrayContaining(['echo', 'add_numbers']));
      expect(listed).not.toContain('test_sampling');
      const r = await rpc(observed, reader, 'tools/call', { name: 'add_numbers', arguments: { a: 1, b: 1 } });
      expect(r.body.result?.['content']).toEqual([{ type: 'text', text: '2' }]);
      await waitFor(() => observed.logLines.some((l) => l['kind'] === 'call' && l['name'] === 'add_numbers' && l['policy_decision'] === 'would_deny'), 5_000);
      const line = observed.logLines.find((l) => l['kind'] === 'call' && l['policy_decision'] === 'would_deny');
      expect(line?.['policy_reason']).toBe('no grant for tool add_numbers on target a');
    });
  });
});
