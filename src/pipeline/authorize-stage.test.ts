import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { createSnapshot } from '../config/snapshot.ts';
import { buildCatalog, type TargetListing } from '../catalog/catalog.ts';
import { compilePolicy } from '../auth/policy.ts';
import type { Principal } from '../auth/principal.ts';
import { DownstreamSession } from '../downstream/session.ts';
import { createCallRecord } from '../telemetry/call-record.ts';
import { systemClock } from '../clock.ts';
import { dispatchStage } from '../routing/dispatch.ts';
import { TaskIdKey } from '../routing/tasks.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { InputRequiredBroker } from '../routing/input-required.ts';
import { SubscriptionIndex } from '../routing/subscriptions.ts';
import type { JsonObject, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { compose } from './stage.ts';
import { errorBoundaryStage } from './error-boundary.ts';
import { authorizeStage } from './authorize-stage.ts';
import type { CallContext } from './call-context.ts';

const tool = (name: string) => ({ name, inputSchema: { type: 'object' } });
const listings: TargetListing[] = [
  { target: 'alpha', tools: [tool('search'), tool('delete_file'), tool('deploy'), tool('admin_only')], prompts: [{ name: 'summary' }, { name: 'internal' }], resources: [{ uri: 'docs://1' }, { uri: 'secret://1' }], templates: [] },
  { target: 'gamma', tools: [tool('theirs')], prompts: [], resources: [{ uri: 'g://1' }], templates: [] },
];
const targets = { alpha: { transport: 'stdio', command: 'x' }, gamma: { transport: 'stdio', command: 'x', tenant: 'other' } };
const roles = {
  user: {
    grants: [
      { targets: ['alpha'], tools: ['search'], resources: ['docs://*'], prompts: ['summary'] },
      { targets: ['alpha'], tools: ['delete_file'], arguments: { path: { pattern: '/tmp/.*' } } },
      { targets: ['alpha'], tools: ['deploy'], scopes: ['mcp:deploy', 'mcp:tools'] },
    ],
  },
};

/** A stub upstream: answers every forwarded call with what it was asked. */
const forwarded: Array<{ method: string; params: unknown }> = [];
const connection = {
  transportKind: 'stdio',
  facts: undefined,
  async request(req: { method: string; params?: JsonObject }): Promise<JsonRpcResponse> {
    forwarded.push({ method: req.method, params: req.params });
    return { jsonrpc: '2.0', id: 0, result: { ok: true } };
  },
};
/** The targets forwarded calls went to, in order. */
const calledTargets: string[] = [];
const registry = {
  connectionFor: async (target: string) => {
    calledTargets.push(target);
    return connection;
  },
  facts: () => undefined,
  readyConnections: () => [],
} as unknown as UpstreamRegistry;

function gatewayFor(observeOnly = false, over: { listings?: TargetListing[]; targets?: Record<string, unknown> } = {}) {
  const config = parseConfig({ targets: over.targets ?? targets, policy: { observeOnly, roles }, toolsets: { ts: { tools: ['alpha/search'] } } }, 'test', { configDir: '/' });
  const catalog = buildCatalog(over.listings ?? listings, config);
  const policy = compilePolicy(config);
  const deps = {
    registry,
    inputs: {} as InputRequiredBroker,
    catalog: () => catalog,
    subscriptions: new SubscriptionIndex(() => undefined),
    pageSize: 100,
    listTtlMs: 0,
    instructions: undefined,
    timeoutMs: () => 1_000,
    taskIdKey: new TaskIdKey(),
  };
  const pipeline = compose([errorBoundaryStage(), authorizeStage({ policy, catalog: deps.catalog }), dispatchStage(deps, policy)]);
  const snapshot = createSnapshot(1, 0, config, pipeline);
  return async (principal: Principal, method: string, params: JsonObject, toolset?: string) => {
    const session = new DownstreamSession({ id: 's', era: 'legacy', protocolVersion: '2025-11-25', transport: 'streamable-http', toolset, principal, now: 0 });
    const record = createCallRecord(method, 7, 0, 'streamable-http');
    const ctx: CallContext = {
      request: { jsonrpc: '2.0', id: 7, method, params },
      session,
      principal,
      snapshot,
      record,
      signal: new AbortController().signal,
      sink: { notify: () => undefined, request: () => Promise.reject(new Error('no agent')) },
      clock: systemClock,
    };
    const response = await pipeline.run(ctx);
    return { response, record, text: JSON.stringify(response) };
  };
}

const alice: Principal = { tenant: 'default', user: 'alice', agent: 'cli', roles: ['user'], scopes: [], method: 'oauth' };

describe('authorize stage', () => {
  const call = gatewayFor();

  it('lets a granted call through and records the decision', async () => {
    const { response, record } = await call(alice, 'tools/call', { name: 'search', arguments: {} });
    expect(response).toMatchObject({ result: { ok: true } });
    expect(record.policyDecision).toBe('allow');
    expect(record.policyReason).toBeUndefined();
  });

  it.each([
    ['tools/call', { name: 'theirs' }, { name: 'nonexistent' }],
    ['tools/call', { name: 'admin_only' }, { name: 'nonexistent' }],
    ['prompts/get', { name: 'internal' }, { name: 'nonexistent' }],
    ['resources/read', { uri: 'secret://1' }, { uri: 'nonexistent://1' }],
    ['resources/read', { uri: 'g://1' }, { uri: 'nonexistent://1' }],
    ['resources/subscribe', { uri: 'secret://1' }, { uri: 'nonexistent://1' }],
    ['completion/complete', { ref: { type: 'ref/prompt', name: 'internal' }, argument: { name: 'a', value: '' } }, { ref: { type: 'ref/prompt', name: 'nonexistent' }, argument: { name: 'a', value: '' } }],
  ])('answers a denied %s %j byte for byte like an unknown name', async (method, denied, unknown) => {
    const a = await call(alice, method, denied);
    const b = await call(alice, method, unknown);
    const name = (p: JsonObject) => String(p['name'] ?? p['uri'] ?? (p['ref'] as JsonObject)['name']);
    expect(a.text.replaceAll(name(denied), '<name>')).toBe(b.text.replaceAll(name(unknown), '<name>'));
    expect(a.response).toHaveProperty('error');
  });

  it('records a denial with a short reason, not forwarded', async () => {
    forwarded.length = 0;
    const { record } = await call(alice, 'prompts/get', { name: 'internal' });
    expect(record).toMatchObject({ policyDecision: 'deny', policyReason: 'no grant for prompt internal on target alpha', name: 'internal', errorType: 'prompt_not_found' });
    const wall = await call(alice, 'tools/call', { name: 'theirs' });
    expect(wall.record).toMatchObject({ policyDecision: 'deny', policyReason: "not in the caller's tenant" });
    expect(forwarded).toEqual([]);
  });

  it('asks for the missing scopes (step-up) when a grant needs them', async () => {
    const { response, record } = await call(alice, 'tools/call', { name: 'deploy' });
    expect(response).toMatchObject({ error: { data: { type: 'insufficient_scope', scope: 'mcp:deploy mcp:tools' } } });
    expect(record.policyDecision).toBe('deny');
    const ok = await call({ ...alice, scopes: ['mcp:tools', 'mcp:deploy'] }, 'tools/call', { name: 'deploy' });
    expect(ok.response).toMatchObject({ result: { ok: true } });
  });

  it('names the argument (not its value) when a visible tool is called outside its grant', async () => {
    const { response } = await call(alice, 'tools/call', { name: 'delete_file', arguments: { path: '/etc/shadow' } });
    expect(response).toMatchObject({ error: { code: -32602, data: { type: 'argument_not_permitted', argument: 'path', constraint: 'pattern' } } });
    expect(JSON.stringify(response)).not.toContain('/etc/shadow');
    expect(JSON.stringify(response)).not.toContain('/tmp/');
    expect((await call(alice, 'tools/call', { name: 'delete_file', arguments: { path: '/tmp/x' } })).response).toMatchObject({ result: { ok: true } });
  });

  it('filters the lists by the same grants, and the tenant', async () => {
    const tools = await call(alice, 'tools/list', {});
    expect(JSON.parse(tools.text).result.tools.map((t: JsonObject) => t['name'])).toEqual(['search', 'delete_file', 'deploy']);
    const resources = await call(alice, 'resources/list', {});
    expect(JSON.parse(resources.text).result.resources).toEqual([{ uri: 'docs://1' }]);
    const prompts = await call(alice, 'prompts/list', {});
    expect(JSON.parse(prompts.text).result.prompts).toEqual([{ name: 'summary' }]);
    expect(tools.record.policyDecision).toBeUndefined();
  });

  it('routes and lists through the toolset the session is bound to', async () => {
    const { text } = await call(alice, 'tools/list', {}, 'ts');
    expect(JSON.parse(text).result.tools.map((t: JsonObject) => t['name'])).toEqual(['search']);
    expect((await call(alice, 'tools/call', { name: 'delete_file', arguments: { path: '/tmp/x' } }, 'ts')).response).toMatchObject({ error: { data: { type: 'tool_not_found' } } });
  });

  it('routes a name two tenants share to the caller\'s own target', async () => {
    const shared = gatewayFor(false, {
      targets: { ...targets, beta: { transport: 'stdio', command: 'x', tenant: 'other' } },
      listings: [listings[0]!, { target: 'beta', tools: [tool('search')], prompts: [], resources: [], templates: [] }],
    });
    const carol: Principal = { tenant: 'other', user: 'carol', agent: 'cli', roles: ['*'], scopes: [], method: 'oauth' };
    const theirs = await shared(carol, 'tools/list', {});
    expect(JSON.parse(theirs.text).result.tools.map((t: JsonObject) => t['name'])).toEqual(['search']);
    calledTargets.length = 0;
    expect((await shared(carol, 'tools/call', { name: 'search', arguments: {} })).response).toMatchObject({ result: { ok: true } });
    expect((await shared(alice, 'tools/call', { name: 'search', arguments: {} })).response).toMatchObject({ result: { ok: true } });
    expect(calledTargets).toEqual(['beta', 'alpha']);
  });

  describe('observe-only', () => {
    const observe = gatewayFor(true);

    it('denies nothing in the tenant, records would_deny with the reason, and lists everything in the tenant', async () => {
      const { response, record } = await observe(alice, 'prompts/get', { name: 'internal' });
      expect(response).toMatchObject({ result: { ok: true } });
      expect(record).toMatchObject({ policyDecision: 'would_deny', policyReason: 'no grant for prompt internal on target alpha' });
      const scope = await observe(alice, 'tools/call', { name: 'deploy' });
      expect(scope.record.policyDecision).toBe('would_deny');
      const tools = await observe(alice, 'tools/list', {});
      expect(JSON.parse(tools.text).result.tools.map((t: JsonObject) => t['name'])).toEqual(['search', 'delete_file', 'deploy', 'admin_only']);
    });

    it('still keeps another tenant\'s targets out', async () => {
      const { response, record } = await observe(alice, 'tools/call', { name: 'theirs' });
      expect(response).toMatchObject({ error: { data: { type: 'tool_not_found' } } });
      expect(record.policyDecision).toBe('deny');
    });
  });
});
