/**
 * Legacy HTTP+SSE upstream transport (spec 2024-11-05 basic/transports "HTTP with SSE"):
 * one long GET event stream carries every server message; its first `endpoint` event names
 * the URL the client POSTs its messages to. A dropped stream means a new GET, a new endpoint
 * and so a new server session, which is why the caller is told to handshake again.
 */
import type { Pool } from 'undici';
import { systemClock, type Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { requestWithCredential } from '../upstream-auth/authorized-request.ts';
import type { UpstreamCredential } from '../upstream-auth/upstream-credential.ts';
import { abortAll, ExchangeAbort } from './exchange-abort.ts';
import { callHandler, traceHeaders, type SendOptions, type TransportHandlers, type TransportStats, type UpstreamTransport } from './transport.ts';
import {
  backoffMs, decodeMessages, discardBody, linkAbort, mediaTypeOf, newCursor, readSseBody, upstreamUnavailable, waitFor,
  type SseEvent,
  createUpstreamPool,
  lowerCaseHeaders,
} from './sse-stream.ts';

export interface SseTransportOptions {
  /** The SSE URL (the GET endpoint, often `/sse`). */
  url: string;
  /** Extra headers on every request (for example Authorization). */
  headers?: Record<string, string>;
  /** The target's credential: its headers on the GET stream and every POST, over `headers`; 401/403 challenge it. */
  credential?: UpstreamCredential | undefined;
  clock?: Clock;
  /** Pool size; the event stream holds one connection for itself. Default 16. */
  connections?: number;
  /** Longest wait for response headers, for the `endpoint` event, and for a POST to be answered. Default 30 s. */
  requestTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

class SseTransport implements UpstreamTransport {
  readonly kind = 'sse';
  readonly stats: TransportStats = { skippedLines: 0, restarts: 0, bytesIn: 0, bytesOut: 0 };

  private readonly url: URL;
  private readonly pool: Pool;
  private readonly baseHeaders: Record<string, string>;
  private readonly credential: UpstreamCredential | undefined;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  /** Aborted by close(): the stream, reconnect waits and POSTs hang off it. */
  private readonly lifetime = new AbortController();
  /** POSTs in flight; close() aborts them. */
  private readonly inflight = new Set<ExchangeAbort>();
  private handlers: TransportHandlers | undefined;
  /** Path and query of the POST endpoint of the current stream; undefined while disconnected. */
  private endpoint: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: SseTransportOptions) {
    this.url = new URL(options.url);
    this.pool = createUpstreamPool(this.url.origin, options.connections);
    this.baseHeaders = lowerCaseHeaders(options.headers);
    this.credential = options.credential;
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  private get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Open the event stream; resolves once the server named its POST endpoint. */
  async start(handlers: TransportHandlers): Promise<void> {
    if (this.closed) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport is closed');
    if (this.handlers) throw new GatehouseError('INTERNAL', 'transport already started');
    this.handlers = handlers;
    await this.connect();
  }

  async send(message: JsonRpcMessage, options: SendOptions = {}): Promise<void> {
    if (this.closed) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport is closed');
    const endpoint = this.endpoint;
    if (endpoint === undefined) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'SSE stream is not connected');
    const exchange = new ExchangeAbort(this.inflight, options.signal);
    try {
      const body = JSON.stringify(message);
      this.stats.bytesOut += Buffer.byteLength(body);
      const res = await requestWithCredential(this.pool, this.credential, (auth) => ({
        method: 'POST', path: endpoint, body, signal: exchange,
        headers: { ...this.baseHeaders, ...auth, ...traceHeaders(options.headers), 'content-type': 'application/json' },
        headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
      }));
      await discardBody(res.body);
      // Replies come on the event stream; the POST only says whether the server took the message.
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream answered HTTP ${res.statusCode}`, { data: { status: res.statusCode } });
      }
    } catch (err) {
      if (options.signal?.aborted) throw new GatehouseError('REQUEST_CANCELLED', 'request aborted by the caller', { cause: err });
      if (this.lifetime.signal.aborted) throw new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport closed', { cause: err });
      throw upstreamUnavailable('upstream POST failed', err);
    } finally {
      exchange.release();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.endpoint = undefined;
      const reason = new GatehouseError('UPSTREAM_UNAVAILABLE', 'transport closed');
      this.lifetime.abort(reason);
      abortAll(this.inflight, reason);
      await this.pool.destroy().catch(() => undefined);
    })();
    return this.closing;
  }

  /**
   * GET the event stream and wait for its `endpoint` event. Afterwards the stream is read in
   * the background; when it ends, `lost` takes over.
   */
  private async connect(): Promise<void> {
    const stream = new AbortController();
    const unlink = linkAbort(stream, [this.lifetime.signal]);
    const timer = this.clock.setTimeout(
      () => stream.abort(new GatehouseError('UPSTREAM_TIMEOUT', 'SSE stream sent no endpoint in time')),
      this.timeoutMs,
    );
    let ready = false;
    try {
      const res = await requestWithCredential(this.pool, this.credential, (auth) => ({
        method: 'GET', path: `${this.url.pathname}${this.url.search}`, signal: stream.signal,
        headers: { ...this.baseHeaders, ...auth, accept: 'text/event-stream' },
        headersTimeout: this.timeoutMs, bodyTimeout: 0, // the stream may be quiet for hours
      }));
      if (res.statusCode < 200 || res.statusCode >= 300 || mediaTypeOf(res.headers) !== 'text/event-stream') {
        await discardBody(res.body);
        throw new GatehouseError('UPSTREAM_UNAVAILABLE', `SSE stream answered HTTP ${res.statusCode}`, { data: { status: res.statusCode } });
      }
      await new Promise<void>((resolve, reject) => {
        const onEvent = (event: SseEvent): void => {
          if (event.type === 'endpoint') {
            if (ready) return; // the first endpoint holds for the life of this stream
            const path = this.sameOriginPath(event.data);
            if (path === undefined) {
              reject(new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'SSE endpoint is not on the origin of the SSE URL; refused'));
              stream.abort();
              return;
            }
            ready = true;
            this.endpoint = path;
            this.clock.clearTimeout(timer);
            resolve();
          } else if (event.type === 'message' && event.data !== '') {
            if (ready) this.receive(event.data);
            else this.diagnostic('skipped a message that arrived before the endpoint event');
          }
        };
        readSseBody(res.body, { cursor: newCursor(), onEvent, onBytes: (n) => { this.stats.bytesIn += n; } }).then(
          () => (ready ? this.lost(stream, undefined) : reject(new GatehouseError('UPSTREAM_UNAVAILABLE', 'SSE stream ended before the endpoint event'))),
          (err: unknown) => (ready ? this.lost(stream, err) : reject(err)),
        ).finally(unlink);
      });
    } catch (err) {
      stream.abort();
      unlink();
      if (stream.signal.reason instanceof GatehouseError && !this.lifetime.signal.aborted) throw stream.signal.reason;
      throw upstreamUnavailable('SSE connect failed', err);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  /**
   * Resolve the endpoint against the SSE URL and keep it only on the same origin: the
   * endpoint comes from the server, and following it elsewhere would send our messages and
   * configured credentials to a host nobody configured.
   */
  private sameOriginPath(data: string): string | undefined {
    try {
      const target = new URL(data.trim(), this.url);
      return target.origin === this.url.origin ? `${target.pathname}${target.search}` : undefined;
    } catch {
      return undefined;
    }
  }

  /** The stream of a started transport ended: report it and reconnect until closed. */
  private lost(stream: AbortController, err: unknown): void {
    if (this.closed || stream.signal.aborted) return;
    this.endpoint = undefined;
    this.notify((h) => h.onDisconnect(upstreamUnavailable('SSE stream ended', err), true));
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    for (let failures = 1; !this.closed; failures++) {
      if (!(await waitFor(this.clock, backoffMs(failures), this.lifetime.signal))) return;
      try {
        await this.connect();
      } catch (err) {
        if (this.closed) return;
        this.diagnostic(`SSE reconnect failed: ${upstreamUnavailable('SSE connect failed', err).message}`);
        continue;
      }
      this.stats.restarts++;
      // A new stream is a new server session: the caller must initialize again.
      this.notify((h) => h.onConnect());
      return;
    }
  }

  private receive(data: string): void {
    let messages: JsonRpcMessage[];
    try {
      messages = decodeMessages(data);
    } catch {
      this.diagnostic('skipped an SSE event that is not JSON-RPC');
      return;
    }
    // The legacy stream carries everything, so no message can be tied to a request here.
    for (const message of messages) this.notify((h) => h.onMessage(message, {}));
  }

  private diagnostic(line: string): void {
    this.notify((h) => h.onDiagnostic?.(line));
  }

  /** Call a handler unless closed. */
  private notify(call: (handlers: TransportHandlers) => void): void {
    if (this.handlers && !this.closed) callHandler(this.handlers, call);
  }
}

/** Create a legacy HTTP+SSE transport for one upstream `/sse` URL. */
export function createSseTransport(options: SseTransportOptions): UpstreamTransport {
  return new SseTransport(options);
}
