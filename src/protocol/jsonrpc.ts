/**
 * JSON-RPC 2.0 wire facts: message shapes, parsing and classification, with no I/O.
 *
 * The gateway routes messages; it does not model every MCP type. Params and results are
 * opaque JSON objects here, so unknown methods, `_meta` and content pass through untouched.
 */
import { GatehouseError } from './errors.ts';
import { lazyJsonObject, parseSpan, scanEnvelope, stringifyMessage } from './raw-json.ts';

export type JsonRpcId = string | number;
export type JsonObject = { [key: string]: unknown };

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: JsonObject;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: JsonObject;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResultResponse {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: JsonObject;
}

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** Limits applied while parsing untrusted bodies. */
export interface ParseLimits {
  /** Deepest allowed nesting of arrays and objects. */
  maxDepth: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = { maxDepth: 64 };

export function isRequest(m: JsonRpcMessage): m is JsonRpcRequest {
  return 'method' in m && 'id' in m;
}

export function isNotification(m: JsonRpcMessage): m is JsonRpcNotification {
  return 'method' in m && !('id' in m);
}

export function isResponse(m: JsonRpcMessage): m is JsonRpcResponse {
  return !('method' in m) && ('result' in m || 'error' in m);
}

export function isErrorResponse(m: JsonRpcMessage): m is JsonRpcErrorResponse {
  return !('method' in m) && 'error' in m;
}

/**
 * Parse a body into a JSON value, refusing text that is not JSON (PARSE_ERROR) and values
 * nested deeper than the limit (ARGUMENTS_TOO_DEEP), so that later recursive walks
 * (hashing, redaction, schema validation) cannot overflow the stack.
 */
export function parseJson(text: string, limits: ParseLimits = DEFAULT_PARSE_LIMITS): unknown {
  // The depth check scans raw text before JSON.parse builds anything: a 1 MB body of
  // '[[[[...' would otherwise be parsed fully first. Brackets inside strings are skipped.
  checkDepth(text, limits.maxDepth);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatehouseError('PARSE_ERROR', 'Body is not valid JSON');
  }
}

/**
 * Count bracket depth outside strings. String contents are skipped with indexOf to the next
 * quote, not walked character by character (337 µs against about 1 µs on a 100 KiB body).
 * Invalid JSON may miscount; JSON.parse refuses it right after.
 */
function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i = stringEnd(text, i);
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) {
        throw new GatehouseError('ARGUMENTS_TOO_DEEP', `JSON nesting exceeds ${maxDepth} levels`);
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
}

/** The index of the quote that closes the string opened at `open` (text.length when none does). */
function stringEnd(text: string, open: number): number {
  let from = open + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote === -1) return text.length;
    // Escaped when preceded by an odd run of backslashes. Each backslash is counted once
    // (runs end at the quote), so the scan stays linear.
    let backslashes = 0;
    for (let k = quote - 1; k > open && text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/**
 * Parse one message from an upstream (a body, an SSE event, a stdio line): one message or a
 * batch array, as parseJson + toMessage would, except that a result stays unparsed text
 * behind a lazy object (raw-json.ts) so it can be forwarded without re-serialization. The
 * same depth limit applies: upstream answers are less hostile than agent input, but a
 * lazily parsed member still reaches recursive walks, and tracking depth in the scan is free.
 */
export function parseMessage(text: string, limits: ParseLimits = DEFAULT_PARSE_LIMITS): JsonRpcMessage | JsonRpcMessage[] {
  const envelope = scanEnvelope(text, limits.maxDepth, 'result');
  // Batches, requests, notifications and errors are small and read whole; so is anything odd.
  if (envelope === undefined || envelope.inner === undefined || envelope.members.has('method') || envelope.members.has('__proto__')) {
    const value = JSON.parse(envelope?.text ?? text) as unknown;
    return Array.isArray(value) ? value.map((item) => toMessage(item)) : toMessage(value);
  }
  const value: JsonObject = {};
  for (const [key, span] of envelope.members) {
    value[key] = key === 'result' ? lazyJsonObject(envelope.text, span, envelope.inner) : parseSpan(envelope.text, span);
  }
  return toMessage(value);
}

/** Serialize a message for the wire; a lazy result goes out as the text it came in. */
export const serializeMessage: (message: JsonRpcMessage) => string = stringifyMessage;

function isId(v: unknown): v is JsonRpcId {
  return (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)));
}

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validate one parsed JSON value as a JSON-RPC message. Throws INVALID_REQUEST with the id
 * (when one could be read) so the error response can echo it.
 *
 * Strict reading of MCP: request ids must be strings or integers and never null
 * (basic/index "Requests"); a `null` id is an invalid request, not a notification.
 */
export function toMessage(value: unknown): JsonRpcMessage {
  if (!isPlainObject(value)) {
    throw new GatehouseError('INVALID_REQUEST', 'A JSON-RPC message must be an object');
  }
  const id = value['id'];
  const echoId = isId(id) ? id : null;
  if (value['jsonrpc'] !== '2.0') {
    throw new GatehouseError('INVALID_REQUEST', 'jsonrpc must be "2.0"', { id: echoId });
  }
  const method = value['method'];
  const params = value['params'];
  if (method !== undefined) {
    if (typeof method !== 'string' || method.length === 0) {
      throw new GatehouseError('INVALID_REQUEST', 'method must be a non-empty string', { id: echoId });
    }
    if (params !== undefined && !isPlainObject(params)) {
      throw new GatehouseError('INVALID_REQUEST', 'params must be an object', { id: echoId });
    }
    if ('id' in value && !isId(id)) {
      throw new GatehouseError('INVALID_REQUEST', 'id must be a string or a number, never null', { id: null });
    }
    return value as unknown as JsonRpcRequest | JsonRpcNotification;
  }
  if ('result' in value || 'error' in value) {
    if (!isId(id) && id !== null) {
      throw new GatehouseError('INVALID_REQUEST', 'response id must be a string or a number');
    }
    if ('result' in value && !isPlainObject(value['result'])) {
      throw new GatehouseError('INVALID_REQUEST', 'result must be an object', { id: echoId });
    }
    if ('error' in value) {
      const err = value['error'];
      if (!isPlainObject(err) || typeof err['code'] !== 'number' || typeof err['message'] !== 'string') {
        throw new GatehouseError('INVALID_REQUEST', 'error must have a numeric code and a message', { id: echoId });
      }
    }
    return value as unknown as JsonRpcResponse;
  }
  throw new GatehouseError('INVALID_REQUEST', 'message has neither method nor result/error', { id: echoId });
}

/** Build a result response. */
export function resultResponse(id: JsonRpcId, result: JsonObject): JsonRpcResultResponse {
  return { jsonrpc: '2.0', id, result };
}

/** Build an error response. */
export function errorResponse(id: JsonRpcId | null, error: JsonRpcErrorObject): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id, error };
}

/** Read `params._meta` when it is an object. */
export function metaOf(params: JsonObject | undefined): JsonObject | undefined {
  const meta = params?.['_meta'];
  return isPlainObject(meta) ? meta : undefined;
}

export { isPlainObject };
