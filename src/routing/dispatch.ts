/**
 * The terminal stage: answers what the gateway itself owns (ping, the aggregated lists,
 * logging level, discovery) and routes everything else to the target that owns it.
 *
 * It works on two views of the endpoint's catalog, both from the compiled policy: `visible`
 * (what the caller may call: tenant, grants and toolset applied; the tenant only in
 * observe-only mode) for lists, capabilities, tools, prompts and tasks, and `routing` (the
 * tenant only) to find which target owns a resource URI. The authorize stage has already
 * judged the call against the same views.
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { MODERN_VERSION, LEGACY_VERSIONS, META_SERVER_INFO } from '../protocol/eras.ts';
import { GATEWAY_INFO } from '../version.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { Stage } from '../pipeline/stage.ts';
import { completionResourceTarget, endpointView, resourceTarget, type Catalog, type CatalogView } from '../catalog/catalog.ts';
import { unknownPrompt, unknownResource, unknownTool } from '../catalog/unknown-names.ts';
import type { CompiledPolicy } from '../auth/policy.ts';
import { LOG_LEVELS, type LogLevel } from '../downstream/session.ts';
import type { UpstreamConnection } from '../upstream/connection.ts';
import { forward, type ForwardDeps } from './forward.ts';
import { paramHeaderMismatch, paramHeaderValues } from '../protocol/param-headers.ts';
import { offersTasks, routeTaskRequest, TASKS_EXTENSION } from './tasks.ts';
import { LIST_METHODS, listPage } from './list-methods.ts';
import type { SubscriptionIndex } from './subscriptions.ts';

export interface DispatchDeps extends ForwardDeps {
  catalog(): Catalog;
  subscriptions: SubscriptionIndex;
  pageSize: number;
  listTtlMs: number;
  instructions: string | undefined;
}

/** The caller's views of the endpoint (see the module doc). */
interface Views {
  readonly visible: CatalogView;
  readonly routing: CatalogView;
}

type Handler = (ctx: CallContext, views: Views, deps: DispatchDeps) => Promise<JsonRpcResponse>;

/**
 * The capabilities the gateway advertises downstream: what its endpoint can route. The tasks
 * extension only when a target in the view offers it, and only to modern agents: the gateway
 * creates no tasks itself, it routes the upstreams' ones.
 */
export function gatewayCapabilities(ctx: CallContext, view: CatalogView, deps: DispatchDeps): JsonObject {
  const capabilities: JsonObject = {
    tools: { listChanged: true },
    prompts: { listChanged: true },
    resources: { subscribe: true, listChanged: true },
    logging: {},
    completions: {},
  };
  if (ctx.session.era === 'modern' && view.targets.some((t) => offersTasks(deps.registry.facts(t)))) {
    capabilities['extensions'] = { [TASKS_EXTENSION]: {} };
  }
  return capabilities;
}

const taskHandler: Handler = async (ctx, { visible }, deps) => {
  const { target, params } = routeTaskRequest(ctx, visible, (t) => deps.registry.facts(t), deps.taskIdKey);
  return forward(ctx, deps, target, ctx.request.method, params);
};

const ok = (ctx: CallContext, result: JsonObject): JsonRpcResponse => ({ jsonrpc: '2.0', id: ctx.request.id, result });

function stringParam(ctx: CallContext, key: string): string {
  const value = ctx.request.params?.[key];
  if (typeof value !== 'string' || value.length === 0) throw new GatehouseError('INVALID_PARAMS', `params.${key} must be a non-empty string`, { id: ctx.request.id });
  return value;
}

/** Last level set upstream per shared connection: the most verbose any session asked for. */
const upstreamLogLevels = new WeakMap<UpstreamConnection, LogLevel>();

