/**
 * Streamable HTTP upstream transport (spec 2025-03-26 … 2025-11-25 and the stateless
 * 2026-07-28 revision). Every message is its own POST over one keep-alive undici Pool.
 *
 * Era is read per message: a message whose `params._meta` carries
 * `io.modelcontextprotocol/protocolVersion` is modern (2026-07-28): it gets MCP-Protocol-Version
 * from that field plus Mcp-Method / Mcp-Name, and never a session header. Everything else is
 * legacy: Mcp-Session-Id once the server assigned one, MCP-Protocol-Version once the caller set
 * it, a standalone GET stream for server-initiated messages, and resumption of broken POST
 * streams by GET + Last-Event-ID (2025-11-25 basic/transports "Resumability and Redelivery").
 */
import type { Pool } from 'undici';
import type { Readable } from 'node:stream';
import { systemClock, type Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainHeaderValue, modernRequestHeaders, modernVersionOf } from '../protocol/mcp-headers.ts';
import {
  isErrorResponse, isNotification, isRequest, isResponse,
  type JsonRpcId, type JsonRpcMessage, type JsonRpcRequest,
} from '../protocol/jsonrpc.ts';
import { NO_CREDENTIAL_HEADERS, credentialHeaders, requestWithCredential } from '../upstream-auth/authorized-request.ts';
import type { UpstreamCredential } from '../upstream-auth/upstream-credential.ts';
import { abortAll, ExchangeAbort } from './exchange-abort.ts';
import { callHandler, traceHeaders, type InboundContext, type SendOptions, type TransportHandlers, type TransportStats, type UpstreamTransport } from './transport.ts';
import {
  MAX_BODY_BYTES, decodeMessages, discardBody, followSseStream, headerValue, linkAbort, mediaTypeOf, newCursor,
  readBodyText, upstreamUnavailable,
  createUpstreamPool,
  lowerCaseHeaders,
} from './sse-stream.ts';

export interface StreamableHttpTransportOptions {
  /** The MCP endpoint. */
  url: string;
  /** Extra headers on every request (for example Authorization). */
  headers?: Record<string, string>;
  /**
   * The target's credential (third auth tier): its headers go on every request (POST, GET,
   * DELETE), over `headers`; a 401/403 asks its `challenge()` and retries once when renewed.
   */
  credential?: UpstreamCredential | undefined;
  /** Pool size: concurrent connections to the upstream. Default 16. */
  connections?: number;
  /** Longest wait for response headers, and longest silence inside a POST response body. Default 300 s. */
  requestTimeoutMs?: number;
  clock?: Clock;
  /** Open the legacy standalone GET stream once a session exists. Default true. */
  openStandaloneStream?: boolean;
  /** Consecutive failed resumptions of a broken POST stream before its request fails. Default 3. */
  maxResumeAttempts?: number;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const DELETE_TIMEOUT_MS = 2_000;
/** How long a request stream may stay open after its response before we drop it (some servers never close). */
const ANSWERED_STREAM_GRACE_MS = 2_000;
const ERROR_BODY_LIMIT = 64 * 1024;

class StreamableHttpTransport implements UpstreamTransport {
  readonly kind = 'streamable-http';
  readonly stats: TransportStats = { skippedLines: 0, restarts: 0, bytesIn: 0, bytesOut: 0 };

  private readonly path: string;
  private readonly pool: Pool;
  private readonly baseHeaders: Record<string, string>;
  private readonly credential: UpstreamCredential | undefined;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly wantsStandalone: boolean;
  private readonly maxResumeAttempts: number;
  /** Aborted by close(): every stream and timer hangs off it. */
  private readonly lifetime = new AbortController();
  /** POST exchanges in flight; close() aborts them. */
  private readonly inflight = new Set<ExchangeAbort>();
  private handlers: TransportHandlers | undefined;
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private standalone: AbortController | undefined;
  private standaloneUnsupported = false;
  private closing: Promise<void> | undefined;

  constructor(options: StreamableHttpTransportOptions) {
    const url = new URL(options.url);
    this.path = `${url.pathname}${url.search}`;
    this.pool = createUpstreamPool(url.origin, options.connections);
    this.baseHeaders = lowerCaseHeaders(options.headers);
    this.credential = options.credential;
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.wantsStandalone = options.openStandaloneStream ?? true;
    this.maxResumeAttempts = options.maxResumeAttempts ?? 3;
  }

  private get closed(): boolean {
    return this.closing !== undefined;
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.closed) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport is closed');
    if (this.handlers) throw new GatehouseError('INTERNAL', 'transport already started');
    this.handlers = handlers;
    // HTTP has nothing to dial up front; the caller learns the link is usable after start resolves.
    setImmediate(() => {
      if (!this.closed) this.notify((h) => h.onConnect());
    });
  }

