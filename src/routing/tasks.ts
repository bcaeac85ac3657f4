/**
 * The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) across the fan-in. An
 * upstream that decides to run a call as a task answers with a `CreateTaskResult`; the agent
 * then polls with `tasks/get`, answers input with `tasks/update` and may `tasks/cancel`.
 * Those three carry only a `taskId`, so the gateway must know which target owns it.
 *
 * The gateway does not keep a table for that: it hands agents a task id that names its target
 * and is bound to the principal that created it
 * (`gt1.<base64url target>.<binding>.<upstream task id>`, the binding an HMAC over principal,
 * target and upstream id). Any replica holding the same key can route it, and a `tasks/get`
 * sent the moment the task is created resolves (SEP-2663 "durable create"). The upstream id
 * stays inside unchanged, so the upstream remains the judge of which ids exist.
 *
 * The binding is what keeps tenants and principals apart: the upstream knows nothing of them,
 * so without it anyone holding a task id could poll, answer or cancel another's task. An id
 * presented by another principal answers exactly like an unknown one. The key belongs to one
 * gateway (`TaskIdKey`): the gateway loads it from its database at start, so ids survive a
 * restart and route on every replica sharing that database (see Gateway.start).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { CatalogView } from '../catalog/catalog.ts';
import type { ServerFacts } from '../upstream/handshake.ts';
import { principalKey, type Principal } from '../auth/principal.ts';
import { unknownTask } from '../catalog/unknown-names.ts';

export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
export const TASK_METHODS = ['tasks/get', 'tasks/update', 'tasks/cancel'] as const;

const PREFIX = 'gt1.';
/** Characters of the base64url HMAC kept: 128 bits. */
const BINDING_CHARS = 22;

/** Bytes of a generated key (and the least a supplied one may have: 128 bits). */
export const TASK_ID_KEY_BYTES = 32;
const MIN_KEY_BYTES = 16;

/**
 * The HMAC key one gateway binds task ids with. It starts random; `use` swaps in the key
 * shared through the database before the listener binds, so no id is issued under the random
 * one. Per gateway, not per module: two gateways in one process (tests, tools) on different
 * databases must not route each other's ids.
 */
export class TaskIdKey {
  private key: Buffer;

  constructor(key?: Uint8Array) {
    this.key = key === undefined ? randomBytes(TASK_ID_KEY_BYTES) : TaskIdKey.checked(key);
  }

  /** Replace the key (the shared one, read from the store at start). */
  use(key: Uint8Array): void {
    this.key = TaskIdKey.checked(key);
  }

  /** The binding of an upstream task id to its target and principal. */
  bind(principal: Principal, target: string, upstreamId: string): string {
    return createHmac('sha256', this.key).update(`${principalKey(principal)}\u0000${target}\u0000${upstreamId}`).digest('base64url').slice(0, BINDING_CHARS);
  }

  private static checked(key: Uint8Array): Buffer {
    if (key.byteLength < MIN_KEY_BYTES) throw new Error(`the task id key needs at least ${MIN_KEY_BYTES} bytes`);
    return Buffer.from(key);
  }
}

/** The id `principal` sees for task `upstreamId` of `target`. */
export function gatewayTaskId(key: TaskIdKey, target: string, upstreamId: string, principal: Principal): string {
  return `${PREFIX}${Buffer.from(target, 'utf8').toString('base64url')}.${key.bind(principal, target, upstreamId)}.${upstreamId}`;
}

/** The parts of a gateway task id, or undefined when it is not one (the binding is not checked). */
export function parseTaskId(taskId: string): { target: string; binding: string; upstreamId: string } | undefined {
  if (!taskId.startsWith(PREFIX)) return undefined;
  const dot = taskId.indexOf('.', PREFIX.length);
  if (dot < 0) return undefined;
  const second = taskId.indexOf('.', dot + 1);
  if (second < 0 || second === taskId.length - 1) return undefined;
  const encoded = taskId.slice(PREFIX.length, dot);
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
  return { target: Buffer.from(encoded, 'base64url').toString('utf8'), binding: taskId.slice(dot + 1, second), upstreamId: taskId.slice(second + 1) };
}

/** The target and upstream id of a task id `principal` was given, or undefined (not ours, or another's). */
export function openTaskId(key: TaskIdKey, taskId: string, principal: Principal): { target: string; upstreamId: string } | undefined {
  const parsed = parseTaskId(taskId);
  if (parsed === undefined || parsed.binding.length !== BINDING_CHARS) return undefined;
  const expected = Buffer.from(key.bind(principal, parsed.target, parsed.upstreamId));
  const presented = Buffer.from(parsed.binding);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined;
  return { target: parsed.target, upstreamId: parsed.upstreamId };
}

/** Whether a target's server advertised the extension. */
export function offersTasks(facts: ServerFacts | undefined): boolean {
  const extensions = facts?.capabilities['extensions'];
  return isPlainObject(extensions) && isPlainObject(extensions[TASKS_EXTENSION]);
}

/** Whether the agent declared the extension in this request's (or session's) capabilities. */
export function agentAcceptsTasks(capabilities: JsonObject): boolean {
  const extensions = capabilities['extensions'];
  return isPlainObject(extensions) && isPlainObject(extensions[TASKS_EXTENSION]);
}

/**
 * A task handle from `target` gets the gateway's id before it reaches the agent: the
 * `CreateTaskResult` of any call, and the `taskId` echoed by `tasks/*` results.
 */
export function exposeTaskIds(key: TaskIdKey, response: JsonRpcResponse, target: string, principal: Principal): JsonRpcResponse {
  if (!('result' in response)) return response;
  const taskId = response.result['taskId'];
  if (typeof taskId !== 'string') return response;
  return { ...response, result: { ...response.result, taskId: gatewayTaskId(key, target, taskId, principal) } };
}

/**
 * Resolve a `tasks/*` request to its target and the params to send there. Errors follow the
 * order the extension implies: capability first (SEP-2663: a request without the extension
 * gets -32021 whatever its taskId), then the id; an id the gateway did not issue, one issued
 * to another principal, or one for a target outside the caller's view (another tenant, this
 * endpoint's selection) is an unknown task (-32602), all with the same answer.
 */
export function routeTaskRequest(
  ctx: CallContext,
  view: CatalogView,
  facts: (target: string) => ServerFacts | undefined,
  key: TaskIdKey,
): { target: string; params: JsonObject } {
  const id = ctx.request.id;
  if (ctx.session.era !== 'modern') {
    // The 2025-11-25 tasks utility has other semantics and is not offered on sessions.
    throw new GatehouseError('METHOD_NOT_FOUND', `Method not found: ${ctx.request.method}`, { id });
  }
  if (!agentAcceptsTasks(ctx.session.clientCapabilities)) {
    throw new GatehouseError('MISSING_CLIENT_CAPABILITY', `${ctx.request.method} needs the ${TASKS_EXTENSION} extension`, {
      id,
      data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
    });
  }
  const taskId = ctx.request.params?.['taskId'];
  if (typeof taskId !== 'string' || taskId.length === 0) throw new GatehouseError('INVALID_PARAMS', 'params.taskId must be a non-empty string', { id });
  const parsed = openTaskId(key, taskId, ctx.principal);
  if (parsed === undefined || !view.targets.includes(parsed.target) || !offersTasks(facts(parsed.target))) throw unknownTask(taskId, id);
  ctx.record.name = taskId;
  return { target: parsed.target, params: { ...ctx.request.params, taskId: parsed.upstreamId } };
}