const handlers: Record<string, Handler> = {
  ping: async (ctx) => ok(ctx, {}),

  initialize: async (ctx, { visible }, deps) =>
    ok(ctx, {
      protocolVersion: ctx.session.protocolVersion,
      capabilities: gatewayCapabilities(ctx, visible, deps),
      serverInfo: GATEWAY_INFO,
      ...(deps.instructions ? { instructions: deps.instructions } : {}),
    }),

  'server/discover': async (ctx, { visible }, deps) =>
    ok(ctx, {
      supportedVersions: [MODERN_VERSION, ...LEGACY_VERSIONS],
      capabilities: gatewayCapabilities(ctx, visible, deps),
      ...(deps.instructions ? { instructions: deps.instructions } : {}),
      _meta: { [META_SERVER_INFO]: GATEWAY_INFO },
      ttlMs: deps.listTtlMs,
      cacheScope: 'private',
    }),

  'tools/call': async (ctx, { visible }, deps) => {
    const name = stringParam(ctx, 'name');
    ctx.record.name = name;
    const entry = visible.toolByName.get(name);
    // A tool outside the caller's view answers exactly like one that does not exist.
    if (entry === undefined) throw unknownTool(name, ctx.request.id);
    const params = entry.upstreamName === name ? ctx.request.params : { ...ctx.request.params, name: entry.upstreamName };
    if (entry.paramHeaders.length === 0) return forward(ctx, deps, entry.target, 'tools/call', params);
    const args = ctx.request.params?.['arguments'];
    // The gateway reads the body, so it must hold agents to the headers they sent; upstream it
    // writes them afresh from the body it forwards (streamable-http "Custom Headers").
    const mismatch = ctx.httpHeaders === undefined ? undefined : paramHeaderMismatch(entry.paramHeaders, args, ctx.httpHeaders);
    if (mismatch !== undefined) throw new GatehouseError('HEADER_MISMATCH', mismatch, { id: ctx.request.id });
    return forward(ctx, deps, entry.target, 'tools/call', params, paramHeaderValues(entry.paramHeaders, args));
  },

  'prompts/get': async (ctx, { visible }, deps) => {
    const name = stringParam(ctx, 'name');
    ctx.record.name = name;
    const entry = visible.promptByName.get(name);
    if (entry === undefined) throw unknownPrompt(name, ctx.request.id);
    const params = entry.upstreamName === name ? ctx.request.params : { ...ctx.request.params, name: entry.upstreamName };
    return forward(ctx, deps, entry.target, 'prompts/get', params);
  },

  'resources/read': async (ctx, { routing }, deps) => {
    const uri = stringParam(ctx, 'uri');
    ctx.record.name = uri;
    return forward(ctx, deps, ownerOf(ctx, routing, uri), 'resources/read', ctx.request.params);
  },

  'resources/subscribe': async (ctx, { routing }, deps) => {
    const uri = stringParam(ctx, 'uri');
    const target = ownerOf(ctx, routing, uri);
    ctx.record.name = uri;
    // Only the first subscriber of a URI subscribes upstream; later ones share it. At a per-user
    // target every subscriber subscribes on their own connection, so the upstream judges each user.
    if (deps.subscriptions.add(target, uri, ctx.session) || deps.registry.isPerUser(target)) {
      try {
        const response = await forward(ctx, deps, target, 'resources/subscribe', ctx.request.params);
        if ('error' in response) deps.subscriptions.remove(target, uri, ctx.session);
        return response;
      } catch (err) {
        deps.subscriptions.remove(target, uri, ctx.session);
        throw err;
      }
    }
    ctx.record.target = target;
    return ok(ctx, {});
  },

  'resources/unsubscribe': async (ctx, { routing }, deps) => {
    const uri = stringParam(ctx, 'uri');
    const target = ownerOf(ctx, routing, uri);
    ctx.record.name = uri;
    if (deps.subscriptions.remove(target, uri, ctx.session)) return forward(ctx, deps, target, 'resources/unsubscribe', ctx.request.params);
    ctx.record.target = target;
    return ok(ctx, {});
  },

  'completion/complete': async (ctx, { visible, routing }, deps) => {
    const ref = ctx.request.params?.['ref'];
    if (!isPlainObject(ref)) throw new GatehouseError('INVALID_PARAMS', 'params.ref must be an object', { id: ctx.request.id });
    if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') {
      const entry = visible.promptByName.get(ref['name']);
      if (entry === undefined) throw unknownPrompt(ref['name'], ctx.request.id);
      ctx.record.name = ref['name'];
      return forward(ctx, deps, entry.target, 'completion/complete', { ...ctx.request.params, ref: { ...ref, name: entry.upstreamName } });
    }
    if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
      ctx.record.name = ref['uri'];
      const target = completionResourceTarget(routing, ref['uri']);
      if (target === undefined) throw unknownResource(ref['uri'], ctx.request.id);
      return forward(ctx, deps, target, 'completion/complete', ctx.request.params);
    }
    throw new GatehouseError('INVALID_PARAMS', 'params.ref must be a ref/prompt or ref/resource', { id: ctx.request.id });
  },

  'tasks/get': taskHandler,
  'tasks/update': taskHandler,
  'tasks/cancel': taskHandler,

  'logging/setLevel': async (ctx, _view, deps) => {
    const level = stringParam(ctx, 'level') as LogLevel;
    if (!LOG_LEVELS.includes(level)) throw new GatehouseError('INVALID_PARAMS', `Unknown log level: ${level}`, { id: ctx.request.id });
    ctx.session.logLevel = level;
    // Shared connections serve many sessions: upstream gets the most verbose level any
    // session asked for, and the gateway filters per session on the way down.
    await Promise.all(
      deps.registry.readyConnections().map(async (connection) => {
        if (!connection.facts?.capabilities['logging'] || connection.facts.era !== 'legacy') return;
        const current = upstreamLogLevels.get(connection);
        if (current !== undefined && LOG_LEVELS.indexOf(current) <= LOG_LEVELS.indexOf(level)) return;
        upstreamLogLevels.set(connection, level);
        await connection.request({ method: 'logging/setLevel', params: { level } }).catch(() => undefined);
      }),
    );
    return ok(ctx, {});
  },
};

