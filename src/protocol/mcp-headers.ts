/**
 * The 2026-07-28 Streamable HTTP request metadata headers (streamable-http "Request
 * Metadata"): which body field each mirrors, and the value encoding. Shared by the upstream
 * transport (which writes them) and the downstream validation (which checks them).
 */
import { META_PROTOCOL_VERSION } from './eras.ts';
import { metaOf, type JsonRpcMessage } from './jsonrpc.ts';

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';

/**
 * The params field `Mcp-Name` mirrors for a method, if it has one. The tasks extension
 * (SEP-2663 "Routing Headers") adds `taskId` for its three methods.
 */
export function mcpNameField(method: string): 'name' | 'uri' | 'taskId' | undefined {
  switch (method) {
    case 'tools/call':
    case 'prompts/get':
      return 'name';
    case 'resources/read':
      return 'uri';
    case 'tasks/get':
    case 'tasks/update':
    case 'tasks/cancel':
      return 'taskId';
    default:
      return undefined;
  }
}

/** The value mirrored into `Mcp-Name`: the tool or prompt name, or the resource URI. */
export function mcpNameOf(message: JsonRpcMessage): string | undefined {
  if (!('method' in message)) return undefined;
  const field = mcpNameField(message.method);
  const value = field === undefined ? undefined : message.params?.[field];
  return typeof value === 'string' ? value : undefined;
}

/** The modern-era protocol version a message carries in `_meta`, if any. */
export function modernVersionOf(message: JsonRpcMessage): string | undefined {
  if (!('method' in message)) return undefined;
  const version = metaOf(message.params)?.[META_PROTOCOL_VERSION];
  return typeof version === 'string' ? version : undefined;
}

/** True when `value` can travel as a header value unchanged: visible ASCII and inner spaces only. */
export function isPlainHeaderValue(value: string): boolean {
  return /^[\x20-\x7e]*$/.test(value) && !value.startsWith(' ') && !value.endsWith(' ');
}

function looksEncoded(value: string): boolean {
  return value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX);
}

/**
 * Encode a value for Mcp-Name / Mcp-Param-* ("Value Encoding"): Base64 of the UTF-8 bytes
 * inside `=?base64?…?=` when it is not plain visible ASCII, has leading or trailing
 * whitespace, or itself looks like the sentinel.
 */
export function encodeHeaderValue(value: string): string {
  if (isPlainHeaderValue(value) && !looksEncoded(value)) return value;
  return `${SENTINEL_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${SENTINEL_SUFFIX}`;
}

/** RFC 9110 field-value characters: visible ASCII, space and horizontal tab. */
export function isHeaderFieldValue(value: string): boolean {
  return /^[\x20-\x7e\t]*$/.test(value);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decode the sentinel form strictly, for validation: padding, alphabet and UTF-8 must all be
 * right ("Servers MUST reject ... invalid Base64"). Undefined when they are not; a plain
 * value is returned as it is.
 */
export function decodeHeaderValueStrict(value: string): string | undefined {
  if (!looksEncoded(value)) return value;
  const body = value.slice(SENTINEL_PREFIX.length, -SENTINEL_SUFFIX.length);
  if (!BASE64.test(body)) return undefined;
  try {
    return UTF8.decode(Buffer.from(body, 'base64'));
  } catch {
    return undefined;
  }
}

/**
 * The headers of a 2026-07-28 request ("Request Metadata"): `base`, then `extra` (Mcp-Param-*,
 * traceparent), then the body's version, method and name mirrored. Unrepresentable values are
 * left out rather than mangled: the server then rejects the request with HeaderMismatch,
 * which reaches the caller as a JSON-RPC error.
 */
export function modernRequestHeaders(
  base: Readonly<Record<string, string>>,
  message: JsonRpcMessage,
  version: string,
  extra: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const headers = { ...base };
  if (extra !== undefined) for (const [name, value] of Object.entries(extra)) headers[name.toLowerCase()] = value;
  if (isPlainHeaderValue(version)) headers['mcp-protocol-version'] = version;
  if ('method' in message && isPlainHeaderValue(message.method)) headers['mcp-method'] = message.method;
  const name = mcpNameOf(message);
  if (name !== undefined) headers['mcp-name'] = encodeHeaderValue(name);
  return headers;
}
