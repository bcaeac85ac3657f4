import { describe, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { telemetrySchema } from '../config/telemetry-schema.ts';
import { createCallRecord } from './call-record.ts';
import { createCallTracer } from './tracing.ts';
import { formatTraceParent, incomingTraceContext, parseTraceParent, withTraceContext } from './trace-context.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcRequest } from '../protocol/jsonrpc.ts';

const tracingConfig = () => telemetrySchema.parse({}).tracing;

const AGENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const AGENT_SPAN = 'b7ad6b7169203331';
const TRACEPARENT = `00-${AGENT_TRACE}-${AGENT_SPAN}-01`;

const request = (meta?: Record<string, unknown>): JsonRpcRequest => ({
  jsonrpc: '2.0',
  id: 7,
  method: 'tools/call',
  params: { name: 'echo', arguments: {}, ...(meta === undefined ? {} : { _meta: meta }) },
});

describe('W3C trace context', () => {
  it('parses valid traceparents and refuses invalid ones', () => {
    expect(parseTraceParent(TRACEPARENT)).toEqual({ traceId: AGENT_TRACE, spanId: AGENT_SPAN, flags: 1 });
    expect(parseTraceParent(`01-${AGENT_TRACE}-${AGENT_SPAN}-00-future`)).toEqual({ traceId: AGENT_TRACE, spanId: AGENT_SPAN, flags: 0 });
    for (const bad of [
      `00-${AGENT_TRACE}-${AGENT_SPAN}-01-extra`, // version 00 has exactly four fields
      `ff-${AGENT_TRACE}-${AGENT_SPAN}-01`,
      `00-${'0'.repeat(32)}-${AGENT_SPAN}-01`,
      `00-${AGENT_TRACE}-${'0'.repeat(16)}-01`,
      `00-${AGENT_TRACE.toUpperCase()}-${AGENT_SPAN}-01`,
      'garbage',
      42,
    ]) {
      expect(parseTraceParent(bad)).toBeUndefined();
    }
    expect(formatTraceParent(AGENT_TRACE, AGENT_SPAN, 1)).toBe(TRACEPARENT);
  });

  it('reads the agent\'s context from _meta first, then from the HTTP headers', () => {
    expect(incomingTraceContext(request({ traceparent: TRACEPARENT, tracestate: 'a=1' }).params, { traceparent: 'other' })).toEqual({ traceparent: TRACEPARENT, tracestate: 'a=1' });
    expect(incomingTraceContext(request().params, { traceparent: TRACEPARENT })).toEqual({ traceparent: TRACEPARENT, tracestate: undefined });
    expect(incomingTraceContext(request().params, undefined)).toBeUndefined();
  });

  it('sends the attempt\'s context as headers always, and in _meta to 2026-07-28 upstreams', () => {
    const context = { traceparent: formatTraceParent(AGENT_TRACE, '1111111111111111', 1), tracestate: 'g=1' };
    const params = { name: 'echo', _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } };
    const modern = withTraceContext(context, params, { 'mcp-param-region': 'x' }, 'modern');
    expect(modern.headers).toEqual({ 'mcp-param-region': 'x', traceparent: context.traceparent, tracestate: 'g=1' });
    expect(modern.params?.['_meta']).toEqual({ 'io.modelcontextprotocol/protocolVersion': '2026-07-28', traceparent: context.traceparent, tracestate: 'g=1' });
    expect(params._meta).not.toHaveProperty('traceparent'); // the agent's params are not mutated

    const legacy = withTraceContext(context, { name: 'echo' }, undefined, 'legacy');
    expect(legacy.params).toEqual({ name: 'echo' });
    expect(legacy.headers['traceparent']).toBe(context.traceparent);

    // An agent's own _meta traceparent is replaced, so the upstream's parent is the gateway's span.
    const relayed = withTraceContext({ traceparent: context.traceparent, tracestate: undefined }, { _meta: { traceparent: TRACEPARENT, tracestate: 'old=1' } }, undefined, 'legacy');
    expect(relayed.params?.['_meta']).toEqual({ traceparent: context.traceparent });
  });
});

