/**
 * Server-Sent Events over undici, shared by the Streamable HTTP and legacy HTTP+SSE upstream
 * transports: reading an event stream as it arrives, the cursor a resumption needs
 * (last event id, server `retry`), reconnect timing on an injected clock, and decoding
 * JSON-RPC out of bodies and event data. No MCP session logic lives here.
 */
import { createParser } from 'eventsource-parser';
import { Pool } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { parseMessage, type JsonRpcMessage } from '../protocol/jsonrpc.ts';

/** Delay before reconnecting when the server sent no `retry` field (the HTML SSE default is UA-defined; 1 s is common). */
export const DEFAULT_RETRY_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

/** Exponential backoff for repeated failures: 1 s, 2 s, 4 s … capped at 30 s. */
export function backoffMs(failures: number): number {
  return Math.min(MAX_BACKOFF_MS, DEFAULT_RETRY_MS * 2 ** Math.max(0, failures - 1));
}

/** Wait `ms` on the clock. Resolves true when the time passed, false when `signal` aborted first. */
export function waitFor(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Abort `controller` when any of `signals` aborts. Returns the unlink function; callers run it
 * in `finally` so long-lived signals (the transport's lifetime) do not collect listeners.
 */
export function linkAbort(controller: AbortController, signals: Array<AbortSignal | undefined>): () => void {
  const unlinks: Array<() => void> = [];
  for (const signal of signals) {
    if (!signal) continue;
    if (signal.aborted) {
      controller.abort(signal.reason);
      continue;
    }
    const onAbort = (): void => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    unlinks.push(() => signal.removeEventListener('abort', onAbort));
  }
  return () => {
    for (const unlink of unlinks) unlink();
  };
}

/**
 * Where a stream stands, kept across reconnects of one logical stream. Per the SSE spec the
 * last event id persists until the server sets another, so events without `id:` keep it.
 */
export interface SseCursor {
  lastEventId: string | undefined;
  /** The reconnection time the server asked for with `retry:`, if any. */
  retryMs: number | undefined;
}

export function newCursor(): SseCursor {
  return { lastEventId: undefined, retryMs: undefined };
}

export interface SseEvent {
  /** Event type; `message` when the server named none. */
  type: string;
  data: string;
  id: string | undefined;
}

export interface ReadSseOptions {
  cursor: SseCursor;
  onEvent(event: SseEvent): void;
  onBytes(count: number): void;
  /** Largest event (in characters) buffered before the stream is refused. */
  maxEventChars?: number;
}

/** A bound on one buffered SSE event, so a stream that never ends an event cannot exhaust memory. */
export const DEFAULT_MAX_EVENT_CHARS = 32 * 1024 * 1024;

/**
 * Read an SSE body to its end, dispatching each event as soon as its blank line arrives.
 * Resolves on a clean end of stream; rejects when the body errors or is aborted. An event
 * cut off without its terminating blank line is dropped, as the SSE spec requires.
 *
 * Known gap of eventsource-parser: an event with `id:` but no `data:` line is not
 * dispatched, so its id does not reach the cursor. MCP priming events carry `data:` (empty),
 * which the parser does dispatch.
 */
export async function readSseBody(body: AsyncIterable<Uint8Array | string>, options: ReadSseOptions): Promise<void> {
  let oversized = false;
  const parser = createParser({
    maxBufferSize: options.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS,
    onEvent: (event) => {
      // The cursor moves before delivery so a handler that aborts the stream keeps it.
      if (event.id !== undefined) options.cursor.lastEventId = event.id === '' ? undefined : event.id;
      options.onEvent({ type: event.event ?? 'message', data: event.data, id: event.id });
    },
    onRetry: (ms) => {
      options.cursor.retryMs = ms;
    },
    onError: (error) => {
      if (error.type === 'max-buffer-size-exceeded') oversized = true;
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    if (typeof chunk === 'string') {
      options.onBytes(Buffer.byteLength(chunk));
      parser.feed(chunk);
    } else {
      options.onBytes(chunk.byteLength);
      parser.feed(decoder.decode(chunk, { stream: true }));
    }
    if (oversized) throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'SSE event exceeds the size limit');
  }
}

export interface FollowSseOptions {
  clock: Clock;
  /** Aborting stops following; the promise then rejects with the signal's reason. */
  signal: AbortSignal;
  cursor: SseCursor;
  /** Body of the first connection; when absent the first connection comes from `reopen`. */
  body?: AsyncIterable<Uint8Array | string>;
  /** Connect again from the cursor. Undefined is a failed attempt worth retrying; throw to stop. */
  reopen(cursor: SseCursor): Promise<AsyncIterable<Uint8Array | string> | undefined>;
  onEvent(event: SseEvent): void;
  onBytes(count: number): void;
  /** Asked whenever a connection ends: true means nothing more is wanted from this stream. */
  isDone(): boolean;
  /**
   * `never`: a connection that ends before isDone() is a failure (modern request streams).
   * `from-event-id`: resume only with an event id to resume from (legacy request streams).
   * `always`: reconnect, with Last-Event-ID when there is one (the standalone GET stream).
   */
  resume: 'never' | 'from-event-id' | 'always';
  /** Consecutive connections that delivered nothing, tolerated before giving up. */
  maxFailures: number;
  /** Called just before each reconnect. */
  onReconnect?(): void;
  /** A connection broke with an error (as opposed to ending cleanly). */
  onDrop?(error: unknown): void;
}

/**
 * Follow one logical SSE stream across connections: when a connection ends, wait the server's
 * `retry` (the spec's MUST; 1 s without one) and reconnect from the cursor, backing off
 * further only while attempts keep failing. A connection that delivered any event (a priming
 * event included) counts as progress, so a server that polls by closing is followed forever.
 */
export async function followSseStream(options: FollowSseOptions): Promise<void> {
  const { cursor, signal } = options;
  let body = options.body ?? (await options.reopen(cursor));
  let failures = 0;
  for (;;) {
    let failure: unknown;
    let events = 0;
    if (body) {
      try {
        await readSseBody(body, {
          cursor,
          onBytes: options.onBytes,
          onEvent: (event) => {
            events++;
            options.onEvent(event);
          },
        });
      } catch (err) {
        failure = err;
      }
    }
    if (options.isDone()) return;
    if (signal.aborted) throw signal.reason;
    if (failure !== undefined) options.onDrop?.(failure);
    if (options.resume === 'never' || (options.resume === 'from-event-id' && cursor.lastEventId === undefined)) {
      throw upstreamUnavailable('response stream ended before the response', failure);
    }
    failures = body && events > 0 ? 0 : failures + 1;
    if (failures > options.maxFailures) throw upstreamUnavailable('response stream could not be resumed', failure);
    const delay = failures <= 1 ? cursor.retryMs ?? DEFAULT_RETRY_MS : Math.max(cursor.retryMs ?? 0, backoffMs(failures));
    if (!(await waitFor(options.clock, delay, signal))) throw signal.reason;
    options.onReconnect?.();
    body = await options.reopen(cursor);
  }
}

/** Largest JSON body read into memory. */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

/**
 * Read a whole (bounded) body as UTF-8 text. With 'data' events rather than `for await`: the
 * async iterator costs ~20 µs per body, a fifth of what an upstream exchange should cost.
 */
export function readBodyText(body: Readable, limitBytes: number, onBytes: (count: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      total += buf.byteLength;
      onBytes(buf.byteLength);
      if (total > limitBytes) {
        body.off('data', onData);
        body.destroy();
        reject(new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream body exceeds the size limit'));
        return;
      }
      chunks.push(buf);
    };
    let ended = false;
    body.on('data', onData);
    body.once('end', () => {
      ended = true;
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, total).toString('utf8'));
    });
    body.once('error', reject);
    // A body destroyed without an error (aborted elsewhere) never ends: settle anyway. ('close'
    // follows every 'end': no error is built then, a stack trace costs more than the read.)
    body.once('close', () => {
      if (!ended) reject(new GatehouseError('UPSTREAM_UNAVAILABLE', 'upstream body closed before its end'));
    });
  });
}

