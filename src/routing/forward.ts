/**
 * Forwarding one call to its target: the per-attempt step (deadline, cancellation) around
 * `UpstreamConnection.request`, and the rewrite of the upstream's answer to the agent's id.
 * An upstream JSON-RPC error passes through unchanged except for the id.
 */
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import { META_PROTOCOL_VERSION, stripModernMeta } from '../protocol/eras.ts';
import { modernMeta } from '../upstream/handshake.ts';
import { fulfilForLegacySession } from './input-fulfilment.ts';
import { metaOf } from '../protocol/jsonrpc.ts';
import type { InputRequiredBroker } from './input-required.ts';
import { exposeTaskIds, type TaskIdKey } from './tasks.ts';
import type { AttemptSpan } from '../telemetry/tracing.ts';
import { withTraceContext } from '../telemetry/trace-context.ts';
import { authorizationRequired, consumeConsentState, type ConsentElicitations } from './upstream-authorization.ts';

export interface ForwardDeps {
  registry: UpstreamRegistry;
  /** Parks upstream calls that need input from 2026-07-28 agents. */
  inputs: InputRequiredBroker;
  /** Per-target deadline for one attempt. */
  timeoutMs(target: string): number;
  /** The gateway's key for task ids handed to agents. */
  taskIdKey: TaskIdKey;
  /** The connect-page flows that per-user upstream authorization sends agents to. */
  consent?: ConsentElicitations | undefined;
}

/**
 * Forward `method` with `params` to `target` on behalf of the call in `ctx`. `headers` are
 * extra upstream HTTP headers derived from the body (`Mcp-Param-*`).
 */
export async function forward(
  ctx: CallContext,
  deps: ForwardDeps,
  target: string,
  method: string,
  params: JsonObject | undefined,
  headers?: Readonly<Record<string, string>>,
): Promise<JsonRpcResponse> {
  try {
    // A retry after the user authorized upstream: the consent state is the gateway's own, and
    // must not reach the upstream nor the MRTR bridge (which reads the request's own params).
    let outbound = params;
    const consumed = consumeConsentState(ctx, deps.consent, target, params);
    if (consumed !== undefined) ({ ctx, params: outbound } = consumed);
    // Telemetry: one child span per upstream attempt, ended with what the attempt came to.
    const span = ctx.trace?.startAttempt(target, method);
    if (span === undefined) return await forwardAttempt(ctx, deps, target, method, outbound, headers, undefined);
    try {
      const response = await forwardAttempt(ctx, deps, target, method, outbound, headers, span);
      span.end(response);
      return response;
    } catch (err) {
      span.end(undefined, err);
      throw err;
    }
  } catch (err) {
    if (err instanceof GatehouseError && err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' && err.details.data?.['elicitations'] === undefined) {
      return authorizationRequired(ctx, deps.consent, err);
    }
    throw err;
  }
}

async function forwardAttempt(
  ctx: CallContext,
  deps: ForwardDeps,
  target: string,
  method: string,
  params: JsonObject | undefined,
  headers: Readonly<Record<string, string>> | undefined,
  span: AttemptSpan | undefined,
): Promise<JsonRpcResponse> {
  // Before the connection: a refusal there (authorization required) is still this target's row.
  ctx.record.target = target;
  const connection = await deps.registry.connectionFor(target, ctx.session, ctx.principal);
  ctx.record.upstreamTransport = connection.transportKind;
  let outbound = params;
  // A legacy upstream negotiated its version once; the modern per-request keys would
  // contradict that session, so they stay at the gateway.
  if (connection.facts?.era === 'modern' && ctx.session.era === 'legacy' && metaOf(params)?.[META_PROTOCOL_VERSION] === undefined) {
    // Per-request metadata on behalf of a 2025-era session: its own capabilities, so the
    // upstream asks only for input this agent can give (basic/index "client capabilities").
    outbound = { ...params, _meta: { ...metaOf(params), ...modernMeta(ctx.session.clientCapabilities, ctx.session.clientInfo) } };
  }
  if (connection.facts?.era === 'legacy') {
    const meta = metaOf(params);
    if (meta !== undefined) {
      const stripped = stripModernMeta(meta);
      if (stripped === undefined) {
        const { _meta: _drop, ...rest } = params!;
        outbound = rest;
      } else if (Object.keys(stripped).length !== Object.keys(meta).length) {
        outbound = { ...params, _meta: stripped };
      }
    }
  }
  // The attempt's trace context goes upstream: HTTP headers, and `_meta` where the era has it.
  if (span !== undefined) ({ params: outbound, headers } = withTraceContext(span, outbound, headers, connection.facts?.era));
  const timeoutMs = deps.timeoutMs(target);
  if (ctx.session.era === 'modern' && connection.facts?.era === 'legacy') {
    // A legacy upstream may ask this modern agent for input mid-call: bridge it with MRTR.
    // The retry's requestState/inputResponses are for the gateway and never go upstream.
    const { requestState: _state, inputResponses: _responses, ...clean } = outbound ?? {};
    const name = params?.['name'] ?? params?.['uri'];
    const binding = `${method}\u0000${typeof name === 'string' ? name : ''}`;
    return deps.inputs.run(ctx, binding, timeoutMs, (exchange) =>
      connection.request({ method, params: outbound === undefined ? undefined : clean, sink: exchange.sink, signal: exchange.controller.signal, headers }),
    );
  }
  const attempt = new AbortController();
  const onCallAbort = (): void => attempt.abort(ctx.signal.reason);
  if (ctx.signal.aborted) throw new GatehouseError('REQUEST_CANCELLED', 'request cancelled');
  ctx.signal.addEventListener('abort', onCallAbort, { once: true });
  const timer = ctx.clock.setTimeout(
    () => attempt.abort(new GatehouseError('UPSTREAM_TIMEOUT', `${target} did not answer ${method} within ${timeoutMs} ms`, { data: { target, timeoutMs } })),
    timeoutMs,
  );
  try {
    const send = (p: JsonObject | undefined): Promise<JsonRpcResponse> => connection.request({ method, params: p, sink: ctx.sink, signal: attempt.signal, headers });
    let response = await send(outbound);
    if (ctx.session.era === 'legacy' && connection.facts?.era === 'modern') {
      // A modern upstream asks for input in its result; this agent expects to be asked.
      response = await fulfilForLegacySession(ctx, response, (extra) => send({ ...outbound, ...extra }), attempt.signal);
    }
    if (!('result' in response)) return { jsonrpc: '2.0', id: ctx.request.id, error: response.error };
    const answer: JsonRpcResponse = { jsonrpc: '2.0', id: ctx.request.id, result: response.result };
    // A task handle (a CreateTaskResult, or a tasks/* result) must name its owner for later polls.
    return response.result['resultType'] === 'task' || method.startsWith('tasks/') ? exposeTaskIds(deps.taskIdKey, answer, target, ctx.principal) : answer;
  } finally {
    ctx.clock.clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onCallAbort);
  }
}
