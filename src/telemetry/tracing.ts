/**
 * OpenTelemetry traces: one SERVER span per call, started by the call runner, and one CLIENT
 * child span per upstream attempt, started in forward.ts. Spans are made by hand rather than
 * by auto-instrumentation: the gateway owns its HTTP code, so manual spans cost less and say
 * exactly what happened (and no ESM loader hook is needed).
 *
 * The provider is the gateway's own, never registered globally: two gateways in one process
 * (tests, reloads) do not share or clobber each other's tracer, and parent spans are passed
 * explicitly instead of through a context manager. Without an OTLP endpoint no span is made;
 * the agent's incoming trace id is still noted on the call record so logs and audit rows can
 * be joined with the agent's trace.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, createTraceState, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { createRequire } from 'node:module';
import type { BasicTracerProvider, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from '../config/telemetry-schema.ts';
import type { JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { toGatehouseError } from '../protocol/errors.ts';
import { GATEWAY_VERSION } from '../version.ts';
import type { CallRecord } from './call-record.ts';
import { formatTraceParent, incomingTraceContext, parseTraceParent, type OutboundTraceContext } from './trace-context.ts';

/** Starts call spans; its `onRecord` subscriber ends them with the record's facts. */
export interface CallTracer {
  /**
   * Start the span of one call, continuing the agent's trace when the request carries a valid
   * `traceparent`, and write its ids onto the record. Undefined when tracing is off.
   */
  startCall(record: CallRecord, request: JsonRpcRequest, httpHeaders: Readonly<Record<string, string | string[] | undefined>> | undefined): CallSpan | undefined;
  /** Call-record subscriber: ends the call's span. */
  readonly onRecord: (record: Readonly<CallRecord>) => void;
  forceFlush(): Promise<void>;
  /** Flush and stop exporting. Idempotent. */
  shutdown(): Promise<void>;
}

/** The span of one call in flight, as stages see it (CallContext.trace). */
export interface CallSpan {
  /** A child span for one upstream attempt; its trace context goes upstream. */
  startAttempt(target: string, method: string): AttemptSpan;
}

export interface AttemptSpan extends OutboundTraceContext {
  /** End with the upstream's response, or with what was thrown instead. */
  end(response: JsonRpcResponse | undefined, error?: unknown): void;
}

export interface CallTracerOptions {
  /** Replaces the OTLP exporter (tests); tracing is on when this or `otlpEndpoint` is set. */
  exporter?: SpanExporter | undefined;
}

/**
 * The OpenTelemetry SDK and OTLP exporter, loaded only when tracing is on: with the metrics and
 * logs packages the exporter pulls in, they are ~15 MB of a gateway's idle RSS. They are
 * CommonJS packages (no `exports` map), so a synchronous require loads the very modules a static
 * import would, and the tracer can still be built synchronously.
 */
function loadOtelSdk(): {
  trace: typeof import('@opentelemetry/sdk-trace-base');
  exporter: typeof import('@opentelemetry/exporter-trace-otlp-http');
  resources: typeof import('@opentelemetry/resources');
  semconv: typeof import('@opentelemetry/semantic-conventions');
} {
  const load = createRequire(import.meta.url);
  return {
    trace: load('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base'),
    exporter: load('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http'),
    resources: load('@opentelemetry/resources') as typeof import('@opentelemetry/resources'),
    semconv: load('@opentelemetry/semantic-conventions') as typeof import('@opentelemetry/semantic-conventions'),
  };
}

/** Build the tracer for a config: an OTLP-exporting one, or the passive one when tracing is off. */
export function createCallTracer(config: TracingConfig, options: CallTracerOptions = {}): CallTracer {
  if (options.exporter === undefined && config.otlpEndpoint === undefined) return passiveTracer;
  const sdk = loadOtelSdk();
  const exporter = options.exporter ?? new sdk.exporter.OTLPTraceExporter({ url: config.otlpEndpoint, headers: config.headers, timeoutMillis: EXPORT_TIMEOUT_MS });
  return new OtelCallTracer(config, exporter, sdk);
}

