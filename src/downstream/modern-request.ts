/**
 * 2026-07-28 request validation (streamable-http "Server Validation", basic/index `_meta`):
 * the mirrored headers must match the body, the per-request metadata must be present, and the
 * version must be one the gateway serves. Pure: no I/O.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatehouseError } from '../protocol/errors.ts';
import {
  MODERN_VERSION,
  META_CLIENT_CAPABILITIES,
  META_CLIENT_INFO,
  META_LOG_LEVEL,
  META_PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
} from '../protocol/eras.ts';
import { isPlainObject, metaOf, type JsonObject, type JsonRpcRequest } from '../protocol/jsonrpc.ts';
import { decodeHeaderValueStrict, mcpNameField } from '../protocol/mcp-headers.ts';
import { withAddedMembers } from '../protocol/raw-json.ts';
import { LOG_LEVELS, type LogLevel } from './session.ts';

/** The per-request facts a modern request declares. */
export interface ModernDeclaration {
  protocolVersion: string;
  clientCapabilities: JsonObject;
  clientInfo: JsonObject | undefined;
  logLevel: LogLevel | undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Whether a request is meant as a 2026-07-28 request. */
export function isModernRequest(headers: IncomingHttpHeaders, body: JsonRpcRequest | undefined): boolean {
  if (header(headers, 'mcp-protocol-version') === MODERN_VERSION) return true;
  return metaOf(body?.params)?.[META_PROTOCOL_VERSION] !== undefined;
}

/**
 * Methods of the legacy eras that 2026-07-28 removed (changelog items 2, 4 and 5). A modern
 * request for one is an unknown method, answered before any other check so the agent learns
 * the method is gone rather than that its `_meta` is incomplete.
 */
const REMOVED_IN_MODERN = new Set(['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'notifications/initialized']);

/** Results the 2026-07-28 `CacheableResult` applies to, and so must carry `ttlMs` and `cacheScope`. */
const CACHEABLE = new Set(['tools/list', 'prompts/list', 'resources/list', 'resources/read', 'resources/templates/list', 'server/discover']);

/**
 * Give a result the fields 2026-07-28 requires that a legacy upstream does not send: `resultType`
 * on every result, and cache hints on cacheable ones. A forwarded `resources/read` gets
 * `ttlMs: 0` and `private` scope: the gateway cannot know how fresh an upstream's content is.
 */
export function shapeModernResult(method: string, result: JsonObject): JsonObject {
  const needsType = result['resultType'] === undefined;
  const needsCache = CACHEABLE.has(method) && (result['ttlMs'] === undefined || result['cacheScope'] === undefined);
  if (!needsType && !needsCache) return result;
  // An upstream result still in its raw text gets the members spliced in, not re-serialized.
  const added: JsonObject = {};
  if (needsType) added['resultType'] = 'complete';
  if (needsCache) {
    if (result['ttlMs'] == null) added['ttlMs'] = 0;
    if (result['cacheScope'] == null) added['cacheScope'] = 'private';
  }
  const spliced = withAddedMembers(result, added);
  if (spliced !== undefined) return spliced;
  const shaped: JsonObject = { ...result };
  if (needsType) shaped['resultType'] = 'complete';
  if (needsCache) {
    shaped['ttlMs'] ??= 0;
    shaped['cacheScope'] ??= 'private';
  }
  return shaped;
}

/** Validate a modern request; throws the spec's typed error (all answer 400). */
export function validateModernRequest(headers: IncomingHttpHeaders, request: JsonRpcRequest): ModernDeclaration {
  const id = request.id;
  if (REMOVED_IN_MODERN.has(request.method)) {
    throw new GatehouseError('METHOD_NOT_FOUND', `${request.method} is not part of ${MODERN_VERSION}`, { id });
  }
  const meta = metaOf(request.params);
  const bodyVersion = meta?.[META_PROTOCOL_VERSION];
  const headerVersion = header(headers, 'mcp-protocol-version');
  if (headerVersion === undefined) throw new GatehouseError('HEADER_MISMATCH', 'MCP-Protocol-Version header is required', { id });
  if (typeof bodyVersion !== 'string') {
    throw new GatehouseError('INVALID_PARAMS', `params._meta["${META_PROTOCOL_VERSION}"] is required`, { id });
  }
  if (bodyVersion !== headerVersion) {
    throw new GatehouseError('HEADER_MISMATCH', `MCP-Protocol-Version header '${headerVersion}' does not match body '${bodyVersion}'`, { id });
  }
  if (bodyVersion !== MODERN_VERSION) {
    throw new GatehouseError('UNSUPPORTED_PROTOCOL_VERSION', 'Unsupported protocol version', {
      id,
      data: { supported: [...SUPPORTED_VERSIONS], requested: bodyVersion },
    });
  }
  const method = header(headers, 'mcp-method');
  if (method === undefined) throw new GatehouseError('HEADER_MISMATCH', 'Mcp-Method header is required', { id });
  if (method !== request.method) {
    throw new GatehouseError('HEADER_MISMATCH', `Mcp-Method header '${method}' does not match body '${request.method}'`, { id });
  }
  const nameField = mcpNameField(request.method);
  if (nameField !== undefined) {
    const raw = header(headers, 'mcp-name');
    if (raw === undefined) throw new GatehouseError('HEADER_MISMATCH', 'Mcp-Name header is required', { id });
    const bodyName = request.params?.[nameField];
    if (decodeHeaderValueStrict(raw) !== bodyName) {
      throw new GatehouseError('HEADER_MISMATCH', `Mcp-Name header does not match params.${nameField}`, { id });
    }
  }
  const capabilities = meta?.[META_CLIENT_CAPABILITIES];
  if (!isPlainObject(capabilities)) {
    throw new GatehouseError('INVALID_PARAMS', `params._meta["${META_CLIENT_CAPABILITIES}"] is required`, { id });
  }
  const info = meta?.[META_CLIENT_INFO];
  const level = meta?.[META_LOG_LEVEL];
  if (level !== undefined && !LOG_LEVELS.includes(level as LogLevel)) {
    throw new GatehouseError('INVALID_PARAMS', `params._meta["${META_LOG_LEVEL}"] is not a log level`, { id });
  }
  return {
    protocolVersion: bodyVersion,
    clientCapabilities: capabilities,
    clientInfo: isPlainObject(info) ? info : undefined,
    logLevel: level as LogLevel | undefined,
  };
}
