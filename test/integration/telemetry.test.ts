// Telemetry through a real gateway: a 2025-era (SDK v1) and a 2026-07-28 (SDK v2) fixture over
// Streamable HTTP, each behind a recording proxy that shows what reached the upstream. Checks
// /metrics on the admin listener (parsed with a Prometheus text parser), spans received by a
// local OTLP/HTTP collector, traceparent propagation (headers and _meta), trace ids in log
// lines, /slos and an SLO burn-rate webhook.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpFixture, type HttpFixture } from '../fixtures/fixture-process.ts';
import { startModernFixture, type ModernFixture } from '../fixtures/modern-process.ts';
import { waitFor } from '../fixtures/fixture-client.ts';
import { INIT, post, startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { startRecordingProxy, type RecordingProxy, type SeenRequest } from '../support/recording-proxy.ts';
import { startOtlpCollector, type OtlpCollector } from '../support/otlp-collector.ts';
import { family, scrapeMetrics, total } from '../support/prometheus.ts';
import { parseTraceParent } from '../../src/telemetry/trace-context.ts';
import type { SloAlert } from '../../src/telemetry/slo.ts';

const MODERN = '2026-07-28';
const AGENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const AGENT_SPAN = '00f067aa0ba902b7';
const SERVER = 2;
const CLIENT = 3;

describe('telemetry through the gateway', () => {
  let legacyFixture: HttpFixture;
  let modernFixture: ModernFixture;
  let legacyProxy: RecordingProxy;
  let modernProxy: RecordingProxy;
  let collector: OtlpCollector;
  let webhook: Server;
  const alerts: SloAlert[] = [];
  let gw: TestGateway;
  let sid = '';

  beforeAll(async () => {
    [legacyFixture, modernFixture, collector] = await Promise.all([startHttpFixture({ mode: 'http', name: 'legacy' }), startModernFixture({ name: 'modern' }), startOtlpCollector()]);
    [legacyProxy, modernProxy] = await Promise.all([startRecordingProxy(legacyFixture.url), startRecordingProxy(modernFixture.url)]);
    webhook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        alerts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as SloAlert);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    const hook = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/alerts`;
    gw = await startGateway({
      targets: {
        legacy: { transport: 'streamable-http', url: legacyProxy.url, era: 'legacy' },
        // A short deadline lets slow_compute fail the way an overloaded upstream would.
        modern: { transport: 'streamable-http', url: modernProxy.url, era: 'modern', requestTimeoutMs: 300 },
      },
      audit: { enabled: false },
      telemetry: {
        tracing: { otlpEndpoint: collector.url },
        slos: [
          { name: 'modern-availability', target: 'modern', availability: 0.9, window: '1h', burnRateAlert: { rate: 2, webhook: hook, minCalls: 4 } },
          { name: 'legacy-latency', target: 'legacy', latencyP95Ms: 10_000, window: '30d' },
        ],
      },
    });
    await waitFor(() => gw.gateway.catalog.all.toolByName.has('test_simple_text') && gw.gateway.catalog.all.toolByName.has('greet'), 10_000);
    const init = await post(gw.url, INIT);
    sid = init.headers.get('mcp-session-id')!;
    await init.text();
    await (await legacySession({ jsonrpc: '2.0', method: 'notifications/initialized' })).text();
  });

  afterAll(async () => {
    await gw?.stop();
    await Promise.all([legacyProxy?.stop(), modernProxy?.stop(), collector?.stop(), new Promise<void>((resolve) => (webhook ? webhook.close(() => resolve()) : resolve()))]);
    await Promise.all([legacyFixture?.stop(), modernFixture?.stop()]);
  });

  function legacySession(body: unknown): Promise<Response> {
    return post(gw.url, body, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  }

  async function modernCall(name: string, args: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ result?: unknown; error?: { data?: { type?: string } } }> {
    const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} };
    const res = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args, _meta: meta } }, {
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
      ...headers,
    });
    return (await res.json()) as { result?: unknown; error?: { data?: { type?: string } } };
  }

  const upstreamCall = (proxy: RecordingProxy, tool: string): SeenRequest[] =>
    proxy.seen.filter((r) => r.body?.['method'] === 'tools/call' && (r.body['params'] as { name?: string } | undefined)?.name === tool);

  it('continues an agent\'s trace to a 2025-era upstream: traceparent header, and _meta rewritten to the gateway\'s span', async () => {
    const agentParent = `00-${AGENT_TRACE}-${AGENT_SPAN}-01`;
    const res = await legacySession({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'test_simple_text', arguments: {}, _meta: { traceparent: agentParent } } });
    expect(((await res.json()) as { result?: unknown }).result).toBeDefined();
    const [seen] = upstreamCall(legacyProxy, 'test_simple_text');
    const header = parseTraceParent(seen?.headers['traceparent']);
    expect(header?.traceId).toBe(AGENT_TRACE);
    expect(header?.spanId).not.toBe(AGENT_SPAN);
    expect(((seen?.body?.['params'] as { _meta?: Record<string, unknown> })._meta)?.['traceparent']).toBe(seen?.headers['traceparent']);

    const record = gw.records.find((r) => r.method === 'tools/call' && r.name === 'test_simple_text')!;
    expect(record.traceId).toBe(AGENT_TRACE);
    const line = gw.logLines.find((l) => l['kind'] === 'call' && l['request_id'] === record.requestId);
    expect(line).toMatchObject({ trace_id: AGENT_TRACE, span_id: record.spanId });

    await gw.gateway.telemetry.tracer.forceFlush();
    await waitFor(() => collector.spans.some((s) => s.traceId === AGENT_TRACE && s.kind === CLIENT), 5_000);
    const call = collector.spans.find((s) => s.traceId === AGENT_TRACE && s.kind === SERVER)!;
    const attempt = collector.spans.find((s) => s.traceId === AGENT_TRACE && s.kind === CLIENT)!;
    expect(call).toMatchObject({ name: 'tools/call test_simple_text', spanId: record.spanId, parentSpanId: AGENT_SPAN });
    expect(call.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'test_simple_text', 'gatehouse.target': 'legacy', 'gatehouse.outcome': 'ok' });
    expect(call.resource['service.name']).toBe('gatehouse');
    // The upstream-attempt span is the call span's child, and the upstream's parent.
    expect(attempt).toMatchObject({ name: 'tools/call legacy', parentSpanId: call.spanId, spanId: header?.spanId });
    expect(collector.contentTypes.every((t) => t.startsWith('application/json'))).toBe(true);
  });

  it('sends a 2026-07-28 upstream the trace context in the traceparent header and in _meta', async () => {
    const answer = await modernCall('greet', { name: 'trace' }, { traceparent: `00-${AGENT_TRACE}-${AGENT_SPAN}-01` });
    expect(answer.result).toBeDefined();
    const [seen] = upstreamCall(modernProxy, 'greet');
    const header = seen?.headers['traceparent'];
    expect(parseTraceParent(header)?.traceId).toBe(AGENT_TRACE);
    expect(((seen?.body?.['params'] as { _meta?: Record<string, unknown> })._meta)?.['traceparent']).toBe(header);
  });

  it('starts a new trace for a call that brings none', async () => {
    const res = await legacySession({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'test_error_handling', arguments: {} } });
    await res.text();
    const [seen] = upstreamCall(legacyProxy, 'test_error_handling');
    const header = parseTraceParent(seen?.headers['traceparent']);
    expect(header).toBeDefined();
    expect(header?.traceId).not.toBe(AGENT_TRACE);
    expect(seen?.body?.['params']).not.toHaveProperty('_meta.traceparent');
    await gw.gateway.telemetry.tracer.forceFlush();
    await waitFor(() => collector.spans.some((s) => s.traceId === header?.traceId && s.kind === SERVER), 5_000);
    expect(collector.spans.find((s) => s.traceId === header?.traceId && s.kind === SERVER)?.parentSpanId).toBe('');
  });

  it('serves Prometheus metrics on the admin listener with the calls counted', async () => {
    for (let i = 0; i < 3; i++) await (await legacySession({ jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name: 'test_simple_text', arguments: {} } })).text();
    await (await legacySession({ jsonrpc: '2.0', id: 20, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } })).text();
    const m = await scrapeMetrics(gw.adminBase);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', target: 'legacy', tool: 'test_simple_text', agent: '', outcome: 'ok' })).toBe(4);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', target: 'modern', tool: 'greet', outcome: 'ok' })).toBe(1);
    // An unknown name is counted under `other`, never as a label value of its own.
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', tool: 'other', outcome: 'error' })).toBe(1);
    expect(total(m, 'gatehouse_call_errors_total', { method: 'tools/call', error_type: 'tool_not_found' })).toBe(1);
    expect(total(m, 'gatehouse_calls_total', { method: 'initialize', outcome: 'ok' })).toBe(1);
    expect(total(m, 'gatehouse_calls_total', { method: 'notifications/initialized', outcome: 'accepted' })).toBe(1);
    expect(family(m, 'gatehouse_call_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(total(m, 'gatehouse_upstream_up', { target: 'legacy' })).toBe(1);
    expect(total(m, 'gatehouse_upstream_state', { target: 'modern', state: 'ready' })).toBe(1);
    expect(total(m, 'gatehouse_upstream_restarts_total', { target: 'legacy' })).toBe(0);
    expect(total(m, 'gatehouse_sessions')).toBe(1);
    expect(family(m, 'gatehouse_audit_queue_depth')?.type).toBe('GAUGE');
    expect(total(m, 'gatehouse_slo_burn_rate', { slo: 'legacy-latency', objective: 'latency', window: '30d' })).toBe(0);
  });

  it('computes SLO burn rates, shows them on /slos and calls the webhook once when the budget burns', async () => {
    for (let i = 0; i < 2; i++) expect((await modernCall('greet', { name: `ok-${i}` })).result).toBeDefined();
    // With the greet above: 3 ok, then deadline failures; the first already burns 25% / 10% = 2.5 > 2.
    for (let i = 0; i < 2; i++) expect((await modernCall('slow_compute', { seconds: 5 })).error?.data?.type).toBe('upstream_timeout');
    await gw.gateway.telemetry.slos.idle();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'gatehouse.slo.burn_rate', status: 'firing', slo: 'modern-availability', objective: 'availability', target: 'modern' });

    const res = await fetch(`${gw.adminBase}/slos`);
    expect(res.status).toBe(200);
    const { slos } = (await res.json()) as { slos: Array<{ name: string; objectives: Array<{ calls: number; bad: number; burnRates: Array<{ window: string; value: number }>; alert?: { firing: boolean } }> }> };
    const modern = slos.find((s) => s.name === 'modern-availability')!.objectives[0]!;
    expect(modern).toMatchObject({ calls: 5, bad: 2, alert: { firing: true } });
    expect(modern.burnRates.find((b) => b.window === '1h')?.value).toBeCloseTo(4, 6);

    const m = await scrapeMetrics(gw.adminBase);
    expect(total(m, 'gatehouse_slo_burn_rate', { slo: 'modern-availability', window: '1h' })).toBeCloseTo(4, 6);
    expect(total(m, 'gatehouse_slo_alert_firing', { slo: 'modern-availability' })).toBe(1);
    expect(total(m, 'gatehouse_call_errors_total', { target: 'modern', error_type: 'upstream_timeout' })).toBe(2);
  });
});
