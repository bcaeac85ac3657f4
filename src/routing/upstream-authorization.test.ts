import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { createSnapshot } from '../config/snapshot.ts';
import type { Principal } from '../auth/principal.ts';
import { DownstreamSession } from '../downstream/session.ts';
import { createCallRecord } from '../telemetry/call-record.ts';
import { systemClock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import { compose } from '../pipeline/stage.ts';
import { errorBoundaryStage } from '../pipeline/error-boundary.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { InputRequiredBroker } from './input-required.ts';
import { TaskIdKey } from './tasks.ts';
import { forward } from './forward.ts';
import type { ConsentElicitations } from './upstream-authorization.ts';

const alice: Principal = { tenant: 'default', user: 'alice', agent: 'cli', roles: ['*'], scopes: [], method: 'oauth' };
const mallory: Principal = { ...alice, user: 'mallory' };

/** Flows as the connect page keeps them: one per owner and target. */
function memoryFlows(): ConsentElicitations & { created: number } {
  const flows = new Map<string, { tenant: string; user: string; agent: string; target: string }>();
  return {
    created: 0,
    create(request) {
      this.created++;
      const id = `flow-${request.user}-${request.target}`;
      flows.set(id, request);
      return { elicitationId: id, url: `http://127.0.0.1:1/upstream-auth/connect/${id}`, message: `Authorize ${request.target}` };
    },
    owner: (id) => flows.get(id),
  };
}

/** A registry whose one target refuses until `authorized` holds the user. */
function harness(authorized: Set<string>) {
  const forwarded: Array<JsonObject | undefined> = [];
  const registry = {
    connectionFor: async (target: string, _session: unknown, principal: Principal) => {
      if (!authorized.has(principal.user)) {
        throw new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', 'needs authorization', { data: { target, reason: 'not_authorized' } });
      }
      return {
        transportKind: 'streamable-http',
        facts: { era: 'modern' },
        request: async (req: { params?: JsonObject }): Promise<JsonRpcResponse> => {
          forwarded.push(req.params);
          return { jsonrpc: '2.0', id: 0, result: { content: [] } };
        },
      };
    },
  } as unknown as UpstreamRegistry;
  const flows = memoryFlows();
  const deps = { registry, inputs: {} as InputRequiredBroker, timeoutMs: () => 1_000, taskIdKey: new TaskIdKey(), consent: flows };
  const config = parseConfig({ targets: { saas: { transport: 'streamable-http', url: 'https://saas.example/mcp' } } }, 'test', { configDir: '/' });
  const call = async (principal: Principal, era: 'legacy' | 'modern', params: JsonObject, capabilities: JsonObject = {}): Promise<JsonRpcResponse> => {
    const session = new DownstreamSession({ id: 's', era, toolset: undefined, protocolVersion: era === 'modern' ? '2026-07-28' : '2025-11-25', transport: 'streamable-http', principal, clientCapabilities: capabilities, now: 0 });
    const pipeline = compose([errorBoundaryStage(), { name: 'forward', run: (ctx) => forward(ctx, deps, 'saas', 'tools/call', ctx.request.params) }]);
    const ctx: CallContext = {
      request: { jsonrpc: '2.0', id: 3, method: 'tools/call', params },
      session,
      principal,
      snapshot: createSnapshot(1, 0, config, pipeline),
      record: createCallRecord('tools/call', 3, 0, 'streamable-http'),
      signal: new AbortController().signal,
      sink: { notify: () => undefined, request: () => Promise.reject(new Error('no agent')) },
      clock: systemClock,
    };
    return pipeline.run(ctx);
  };
  return { call, forwarded, flows };
}

describe('per-user upstream authorization as a URL elicitation', () => {
  it('answers a 2025-11-25 agent with -32042 and a URL elicitation to the connect page', async () => {
    const { call } = harness(new Set());
    const response = await call(alice, 'legacy', { name: 'search', arguments: {} });
    expect(response).toMatchObject({
      id: 3,
      error: {
        code: -32042,
        data: {
          type: 'upstream_authorization_required',
          target: 'saas',
          reason: 'not_authorized',
          elicitations: [{ mode: 'url', elicitationId: 'flow-alice-saas', url: 'http://127.0.0.1:1/upstream-auth/connect/flow-alice-saas' }],
        },
      },
    });
  });

  it('answers a 2026-07-28 agent with an InputRequiredResult, and runs the call on the retry once authorized', async () => {
    const authorized = new Set<string>();
    const { call, forwarded } = harness(authorized);
    const caps = { elicitation: { url: {} } };
    const first = await call(alice, 'modern', { name: 'search', arguments: {} }, caps);
    expect(first).toMatchObject({
      result: {
        resultType: 'input_required',
        inputRequests: { 'upstream-authorization': { method: 'elicitation/create', params: { mode: 'url', elicitationId: 'flow-alice-saas' } } },
        requestState: 'ghc1.flow-alice-saas',
      },
    });
    // Retried before the user finished: asked again, nothing forwarded.
    const again = await call(alice, 'modern', { name: 'search', arguments: {}, requestState: 'ghc1.flow-alice-saas', inputResponses: { 'upstream-authorization': { action: 'accept' } } }, caps);
    expect(again).toMatchObject({ result: { resultType: 'input_required' } });
    expect(forwarded).toHaveLength(0);
    authorized.add('alice');
    const done = await call(alice, 'modern', { name: 'search', arguments: {}, requestState: 'ghc1.flow-alice-saas', inputResponses: { 'upstream-authorization': { action: 'accept' } } }, caps);
    expect(done).toMatchObject({ result: { content: [] } });
    // The gateway's own state and the agent's answer never travel upstream.
    expect(forwarded).toEqual([{ name: 'search', arguments: {} }]);
  });

  it("refuses another user's consent state, as an unknown one", async () => {
    const { call } = harness(new Set(['mallory']));
    const caps = { elicitation: { url: {} } };
    await call(alice, 'modern', { name: 'search' }, caps);
    const stolen = await call(mallory, 'modern', { name: 'search', requestState: 'ghc1.flow-alice-saas' }, caps);
    expect(stolen).toMatchObject({ error: { code: -32602, data: { type: 'invalid_input_response' } } });
    const unknown = await call(mallory, 'modern', { name: 'search', requestState: 'ghc1.nope' }, caps);
    expect(unknown).toMatchObject({ error: { code: -32602, data: { type: 'invalid_input_response' } } });
  });

  it('never sends a URL input request to a 2026-07-28 agent that did not declare URL elicitation', async () => {
    const { call, flows } = harness(new Set());
    const response = await call(alice, 'modern', { name: 'search' }, { elicitation: { form: {} } });
    expect(response).toMatchObject({ error: { code: -32021, data: { type: 'missing_client_capability', requiredCapabilities: { elicitation: { url: {} } } } } });
    expect(flows.created).toBe(0);
  });
});