function ownerOf(ctx: CallContext, view: CatalogView, uri: string): string {
  const target = resourceTarget(view, uri);
  if (target === undefined) throw unknownResource(uri, ctx.request.id);
  return target;
}

/** Build the terminal dispatch stage for one snapshot and its compiled policy. */
export function dispatchStage(deps: DispatchDeps, policy: CompiledPolicy): Stage {
  return {
    name: 'dispatch',
    async run(ctx) {
      const base = endpointView(deps.catalog(), ctx.session.toolset);
      if (base === undefined) throw new GatehouseError('NOT_FOUND', `Unknown toolset: ${ctx.session.toolset}`);
      const access = policy.accessFor(ctx.principal, ctx.session.toolset);
      const routing = access.tenantView(base);
      // Observe-only lists everything in the tenant: hiding what would be denied changes what
      // agents do (they never call what they cannot see), which is enforcement in all but
      // name, and the would_deny calls the mode exists to reveal would never happen.
      const view = policy.observeOnly ? routing : access.grantedView(base);
      const method = ctx.request.method;
      const kind = LIST_METHODS[method];
      if (kind !== undefined) {
        // 2026-07-28 lists are cacheable results: the hints go into the precomputed page.
        const hints = ctx.session.era === 'modern' ? { ttlMs: deps.listTtlMs, cacheScope: 'private' } : undefined;
        return ok(ctx, listPage(view, kind, ctx.request.params, deps.pageSize, hints));
      }
      const handler = handlers[method];
      if (handler !== undefined) return handler(ctx, { visible: view, routing }, deps);
      throw new GatehouseError('METHOD_NOT_FOUND', `Method not found: ${method}`, { id: ctx.request.id });
    },
  };
}