/** Release a body we do not need, so its connection can be reused (or is dropped if too large). */
export async function discardBody(body: { dump(opts?: { limit: number }): Promise<void> }): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // The body errored or was aborted; there is nothing left to release.
  }
}

/**
 * Decode JSON-RPC out of a body or an SSE `data` field: one message, or an array of them
 * (batches were allowed in 2025-03-26). Throws UPSTREAM_PROTOCOL_ERROR on anything else.
 */
export function decodeMessages(text: string): JsonRpcMessage[] {
  try {
    // Results stay raw text until something reads them (protocol/raw-json.ts).
    const decoded = parseMessage(text);
    return Array.isArray(decoded) ? decoded : [decoded];
  } catch (err) {
    throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream sent a message that is not valid JSON-RPC', { cause: err });
  }
}

/** The first value of a response header. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The media type of a Content-Type header without parameters, lower-cased. */
export function mediaTypeOf(headers: IncomingHttpHeaders): string {
  return (headerValue(headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * UPSTREAM_UNAVAILABLE for a failed exchange. The text names only the step and a system
 * error code: never a URL (it may carry credentials) nor a header value.
 */
export function upstreamUnavailable(step: string, cause?: unknown, data?: Record<string, unknown>): GatehouseError {
  if (cause instanceof GatehouseError) return cause;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  const details = { ...(cause === undefined ? {} : { cause }), ...(data === undefined ? {} : { data }) };
  return new GatehouseError('UPSTREAM_UNAVAILABLE', code ? `${step} (${code})` : step, details);
}

/**
 * The keep-alive pool both HTTP transports use for one upstream origin: no pipelining (MCP
 * streams are long-lived) and TCP_NODELAY (small JSON-RPC frames must not wait for Nagle).
 */
export function createUpstreamPool(origin: string, connections = 16): Pool {
  return new Pool(origin, { connections, pipelining: 1, connect: { noDelay: true } });
}

/** Configured extra headers, with lower-cased names so later lookups and overrides agree. */
export function lowerCaseHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  return out;
}