  setProtocolVersion(version: string | undefined): void {
    this.protocolVersion = version;
  }

  /**
   * Send one message. For a request, resolves once its response was delivered through
   * onMessage (or the server answered 202); rejects when the exchange failed first.
   */
  async send(message: JsonRpcMessage, options: SendOptions = {}): Promise<void> {
    if (this.closed) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport is closed');
    if (!this.handlers) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport not started');
    const exchange = new ExchangeAbort(this.inflight, options.signal);
    return new Promise<void>((resolve, reject) => {
      // The exchange may outlive send(): a request stream is read to its end after the response
      // resolved it, so the connection returns to the pool cleanly.
      this.exchange(message, exchange, resolve, options.headers)
        .then(resolve, (err: unknown) => reject(this.failure(err, options.signal)))
        .finally(() => exchange.release());
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const session = this.sessionId;
    const reason = new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport closed');
    this.lifetime.abort(reason);
    abortAll(this.inflight, reason);
    try {
      if (session !== undefined) await this.deleteSession(session);
    } finally {
      await this.pool.destroy().catch(() => undefined);
    }
  }

  /** Best-effort DELETE so the server can free the session (2025-11-25 "Session Management" 5). */
  private async deleteSession(session: string): Promise<void> {
    const timeout = new AbortController();
    const timer = this.clock.setTimeout(() => timeout.abort(), DELETE_TIMEOUT_MS);
    try {
      // Best effort, so no challenge: a credential that cannot be had just means no DELETE.
      const pending = credentialHeaders(this.credential);
      const auth = pending instanceof Promise ? await pending : pending;
      const res = await this.pool.request({
        method: 'DELETE', path: this.path, headers: this.legacyHeaders(session, true, auth), signal: timeout.signal,
        headersTimeout: DELETE_TIMEOUT_MS, bodyTimeout: DELETE_TIMEOUT_MS,
      });
      await discardBody(res.body);
    } catch (err) {
      this.diagnostic(`session DELETE failed: ${upstreamUnavailable('DELETE', err).message}`);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  // ---- one POST exchange ----

  private async exchange(message: JsonRpcMessage, exchange: ExchangeAbort, answered: () => void, extra?: Readonly<Record<string, string>>): Promise<void> {
    const modern = modernVersionOf(message);
    const initialize = isRequest(message) && message.method === 'initialize';
    // A new initialize starts a new session: it must not carry the old id (2025-11-25 "Session Management" 4).
    const session = modern === undefined && !initialize ? this.sessionId : undefined;
    const body = JSON.stringify(message);
    const bytes = Buffer.byteLength(body);
    const res = await requestWithCredential(this.pool, this.credential, (auth) => {
      const headers = modern === undefined
        ? { ...this.legacyHeaders(session, !initialize, auth), ...traceHeaders(extra) }
        : modernRequestHeaders(auth === NO_CREDENTIAL_HEADERS ? this.baseHeaders : { ...this.baseHeaders, ...auth }, message, modern, extra);
      headers['content-type'] = 'application/json';
      headers['accept'] = 'application/json, text/event-stream';
      this.stats.bytesOut += bytes;
      return { method: 'POST', path: this.path, headers, body, signal: exchange, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs };
    });
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    if (initialize && ok) this.adoptSession(headerValue(res.headers, 'mcp-session-id'));
    if (!ok) return this.failedResponse(message, res.statusCode, res.body, session);
    const type = mediaTypeOf(res.headers);
    if (!isRequest(message) || res.statusCode === 202) {
      await discardBody(res.body);
      if (isNotification(message) && message.method === 'notifications/initialized') this.openStandalone();
      return;
    }
    if (type === 'application/json') {
      const text = await readBodyText(res.body, MAX_BODY_BYTES, (n) => { this.stats.bytesIn += n; });
      const replies = decodeMessages(text);
      for (const reply of replies) this.deliver(reply, { relatedRequestId: message.id });
      if (replies.some((reply) => isResponse(reply) && reply.id === message.id)) return;
      throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream JSON answer holds no response to the request');
    }
    if (type === 'text/event-stream') {
      return this.followRequestStream(message, res.body, exchange, answered, modern === undefined ? session : null);
    }
    await discardBody(res.body);
    throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream answered a request with an unexpected content type');
  }

  /** A non-2xx answer: session expiry, a JSON-RPC error to pass through, or a failure. */
  private async failedResponse(
    message: JsonRpcMessage, status: number, body: Readable, session: string | undefined,
  ): Promise<void> {
    const text = await readBodyText(body, ERROR_BODY_LIMIT, (n) => { this.stats.bytesIn += n; }).catch(() => '');
    if (status === 404 && session !== undefined) {
      this.expireSession(session);
      throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'upstream session expired', { data: { status } });
    }
    // Modern servers answer 400/404 with JSON-RPC errors (unsupported version, unknown method,
    // header mismatch); the caller needs them verbatim, for instance to detect the era.
    if (isRequest(message)) {
      const reply = errorReplyIn(text, message.id);
      if (reply) {
        this.deliver(reply, { relatedRequestId: message.id });
        return;
      }
    }
    this.diagnostic(`upstream answered HTTP ${status} to a POST`);
    throw new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream answered HTTP ${status}`, { data: { status } });
  }

  /**
   * Read a request's SSE stream, delivering every message with the request's id as context.
   * If it breaks before the response, resume it by GET + Last-Event-ID after the server's
   * `retry` (2025-11-25 "Sending Messages" 6). `session` is null for modern requests, which
   * are never resumed (2026-07-28: "Resumable SSE streams via Last-Event-ID are not supported").
   */
  private async followRequestStream(
    request: JsonRpcRequest, body: AsyncIterable<Uint8Array | string>, exchange: ExchangeAbort,
    onAnswered: () => void, session: string | undefined | null,
  ): Promise<void> {
    let answered = false;
    let cancelGrace = (): void => {};
    try {
      await followSseStream({
        clock: this.clock, signal: exchange.signal, cursor: newCursor(), body,
        resume: session === null ? 'never' : 'from-event-id', maxFailures: this.maxResumeAttempts,
        isDone: () => answered,
        onBytes: (n) => { this.stats.bytesIn += n; },
        reopen: (cursor) => this.openGet(session ?? undefined, cursor.lastEventId, exchange.signal, this.timeoutMs),
        onEvent: (event) => {
          if (event.type !== 'message' || event.data === '') return; // priming events carry no message
          for (const message of this.decodeEvent(event.data)) {
            if (isResponse(message) && message.id === request.id) answered = true;
            this.deliver(message, { relatedRequestId: request.id });
          }
          if (!answered) return;
          onAnswered();
          // Read on so the connection is reused, but do not hold it for a server that never ends the stream.
          cancelGrace();
          const timer = this.clock.setTimeout(() => exchange.abort(), ANSWERED_STREAM_GRACE_MS);
          cancelGrace = () => this.clock.clearTimeout(timer);
        },
      });
    } finally {
      cancelGrace();
    }
  }

  /**
   * GET the endpoint as an event stream. Returns the body, or undefined for a failure worth
   * retrying. Throws when retrying is pointless: 405 (no GET streams here) or session expiry.
   */
  private async openGet(
    session: string | undefined, lastEventId: string | undefined, signal: AbortSignal, bodyTimeout: number,
  ): Promise<AsyncIterable<Uint8Array | string> | undefined> {
    let res;
    try {
      res = await requestWithCredential(this.pool, this.credential, (auth) => {
        const headers = this.legacyHeaders(session, true, auth);
        headers['accept'] = 'text/event-stream';
        if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
        return { method: 'GET', path: this.path, headers, signal, headersTimeout: this.timeoutMs, bodyTimeout };
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // The credential's verdict (authorization required, credential unavailable) ends the stream: retrying cannot help.
      if (err instanceof GatehouseError && (err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' || err.code === 'UPSTREAM_CREDENTIAL_UNAVAILABLE')) throw err;
      this.diagnostic(`GET stream failed: ${upstreamUnavailable('GET', err).message}`);
      return undefined;
    }
    if (res.statusCode >= 200 && res.statusCode < 300 && mediaTypeOf(res.headers) === 'text/event-stream') return res.body;
    await discardBody(res.body);
    if (res.statusCode === 405) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'upstream offers no GET stream', { data: { status: 405 } });
    if (res.statusCode === 404 && session !== undefined) {
      this.expireSession(session);
      throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'upstream session expired', { data: { status: 404 } });
    }
    this.diagnostic(`GET stream answered HTTP ${res.statusCode}`);
    return undefined;
  }

  // ---- the standalone GET stream (legacy) ----

  /** Open the standalone stream once the session is initialized, as the SDK client does. */
  private openStandalone(): void {
    const session = this.sessionId;
    if (!this.wantsStandalone || this.standaloneUnsupported || session === undefined || this.standalone || this.closed) return;
    const controller = new AbortController();
    const unlink = linkAbort(controller, [this.lifetime.signal]);
    this.standalone = controller;
    void this.runStandalone(session, controller.signal)
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        if (err instanceof GatehouseError && err.details.data?.['status'] === 405) this.standaloneUnsupported = true;
        this.diagnostic(`standalone stream stopped: ${upstreamUnavailable('GET', err).message}`);
      })
      .finally(() => {
        unlink();
        if (this.standalone === controller) this.standalone = undefined;
      });
  }

  /** Keep the standalone stream open for this session, reconnecting with Last-Event-ID. */
  private runStandalone(session: string, signal: AbortSignal): Promise<void> {
    return followSseStream({
      clock: this.clock, signal, cursor: newCursor(),
      resume: 'always', maxFailures: Infinity,
      // A new session (re-initialize, expiry) gets its own stream.
      isDone: () => signal.aborted || this.sessionId !== session,
      // No idle limit: the standalone stream may be quiet for hours.
      reopen: (cursor) => this.openGet(session, cursor.lastEventId, signal, 0),
      onBytes: (n) => { this.stats.bytesIn += n; },
      onReconnect: () => { this.stats.restarts++; },
      onDrop: (err) => this.diagnostic(`standalone stream dropped: ${upstreamUnavailable('GET', err).message}`),
      onEvent: (event) => {
        if (event.type !== 'message' || event.data === '') return;
        // No relatedRequestId: these belong to no request of ours (resumed POST streams are
        // read by their own exchange, not here).
        for (const message of this.decodeEvent(event.data)) this.deliver(message, {});
      },
    });
  }

  // ---- sessions ----

  private adoptSession(id: string | undefined): void {
    if (id === this.sessionId) return;
    this.stopStandalone();
    this.sessionId = id;
  }

  /** Stop the standalone stream now; cleared at once so the next session can open its own. */
  private stopStandalone(): void {
    this.standalone?.abort();
    this.standalone = undefined;
  }

  /**
   * The server answered 404 to a request carrying `session`: the session is gone and the caller
   * must initialize again (2025-11-25 "Session Management" 4). Concurrent 404s expire it once.
   */
  private expireSession(session: string): void {
    if (this.closed || this.sessionId !== session) return;
    this.sessionId = undefined;
    this.protocolVersion = undefined;
    this.stopStandalone();
    const error = new GatehouseError('UPSTREAM_UNAVAILABLE', 'upstream session expired');
    this.notify((h) => h.onDisconnect(error, true));
    if (!this.closed) this.notify((h) => h.onConnect());
  }

  // ---- headers ----

  /** Configured headers, then the credential's (it wins over a configured Authorization), then the session's. */
  private legacyHeaders(session: string | undefined, withVersion: boolean, auth: Readonly<Record<string, string>> = NO_CREDENTIAL_HEADERS): Record<string, string> {
    const headers = auth === NO_CREDENTIAL_HEADERS ? { ...this.baseHeaders } : { ...this.baseHeaders, ...auth };
    if (session !== undefined) headers['mcp-session-id'] = session;
    if (withVersion && this.protocolVersion !== undefined && isPlainHeaderValue(this.protocolVersion)) {
      headers['mcp-protocol-version'] = this.protocolVersion;
    }
    return headers;
  }

  // ---- delivery ----

  private decodeEvent(data: string): JsonRpcMessage[] {
    try {
      return decodeMessages(data);
    } catch {
      this.diagnostic('skipped an SSE event that is not JSON-RPC');
      return [];
    }
  }

  private deliver(message: JsonRpcMessage, context: InboundContext): void {
    if (!this.closed) this.notify((h) => h.onMessage(message, context));
  }

  private diagnostic(line: string): void {
    if (!this.closed) this.notify((h) => h.onDiagnostic?.(line));
  }

  private notify(call: (handlers: TransportHandlers) => void): void {
    if (this.handlers) callHandler(this.handlers, call);
  }

  /** Map an exchange failure to the error send() rejects with. */
  private failure(err: unknown, callerSignal: AbortSignal | undefined): GatehouseError {
    if (callerSignal?.aborted) return new GatehouseError('REQUEST_CANCELLED', 'request aborted by the caller', { cause: err });
    if (this.lifetime.signal.aborted) return new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport closed', { cause: err });
    return upstreamUnavailable('upstream request failed', err);
  }
}

/** A JSON-RPC error response for `id` inside an error body, if that is what the body is. */
function errorReplyIn(text: string, id: JsonRpcId): JsonRpcMessage | undefined {
  if (text === '') return undefined;
  try {
    const [only, ...rest] = decodeMessages(text);
    return only && rest.length === 0 && isErrorResponse(only) && only.id === id ? only : undefined;
  } catch {
    return undefined;
  }
}

/** Create a Streamable HTTP transport for one upstream MCP endpoint. */
export function createStreamableHttpTransport(options: StreamableHttpTransportOptions): UpstreamTransport {
  return new StreamableHttpTransport(options);
}