describe('call tracer', () => {
  it('continues the agent\'s trace with a call span and a child span per upstream attempt', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = createCallTracer(tracingConfig(), { exporter });
    const record = createCallRecord('tools/call', 7, 0, 'streamable-http');
    const span = tracer.startCall(record, request({ traceparent: TRACEPARENT, tracestate: 'vendor=x' }), undefined);
    expect(record.traceId).toBe(AGENT_TRACE);
    expect(record.spanId).toMatch(/^[0-9a-f]{16}$/);

    const attempt = span!.startAttempt('alpha', 'tools/call');
    const sent = parseTraceParent(attempt.traceparent)!;
    expect(sent.traceId).toBe(AGENT_TRACE);
    expect(sent.flags).toBe(1);
    expect(attempt.tracestate).toBe('vendor=x');
    attempt.end({ jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'boom' } });
    const second = span!.startAttempt('alpha', 'tools/call');
    second.end(undefined, new GatehouseError('UPSTREAM_TIMEOUT', 'late'));

    Object.assign(record, { name: 'echo', target: 'alpha', outcome: 'upstream_error', errorType: 'rpc_-32603', sessionId: 's1' });
    tracer.onRecord(record);
    tracer.onRecord(record); // a second emit of the same record ends nothing twice
    await tracer.forceFlush();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(3);
    const call = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const attempts = spans.filter((s) => s.kind === SpanKind.CLIENT);
    expect(call.name).toBe('tools/call echo');
    expect(call.spanContext().spanId).toBe(record.spanId);
    expect(call.parentSpanContext?.spanId).toBe(AGENT_SPAN);
    expect(call.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'echo', 'gatehouse.target': 'alpha', 'mcp.session.id': 's1', 'error.type': 'rpc_-32603' });
    expect(call.status.code).toBe(SpanStatusCode.ERROR);
    for (const a of attempts) {
      expect(a.name).toBe('tools/call alpha');
      expect(a.parentSpanContext?.spanId).toBe(record.spanId);
      expect(a.spanContext().traceId).toBe(AGENT_TRACE);
      expect(a.status.code).toBe(SpanStatusCode.ERROR);
    }
    expect(attempts.map((a) => a.attributes['error.type'] ?? a.attributes['rpc.jsonrpc.error_code'])).toEqual([-32603, 'upstream_timeout']);
    expect(attempts.find((a) => a.spanContext().spanId === sent.spanId)).toBeDefined();
    await tracer.shutdown();
  });

  it('starts a new trace when the agent sent none or a broken one, and follows an unsampled parent', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = createCallTracer(tracingConfig(), { exporter });
    const fresh = createCallRecord('tools/call', 1, 0, 'stdio');
    tracer.startCall(fresh, request({ traceparent: 'not-a-traceparent' }), undefined);
    expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh.traceId).not.toBe(AGENT_TRACE);
    tracer.onRecord(fresh);

    const unsampled = createCallRecord('tools/call', 2, 0, 'stdio');
    const span = tracer.startCall(unsampled, request({ traceparent: `00-${AGENT_TRACE}-${AGENT_SPAN}-00` }), undefined);
    expect(unsampled.traceId).toBe(AGENT_TRACE);
    // Not recorded, but the context still propagates, unsampled.
    expect(parseTraceParent(span!.startAttempt('alpha', 'tools/call').traceparent)?.flags).toBe(0);
    tracer.onRecord(unsampled);
    await tracer.forceFlush();
    expect(exporter.getFinishedSpans().map((s) => s.spanContext().traceId)).toEqual([fresh.traceId]);
    await tracer.shutdown();
  });

  it('when tracing is off makes no span but notes the agent\'s trace id', () => {
    const tracer = createCallTracer(tracingConfig());
    const record = createCallRecord('tools/call', 1, 0, 'streamable-http');
    expect(tracer.startCall(record, request(), { traceparent: TRACEPARENT })).toBeUndefined();
    expect(record.traceId).toBe(AGENT_TRACE);
    expect(record.spanId).toBeUndefined();
    const none = createCallRecord('ping', 2, 0, 'stdio');
    tracer.startCall(none, { jsonrpc: '2.0', id: 2, method: 'ping' }, undefined);
    expect(none.traceId).toBeUndefined();
  });
});