/** Tracing off: no spans, near zero cost; only an incoming trace id is noted. */
const passiveTracer: CallTracer = {
  startCall(record, request, httpHeaders) {
    const incoming = request.params === undefined && httpHeaders === undefined ? undefined : incomingTraceContext(request.params, httpHeaders);
    if (incoming !== undefined) record.traceId = parseTraceParent(incoming.traceparent)?.traceId;
    return undefined;
  },
  onRecord: () => undefined,
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/** A dead collector must not hold up shutdown for long (the SDK's default is 30 s). */
const EXPORT_TIMEOUT_MS = 5_000;

/** Methods whose span name carries the (catalog-bounded) name they act on, per OTel MCP conventions. */
const NAMED_METHODS = new Set(['tools/call', 'prompts/get']);

class OtelCallTracer implements CallTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  /** Spans of calls whose record is not emitted yet. Weak: a call that never ends leaks nothing. */
  private readonly open = new WeakMap<object, Span>();
  private stopping: Promise<void> | undefined;

  constructor(config: TracingConfig, exporter: SpanExporter, sdk: ReturnType<typeof loadOtelSdk>) {
    const { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } = sdk.trace;
    this.provider = new BasicTracerProvider({
      resource: sdk.resources.resourceFromAttributes({ [sdk.semconv.ATTR_SERVICE_NAME]: config.serviceName, [sdk.semconv.ATTR_SERVICE_VERSION]: GATEWAY_VERSION }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
      spanProcessors: [new BatchSpanProcessor(exporter, { exportTimeoutMillis: EXPORT_TIMEOUT_MS })],
    });
    this.tracer = this.provider.getTracer('gatehouse', GATEWAY_VERSION);
  }

  startCall(record: CallRecord, request: JsonRpcRequest, httpHeaders: Readonly<Record<string, string | string[] | undefined>> | undefined): CallSpan | undefined {
    try {
      const incoming = incomingTraceContext(request.params, httpHeaders);
      const parent = incoming === undefined ? undefined : parseTraceParent(incoming.traceparent);
      const parentContext =
        parent === undefined
          ? ROOT_CONTEXT
          : trace.setSpanContext(ROOT_CONTEXT, {
              traceId: parent.traceId,
              spanId: parent.spanId,
              traceFlags: parent.flags & 1,
              isRemote: true,
              ...(incoming?.tracestate ? { traceState: createTraceState(incoming.tracestate) } : {}),
            });
      const span = this.tracer.startSpan(request.method, { kind: SpanKind.SERVER, attributes: { 'mcp.method.name': request.method } }, parentContext);
      const ids = span.spanContext();
      record.traceId = ids.traceId;
      record.spanId = ids.spanId;
      this.open.set(record, span);
      return new OtelCallSpan(this.tracer, span);
    } catch {
      // Tracing must never fail a call: without a span the call runs untraced.
      return undefined;
    }
  }

  readonly onRecord = (record: Readonly<CallRecord>): void => {
    const span = this.open.get(record);
    if (span === undefined) return;
    this.open.delete(record);
    try {
      this.endCall(span, record);
    } catch {
      // A tracing defect loses a span, never another subscriber's record.
    }
  };

  private endCall(span: Span, record: Readonly<CallRecord>): void {    if (record.name !== undefined && record.target !== undefined && NAMED_METHODS.has(record.method)) span.updateName(`${record.method} ${record.name}`);
    const attributes: Attributes = {
      'gatehouse.request_id': record.requestId,
      'gatehouse.outcome': record.outcome,
      'network.transport': record.downstreamTransport,
      'mcp.message.bytes_in': record.bytesIn,
      'mcp.message.bytes_out': record.bytesOut,
    };
    if (record.downstreamId !== undefined) attributes['jsonrpc.request.id'] = String(record.downstreamId);
    if (record.sessionId !== undefined) attributes['mcp.session.id'] = record.sessionId;
    if (record.protocolVersion !== undefined) attributes['mcp.protocol.version'] = record.protocolVersion;
    if (record.target !== undefined) attributes['gatehouse.target'] = record.target;
    if (record.toolset !== undefined) attributes['gatehouse.toolset'] = record.toolset;
    if (record.method === 'tools/call' && record.name !== undefined) attributes['gen_ai.tool.name'] = record.name;
    if (record.errorType !== undefined) attributes['error.type'] = record.errorType;
    if (record.correlationId !== undefined) attributes['gatehouse.correlation_id'] = record.correlationId;
    span.setAttributes(attributes);
    if (record.outcome === 'error' || record.outcome === 'upstream_error') span.setStatus({ code: SpanStatusCode.ERROR, message: record.errorType });
    span.end();
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    this.stopping ??= this.provider.shutdown().catch(() => undefined);
    return this.stopping;
  }
}

class OtelCallSpan implements CallSpan {
  private readonly tracer: Tracer;
  private readonly span: Span;

  constructor(tracer: Tracer, span: Span) {
    this.tracer = tracer;
    this.span = span;
  }

  startAttempt(target: string, method: string): AttemptSpan {
    const child = this.tracer.startSpan(
      `${method} ${target}`,
      { kind: SpanKind.CLIENT, attributes: { 'mcp.method.name': method, 'gatehouse.target': target } },
      trace.setSpan(ROOT_CONTEXT, this.span),
    );
    const ids = child.spanContext();
    const state = ids.traceState?.serialize();
    return {
      traceparent: formatTraceParent(ids.traceId, ids.spanId, ids.traceFlags),
      tracestate: state ? state : undefined,
      end(response, error) {
        if (error !== undefined) {
          const failure = toGatehouseError(error);
          child.setAttribute('error.type', failure.spec.type);
          child.setStatus({ code: SpanStatusCode.ERROR, message: failure.spec.type });
        } else if (response !== undefined && 'error' in response) {
          child.setAttribute('rpc.jsonrpc.error_code', response.error.code);
          child.setStatus({ code: SpanStatusCode.ERROR, message: `rpc_${response.error.code}` });
        }
        child.end();
      },
    };
  }
}
