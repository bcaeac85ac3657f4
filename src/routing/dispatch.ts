/**
 * The terminal stage: answers what the gateway itself owns (ping, the aggregated lists,
 * logging level, discovery) and routes everything else to the target that owns it.
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { MODERN_VERSION, LEGACY_VERSIONS, META_SERVER_INFO } from '../protocol/eras.ts';
import { GATEWAY_INFO } from '../version.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { Stage } from '../pipeline/stage.ts';
import { resourceTarget, type Catalog, type CatalogView } from '../catalog/catalog.ts';
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

type Handler = (ctx: CallContext, view: CatalogView, deps: DispatchDeps) => Promise<JsonRpcResponse>;

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

const taskHandler: Handler = async (ctx, view, deps) => {
  const { target, params } = routeTaskRequest(ctx, view, (t) => deps.registry.facts(t));
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

  initialize: async (ctx, view, deps) =>
    ok(ctx, {
      protocolVersion: ctx.session.protocolVersion,
      capabilities: gatewayCapabilities(ctx, view, deps),
      serverInfo: GATEWAY_INFO,
      ...(deps.instructions ? { instructions: deps.instructions } : {}),
    }),

  'server/discover': async (ctx, view, deps) =>
    ok(ctx, {
      supportedVersions: [MODERN_VERSION, ...LEGACY_VERSIONS],
      capabilities: gatewayCapabilities(ctx, view, deps),
      ...(deps.instructions ? { instructions: deps.instructions } : {}),
      _meta: { [META_SERVER_INFO]: GATEWAY_INFO },
      ttlMs: deps.listTtlMs,
      cacheScope: 'private',
    }),

  'tools/call': async (ctx, view, deps) => {
    const name = stringParam(ctx, 'name');
    ctx.record.name = name;
    const entry = view.toolByName.get(name);
    // A tool outside this endpoint's view answers exactly like one that does not exist.
    if (entry === undefined) throw new GatehouseError('TOOL_NOT_FOUND', `Unknown tool: ${name}`, { id: ctx.request.id });
    const params = entry.upstreamName === name ? ctx.request.params : { ...ctx.request.params, name: entry.upstreamName };
    if (entry.paramHeaders.length === 0) return forward(ctx, deps, entry.target, 'tools/call', params);
    const args = ctx.request.params?.['arguments'];
    // The gateway reads the body, so it must hold agents to the headers they sent; upstream it
    // writes them afresh from the body it forwards (streamable-http "Custom Headers").
    const mismatch = ctx.httpHeaders === undefined ? undefined : paramHeaderMismatch(entry.paramHeaders, args, ctx.httpHeaders);
    if (mismatch !== undefined) throw new GatehouseError('HEADER_MISMATCH', mismatch, { id: ctx.request.id });
    return forward(ctx, deps, entry.target, 'tools/call', params, paramHeaderValues(entry.paramHeaders, args));
  },

  'prompts/get': async (ctx, view, deps) => {
    const name = stringParam(ctx, 'name');
    ctx.record.name = name;
    const entry = view.promptByName.get(name);
    if (entry === undefined) throw new GatehouseError('PROMPT_NOT_FOUND', `Unknown prompt: ${name}`, { id: ctx.request.id });
    const params = entry.upstreamName === name ? ctx.request.params : { ...ctx.request.params, name: entry.upstreamName };
    return forward(ctx, deps, entry.target, 'prompts/get', params);
  },

  'resources/read': async (ctx, view, deps) => {
    const uri = stringParam(ctx, 'uri');
    ctx.record.name = uri;
    return forward(ctx, deps, ownerOf(ctx, view, uri), 'resources/read', ctx.request.params);
  },

  'resources/subscribe': async (ctx, view, deps) => {
    const uri = stringParam(ctx, 'uri');
    const target = ownerOf(ctx, view, uri);
    ctx.record.name = uri;
    // Only the first subscriber of a URI subscribes upstream; later ones share it.
    if (deps.subscriptions.add(target, uri, ctx.session)) {
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

  'resources/unsubscribe': async (ctx, view, deps) => {
    const uri = stringParam(ctx, 'uri');
    const target = ownerOf(ctx, view, uri);
    ctx.record.name = uri;
    if (deps.subscriptions.remove(target, uri, ctx.session)) return forward(ctx, deps, target, 'resources/unsubscribe', ctx.request.params);
    ctx.record.target = target;
    return ok(ctx, {});
  },

  'completion/complete': async (ctx, view, deps) => {
    const ref = ctx.request.params?.['ref'];
    if (!isPlainObject(ref)) throw new GatehouseError('INVALID_PARAMS', 'params.ref must be an object', { id: ctx.request.id });
    if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') {
      const entry = view.promptByName.get(ref['name']);
      if (entry === undefined) throw new GatehouseError('PROMPT_NOT_FOUND', `Unknown prompt: ${ref['name']}`, { id: ctx.request.id });
      ctx.record.name = ref['name'];
      return forward(ctx, deps, entry.target, 'completion/complete', { ...ctx.request.params, ref: { ...ref, name: entry.upstreamName } });
    }
    if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
      ctx.record.name = ref['uri'];
      const target = view.templates.find((t) => t.definition['uriTemplate'] === ref['uri'])?.target ?? ownerOf(ctx, view, ref['uri']);
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
  if (target === undefined) throw new GatehouseError('RESOURCE_NOT_FOUND', `Resource not found: ${uri}`, { id: ctx.request.id, data: { uri } });
  return target;
}

/** Build the terminal dispatch stage for one snapshot. */
export function dispatchStage(deps: DispatchDeps): Stage {
  return {
    name: 'dispatch',
    async run(ctx) {
      const catalog = deps.catalog();
      const view = ctx.session.toolset === undefined ? catalog.all : catalog.toolsets.get(ctx.session.toolset);
      if (view === undefined) throw new GatehouseError('NOT_FOUND', `Unknown toolset: ${ctx.session.toolset}`);
      const method = ctx.request.method;
      const kind = LIST_METHODS[method];
      if (kind !== undefined) {
        // 2026-07-28 lists are cacheable results: the hints go into the precomputed page.
        const hints = ctx.session.era === 'modern' ? { ttlMs: deps.listTtlMs, cacheScope: 'private' } : undefined;
        return ok(ctx, listPage(view, kind, ctx.request.params, deps.pageSize, hints));
      }
      const handler = handlers[method];
      if (handler !== undefined) return handler(ctx, view, deps);
      throw new GatehouseError('METHOD_NOT_FOUND', `Method not found: ${method}`, { id: ctx.request.id });
    },
  };
}
