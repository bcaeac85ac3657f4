/**
 * The one error model: a single error class with string codes, and one table that maps each
 * code to its JSON-RPC code, HTTP status and what an agent is told. `docs/errors.md` documents
 * every row; a test fails when a code is missing there.
 */
import { randomUUID } from 'node:crypto';

interface ErrorSpec {
  /** JSON-RPC error code sent in per-call failures. */
  rpc: number;
  /** The code for 2026-07-28 agents, where that revision moved it. */
  modernRpc?: number;
  /** HTTP status when the failure answers at the HTTP level (or for the POST that carried it). */
  http: number;
  /** Whether the failure is answered as bare HTTP rather than as a JSON-RPC error. */
  httpLevel: boolean;
  /** Stable `data.type` string agents can switch on. */
  type: string;
  /** Whether the detailed message may be shown to the agent; otherwise a fixed text is. */
  exposeMessage: boolean;
  /** Fixed public text when the message is not exposed. */
  publicMessage: string;
}

export const ERROR_TABLE = {
  PARSE_ERROR: { rpc: -32700, http: 400, httpLevel: false, type: 'parse_error', exposeMessage: true, publicMessage: 'Parse error' },
  INVALID_REQUEST: { rpc: -32600, http: 400, httpLevel: false, type: 'invalid_request', exposeMessage: true, publicMessage: 'Invalid request' },
  BATCH_NOT_SUPPORTED: { rpc: -32600, http: 400, httpLevel: false, type: 'batch_not_supported', exposeMessage: true, publicMessage: 'JSON-RPC batches are not supported by this protocol version' },
  METHOD_NOT_FOUND: { rpc: -32601, http: 404, httpLevel: false, type: 'method_not_found', exposeMessage: true, publicMessage: 'Method not found' },
  INVALID_PARAMS: { rpc: -32602, http: 400, httpLevel: false, type: 'invalid_params', exposeMessage: true, publicMessage: 'Invalid params' },
  ARGUMENTS_TOO_DEEP: { rpc: -32600, http: 400, httpLevel: false, type: 'arguments_too_deep', exposeMessage: true, publicMessage: 'Message nesting too deep' },
  TOOL_NOT_FOUND: { rpc: -32602, http: 200, httpLevel: false, type: 'tool_not_found', exposeMessage: true, publicMessage: 'Unknown tool' },
  PROMPT_NOT_FOUND: { rpc: -32602, http: 200, httpLevel: false, type: 'prompt_not_found', exposeMessage: true, publicMessage: 'Unknown prompt' },
  TASK_NOT_FOUND: { rpc: -32602, http: 200, httpLevel: false, type: 'task_not_found', exposeMessage: true, publicMessage: 'Unknown task' },
  RESOURCE_NOT_FOUND: { rpc: -32002, modernRpc: -32602, http: 200, httpLevel: false, type: 'resource_not_found', exposeMessage: true, publicMessage: 'Resource not found' },
  HEADER_MISMATCH: { rpc: -32020, http: 400, httpLevel: false, type: 'header_mismatch', exposeMessage: true, publicMessage: 'Header mismatch' },
  MISSING_CLIENT_CAPABILITY: { rpc: -32021, http: 400, httpLevel: false, type: 'missing_client_capability', exposeMessage: true, publicMessage: 'Missing required client capability' },
  UNSUPPORTED_PROTOCOL_VERSION: { rpc: -32022, http: 400, httpLevel: false, type: 'unsupported_protocol_version', exposeMessage: true, publicMessage: 'Unsupported protocol version' },
  // A visible tool called with arguments outside every grant naming it (names the argument and
  // the kind of constraint, never the value or the pattern). A tool the caller cannot see
  // answers TOOL_NOT_FOUND instead.
  ARGUMENT_NOT_PERMITTED: { rpc: -32602, http: 200, httpLevel: false, type: 'argument_not_permitted', exposeMessage: true, publicMessage: 'Argument not permitted' },
  INVALID_INPUT_RESPONSE: { rpc: -32602, http: 200, httpLevel: false, type: 'invalid_input_response', exposeMessage: true, publicMessage: 'The requestState is unknown, expired or belongs to another request' },
  SESSION_REQUIRED: { rpc: -32600, http: 400, httpLevel: true, type: 'session_required', exposeMessage: true, publicMessage: 'Mcp-Session-Id header is required' },
  SESSION_NOT_FOUND: { rpc: -32001, http: 404, httpLevel: true, type: 'session_not_found', exposeMessage: true, publicMessage: 'Session not found' },
  BODY_TOO_LARGE: { rpc: -32600, http: 413, httpLevel: true, type: 'body_too_large', exposeMessage: true, publicMessage: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { rpc: -32600, http: 415, httpLevel: true, type: 'unsupported_media_type', exposeMessage: true, publicMessage: 'Content-Type must be application/json' },
  NOT_ACCEPTABLE: { rpc: -32600, http: 406, httpLevel: true, type: 'not_acceptable', exposeMessage: true, publicMessage: 'Accept must list application/json and text/event-stream' },
  FORBIDDEN_ORIGIN: { rpc: -32600, http: 403, httpLevel: true, type: 'forbidden_origin', exposeMessage: true, publicMessage: 'Origin or Host not allowed' },
  // Authentication (RFC 6750 §3.1): answered as HTTP with a WWW-Authenticate challenge; the
  // message never says which check failed beyond the RFC's error code.
  UNAUTHENTICATED: { rpc: -32600, http: 401, httpLevel: true, type: 'unauthenticated', exposeMessage: true, publicMessage: 'Authentication required' },
  INVALID_TOKEN: { rpc: -32600, http: 401, httpLevel: true, type: 'invalid_token', exposeMessage: false, publicMessage: 'The access token is invalid, expired, revoked or not meant for this resource' },
  INSUFFICIENT_SCOPE: { rpc: -32600, http: 403, httpLevel: true, type: 'insufficient_scope', exposeMessage: true, publicMessage: 'The access token lacks a scope this call needs' },
  TOKEN_IN_QUERY: { rpc: -32600, http: 400, httpLevel: true, type: 'token_in_query', exposeMessage: true, publicMessage: 'Access tokens are accepted in the Authorization header only' },
  AUTH_UNAVAILABLE: { rpc: -32603, http: 503, httpLevel: true, type: 'auth_unavailable', exposeMessage: false, publicMessage: 'The credential could not be checked' },
  METHOD_NOT_ALLOWED: { rpc: -32600, http: 405, httpLevel: true, type: 'method_not_allowed', exposeMessage: true, publicMessage: 'HTTP method not allowed' },
  NOT_FOUND: { rpc: -32600, http: 404, httpLevel: true, type: 'not_found', exposeMessage: true, publicMessage: 'Not found' },
  UPSTREAM_UNAVAILABLE: { rpc: -32603, http: 502, httpLevel: false, type: 'upstream_unavailable', exposeMessage: true, publicMessage: 'Upstream server unavailable' },
  UPSTREAM_TIMEOUT: { rpc: -32603, http: 504, httpLevel: false, type: 'upstream_timeout', exposeMessage: true, publicMessage: 'Upstream server timed out' },
  UPSTREAM_PROTOCOL_ERROR: { rpc: -32603, http: 502, httpLevel: false, type: 'upstream_protocol_error', exposeMessage: true, publicMessage: 'Upstream server sent an invalid message' },
  // The third auth tier. A user must authorize (or re-authorize) the gateway at the upstream:
  // 2025-11-25 agents get -32042 with a URL elicitation to the gateway's connect page in
  // data.elicitations; 2026-07-28 agents get the same elicitation as an InputRequiredResult.
  UPSTREAM_AUTHORIZATION_REQUIRED: { rpc: -32042, http: 200, httpLevel: false, type: 'upstream_authorization_required', exposeMessage: true, publicMessage: 'Authorization at the upstream server is required' },
  // The gateway's own credential for the upstream cannot be had (a secret missing, client
  // credentials refused, the vault unable to decrypt): an operator must act; no detail leaks.
  UPSTREAM_CREDENTIAL_UNAVAILABLE: { rpc: -32603, http: 502, httpLevel: false, type: 'upstream_credential_unavailable', exposeMessage: false, publicMessage: "The gateway's credential for this upstream server is unavailable; an operator must fix it" },
  REQUEST_CANCELLED: { rpc: -32800, http: 200, httpLevel: false, type: 'request_cancelled', exposeMessage: true, publicMessage: 'Request cancelled' },
  AUDIT_UNAVAILABLE: { rpc: -32603, http: 503, httpLevel: false, type: 'audit_unavailable', exposeMessage: true, publicMessage: 'The audit store is unavailable' },
  STORE_VERSION_TOO_NEW: { rpc: -32603, http: 500, httpLevel: false, type: 'store_version_too_new', exposeMessage: false, publicMessage: 'The storage schema is newer than this gateway' },
  SHUTTING_DOWN: { rpc: -32603, http: 503, httpLevel: false, type: 'shutting_down', exposeMessage: true, publicMessage: 'Gateway is shutting down' },
  CONFIG_INVALID: { rpc: -32603, http: 500, httpLevel: false, type: 'config_invalid', exposeMessage: true, publicMessage: 'Configuration is invalid' },
  INTERNAL: { rpc: -32603, http: 500, httpLevel: false, type: 'internal', exposeMessage: false, publicMessage: 'Internal gateway error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface ErrorDetails {
  /** JSON-RPC id to echo, when the failing message had one. */
  id?: string | number | null;
  /** Extra public fields merged into `error.data` (versions involved, supported list). */
  data?: Record<string, unknown>;
  /** Extra HTTP headers (Allow on 405). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** The gateway's single error class. */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  /** Correlation id, set for INTERNAL so operators can find the logged cause. */
  readonly correlationId: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'GatehouseError';
    this.code = code;
    this.details = details;
    this.correlationId = code === 'INTERNAL' ? randomUUID() : undefined;
  }

  get spec(): ErrorSpec {
    return ERROR_TABLE[this.code];
  }

  /** The JSON-RPC error object an agent of `era` sees. Never carries a stack or a cause. */
  toRpcError(era: 'modern' | 'legacy' = 'legacy'): { code: number; message: string; data: Record<string, unknown> } {
    const spec: ErrorSpec = this.spec;
    const data: Record<string, unknown> = { type: spec.type, ...this.details.data };
    if (this.correlationId) data['correlationId'] = this.correlationId;
    const code = era === 'modern' && spec.modernRpc !== undefined ? spec.modernRpc : spec.rpc;
    return { code, message: spec.exposeMessage ? this.message : spec.publicMessage, data };
  }
}

/**
 * Map anything thrown to a GatehouseError. A broad catch lands here: unknown failures become
 * INTERNAL with a correlation id, never a client-fault code, and their text is not exposed.
 */
export function toGatehouseError(err: unknown): GatehouseError {
  if (err instanceof GatehouseError) return err;
  return new GatehouseError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}
