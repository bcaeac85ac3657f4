/**
 * W3C Trace Context on the wire, without I/O: reading an agent's `traceparent` (from `_meta`
 * or the HTTP header) and writing the gateway's onto an upstream request.
 *
 * MCP 2026-07-28 (basic/index, "OpenTelemetry trace context") reserves the unprefixed `_meta`
 * keys `traceparent`, `tracestate` and `baggage` for this, in W3C format. Earlier revisions do
 * not define them; instrumented SDKs use the same keys by convention (OTel semantic
 * conventions for MCP).
 */
import type { JsonObject } from '../protocol/jsonrpc.ts';
import { metaOf } from '../protocol/jsonrpc.ts';

export const META_TRACEPARENT = 'traceparent';
export const META_TRACESTATE = 'tracestate';

/** A parsed `traceparent`. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  /** Bit 0: sampled. */
  flags: number;
}

// W3C Trace Context §3.2: version-traceid-parentid-flags, lower-case hex. Future versions may
// append fields after a dash; version ff is invalid.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Parse a `traceparent` value; undefined when it is absent or invalid (then a new trace starts). */
export function parseTraceParent(value: unknown): TraceParent | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: Number.parseInt(flags!, 16) };
}

export function formatTraceParent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The trace context an agent sent with a request: `_meta` first, then the HTTP headers. */
export function incomingTraceContext(
  params: JsonObject | undefined,
  httpHeaders: Readonly<Record<string, string | string[] | undefined>> | undefined,
): { traceparent: string; tracestate: string | undefined } | undefined {
  const meta = metaOf(params);
  const fromMeta = meta?.[META_TRACEPARENT];
  if (typeof fromMeta === 'string') {
    const state = meta?.[META_TRACESTATE];
    return { traceparent: fromMeta, tracestate: typeof state === 'string' ? state : undefined };
  }
  const header = httpHeaders?.['traceparent'];
  if (typeof header !== 'string') return undefined;
  const state = httpHeaders?.['tracestate'];
  return { traceparent: header, tracestate: typeof state === 'string' ? state : undefined };
}

/** What an upstream attempt carries of the gateway's trace. */
export interface OutboundTraceContext {
  readonly traceparent: string;
  readonly tracestate: string | undefined;
}

/**
 * Put an attempt's trace context on an upstream request: always as HTTP headers (transports
 * that have none ignore them), and in `_meta` where the upstream's era defines the keys
 * (2026-07-28), or where the agent already put them there, so the upstream continues from
 * the gateway's span rather than skipping it.
 */
export function withTraceContext(
  context: OutboundTraceContext,
  params: JsonObject | undefined,
  headers: Readonly<Record<string, string>> | undefined,
  upstreamEra: 'modern' | 'legacy' | undefined,
): { params: JsonObject | undefined; headers: Record<string, string> } {
  const traceHeaders: Record<string, string> = { ...headers, traceparent: context.traceparent };
  if (context.tracestate) traceHeaders['tracestate'] = context.tracestate;
  const meta = metaOf(params);
  if (upstreamEra !== 'modern' && meta?.[META_TRACEPARENT] === undefined) return { params, headers: traceHeaders };
  const nextMeta: JsonObject = { ...meta, [META_TRACEPARENT]: context.traceparent };
  if (context.tracestate) nextMeta[META_TRACESTATE] = context.tracestate;
  else delete nextMeta[META_TRACESTATE];
  return { params: { ...params, _meta: nextMeta }, headers: traceHeaders };
}
