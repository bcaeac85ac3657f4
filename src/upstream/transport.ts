/**
 * The one interface every upstream transport implements (stdio, legacy HTTP+SSE,
 * Streamable HTTP). A transport moves JSON-RPC messages and nothing else: it knows
 * framing, sessions and reconnection, but not ids, pending calls or MCP semantics.
 * `UpstreamConnection` sits on top and owns those.
 */
import type { JsonRpcId, JsonRpcMessage } from '../protocol/jsonrpc.ts';

/** Where an inbound message came from, as far as the transport can tell. */
export interface InboundContext {
  /**
   * The upstream-side id of the request whose response stream carried this message
   * (Streamable HTTP POST streams). Undefined when the transport cannot tell (stdio,
   * the standalone GET stream, legacy SSE).
   */
  relatedRequestId?: JsonRpcId;
}

export interface SendOptions {
  /** Aborts an in-flight HTTP exchange for this message (cancellation, timeout). */
  signal?: AbortSignal;
  /**
   * For a response the gateway sends upstream (answer to a server→client request):
   * the upstream request id the server's original request arrived under.
   */
  relatedRequestId?: JsonRpcId;
  /**
   * HTTP transports, 2026-07-28 requests: extra headers derived from the body that the
   * transport cannot know on its own (`Mcp-Param-*` from the tool's `x-mcp-header`
   * parameters). The W3C trace-context headers among them go on every HTTP request, whatever
   * the era (see traceHeaders). Other transports ignore them.
   */
  headers?: Readonly<Record<string, string>>;
}

/** The W3C trace-context headers (`traceparent`, `tracestate`) among a request's extra headers. */
export function traceHeaders(extra: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const parent = extra?.['traceparent'];
  if (parent === undefined) return out;
  out['traceparent'] = parent;
  const state = extra?.['tracestate'];
  if (state !== undefined) out['tracestate'] = state;
  return out;
}

/** Counters a transport keeps for health and telemetry. */
export interface TransportStats {
  /** stdio: stdout lines that were not JSON-RPC and were skipped. */
  skippedLines: number;
  /** stdio: child restarts since start. HTTP: reconnects of the standalone stream. */
  restarts: number;
  bytesIn: number;
  bytesOut: number;
}

export interface TransportHandlers {
  /** A message arrived from the upstream server. */
  onMessage(message: JsonRpcMessage, context: InboundContext): void;
  /**
   * The transport lost its link (child exited, HTTP session gone). Pending requests must be
   * failed by the caller. `willRestart` says whether the transport reconnects on its own.
   */
  onDisconnect(error: Error, willRestart: boolean): void;
  /** The link is (again) up; the caller must redo the MCP handshake. */
  onConnect(): void;
  /** A diagnostic line (stdio stderr, HTTP stream error) for the log. */
  onDiagnostic?(line: string): void;
}

export interface UpstreamTransport {
  readonly kind: 'stdio' | 'sse' | 'streamable-http';
  readonly stats: TransportStats;
  /** Start the link; resolves once messages can be sent. */
  start(handlers: TransportHandlers): Promise<void>;
  /** Send one message. Rejects when the link is down or the body cannot be delivered. */
  send(message: JsonRpcMessage, options?: SendOptions): Promise<void>;
  /**
   * HTTP transports: set after a legacy `initialize` so later requests carry the session id
   * and `MCP-Protocol-Version` header. Modern (stateless) requests pass `undefined`.
   */
  setProtocolVersion?(version: string | undefined): void;
  /** Stop for good: no restart, children killed, sockets closed. Idempotent. */
  close(): Promise<void>;
}

/**
 * Call a caller's handler from an I/O callback. A throw there would crash the gateway or
 * break the stream being read, so it is reported as a diagnostic instead.
 */
export function callHandler(handlers: TransportHandlers, call: (handlers: TransportHandlers) => void): void {
  try {
    call(handlers);
  } catch (err) {
    try {
      handlers.onDiagnostic?.(`transport handler threw: ${err instanceof Error ? err.message : String(err)}`);
    } catch {
      // Nothing left to report to.
    }
  }
}
