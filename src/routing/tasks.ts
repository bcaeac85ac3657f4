/**
 * The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) across the fan-in. An
 * upstream that decides to run a call as a task answers with a `CreateTaskResult`; the agent
 * then polls with `tasks/get`, answers input with `tasks/update` and may `tasks/cancel`.
 * Those three carry only a `taskId`, so the gateway must know which target owns it.
 *
 * The gateway does not keep a table for that: it hands agents a task id that names its target
 * (`gt1.<base64url target>.<upstream task id>`). Any replica can route it, it outlives
 * restarts exactly as long as the upstream's own task does, and a `tasks/get` sent the moment
 * the task is created resolves (SEP-2663 "durable create"). The upstream id stays inside
 * unchanged, so the upstream remains the judge of which ids exist.
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { CatalogView } from '../catalog/catalog.ts';
import type { ServerFacts } from '../upstream/handshake.ts';

export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
export const TASK_METHODS = ['tasks/get', 'tasks/update', 'tasks/cancel'] as const;

const PREFIX = 'gt1.';

/** The id agents see for a task `upstreamId` of `target`. */
export function gatewayTaskId(target: string, upstreamId: string): string {
  return `${PREFIX}${Buffer.from(target, 'utf8').toString('base64url')}.${upstreamId}`;
}

/** The target and upstream id inside a gateway task id, or undefined when it is not one. */
export function parseTaskId(taskId: string): { target: string; upstreamId: string } | undefined {
  if (!taskId.startsWith(PREFIX)) return undefined;
  const dot = taskId.indexOf('.', PREFIX.length);
  if (dot < 0 || dot === taskId.length - 1) return undefined;
  const encoded = taskId.slice(PREFIX.length, dot);
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
  return { target: Buffer.from(encoded, 'base64url').toString('utf8'), upstreamId: taskId.slice(dot + 1) };
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
export function exposeTaskIds(response: JsonRpcResponse, target: string): JsonRpcResponse {
  if (!('result' in response)) return response;
  const taskId = response.result['taskId'];
  if (typeof taskId !== 'string') return response;
  return { ...response, result: { ...response.result, taskId: gatewayTaskId(target, taskId) } };
}

/**
 * Resolve a `tasks/*` request to its target and the params to send there. Errors follow the
 * order the extension implies: capability first (SEP-2663: a request without the extension
 * gets -32021 whatever its taskId), then the id; an id the gateway did not issue, or one for
 * a target outside this endpoint's view, is an unknown task (-32602).
 */
export function routeTaskRequest(
  ctx: CallContext,
  view: CatalogView,
  facts: (target: string) => ServerFacts | undefined,
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
  const parsed = parseTaskId(taskId);
  if (parsed === undefined || !view.targets.includes(parsed.target) || !offersTasks(facts(parsed.target))) {
    throw new GatehouseError('TASK_NOT_FOUND', `Unknown task: ${taskId}`, { id });
  }
  ctx.record.name = taskId;
  return { target: parsed.target, params: { ...ctx.request.params, taskId: parsed.upstreamId } };
}
