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
import { LOG_LEVELS, type LogLevel } from './session.ts';

/** The per-request facts a modern request declares. */
export interface ModernDeclaration {
  protocolVersion: string;
  clientCapabilities: JsonObject;
  clientInfo: JsonObject | undefined;
  logLevel: LogLevel | undefined;
}

const NAMED_METHODS: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Decode the `=?base64?…?=` sentinel form of a mirrored header value. */
export function decodeHeaderValue(value: string): string {
  if (value.startsWith('=?base64?') && value.endsWith('?=')) {
    return Buffer.from(value.slice(9, -2), 'base64').toString('utf8');
  }
  return value;
}

/** Whether a request is meant as a 2026-07-28 request. */
export function isModernRequest(headers: IncomingHttpHeaders, body: JsonRpcRequest | undefined): boolean {
  if (header(headers, 'mcp-protocol-version') === MODERN_VERSION) return true;
  return metaOf(body?.params)?.[META_PROTOCOL_VERSION] !== undefined;
}

/** Validate a modern request; throws the spec's typed error (all answer 400). */
export function validateModernRequest(headers: IncomingHttpHeaders, request: JsonRpcRequest): ModernDeclaration {
  const id = request.id;
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
  const nameField = NAMED_METHODS[request.method];
  if (nameField !== undefined) {
    const raw = header(headers, 'mcp-name');
    if (raw === undefined) throw new GatehouseError('HEADER_MISMATCH', 'Mcp-Name header is required', { id });
    const bodyName = request.params?.[nameField];
    if (decodeHeaderValue(raw) !== bodyName) {
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
