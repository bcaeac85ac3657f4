import { describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createCallRecord, type CallRecord } from './call-record.ts';
import { GatewayMetrics, errorTypeLabel, type MetricsSources } from './metrics.ts';
import type { TargetHealth } from '../upstream/registry.ts';
import { samples, total } from '../../test/support/prometheus.ts';

function target(name: string, state: TargetHealth['state'], restarts: number): TargetHealth {
  return {
    name, transport: 'stdio', state, era: 'legacy', protocolVersion: '2025-11-25', serverInfo: undefined, lastError: undefined,
    restarts, skippedLines: 0, inFlight: 2, tools: 1, prompts: 0, resources: 0, templates: 0,
  };
}

function setup(agentLabels: readonly string[] = ['claude', 'cursor']) {
  const state = { agentLabels, sessions: 3 };
  const sources: MetricsSources = {
    targets: () => [target('alpha', 'ready', 0), target('beta', 'reconnecting', 4)],
    sessions: () => state.sessions,
    isTool: (name) => name === 'echo' || name === 'add',
    agentLabels: () => state.agentLabels,
  };
  return { metrics: new GatewayMetrics(sources), state };
}

function call(method: string, fields: Partial<CallRecord> = {}, id: number | undefined = 1): CallRecord {
  return Object.assign(createCallRecord(method, id, 0, 'streamable-http'), { latencyMs: 12, ...fields });
}

async function histogramValues(metrics: GatewayMetrics, name: string) {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Array<{ metricName?: string; labels: Record<string, string | number>; value: number }>;
}

async function parsed(metrics: GatewayMetrics) {
  return parsePrometheusTextFormat(await metrics.text());
}

describe('gateway metrics from call records', () => {
  it('counts calls by method, target, tool, agent and outcome, and times them', async () => {
    const { metrics } = setup();
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: 'claude' }));
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: 'claude', latencyMs: 300 }));
    metrics.onRecord(call('tools/call', { name: 'add', target: 'alpha', outcome: 'upstream_error', errorType: 'rpc_-32603' }));
    metrics.onRecord(call('tools/list'));
    metrics.onRecord(call('notifications/initialized', { outcome: 'accepted' }, undefined));
    const m = await parsed(metrics);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', target: 'alpha', tool: 'echo', agent: 'claude', outcome: 'ok' })).toBe(2);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', tool: 'add', outcome: 'upstream_error', agent: '' })).toBe(1);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/list', target: '', tool: '' })).toBe(1);
    expect(total(m, 'gatehouse_calls_total', { method: 'notifications/initialized', outcome: 'accepted' })).toBe(1);
    expect(total(m, 'gatehouse_call_errors_total', { method: 'tools/call', target: 'alpha', error_type: 'rpc_-32603' })).toBe(1);
    expect(m.find((f) => f.name === 'gatehouse_call_duration_seconds')?.type).toBe('HISTOGRAM');
    // The text parser drops the labels of labelled histograms (its issue #13), so the buckets
    // are read from prom-client's own values.
    const histogram = await histogramValues(metrics, 'gatehouse_call_duration_seconds');
    const echo = (name: string, le?: number) => histogram.find((v) => v.metricName === name && v.labels['tool'] === 'echo' && (le === undefined || v.labels['le'] === le))?.value;
    expect(echo('gatehouse_call_duration_seconds_count')).toBe(2);
    expect(echo('gatehouse_call_duration_seconds_sum')).toBeCloseTo(0.312, 6);
    expect(echo('gatehouse_call_duration_seconds_bucket', 0.025)).toBe(1);
    expect(echo('gatehouse_call_duration_seconds_bucket', 0.5)).toBe(2);
    // Notifications have no latency to speak of.
    expect(histogram.some((v) => v.labels['method'] === 'notifications/initialized')).toBe(false);
  });

  it('bounds the agent label by the allow-list, whatever the agent population', async () => {
    const { metrics, state } = setup();
    for (let i = 0; i < 500; i++) metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: `agent-${i}` }));
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: 'cursor' }));
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha' }));
    let m = await parsed(metrics);
    const agents = new Set(samples(m, 'gatehouse_calls_total').map((s) => s.labels?.['agent'] ?? ''));
    expect([...agents].sort()).toEqual(['', 'cursor', 'other']);
    expect(total(m, 'gatehouse_calls_total', { agent: 'other' })).toBe(500);
    // A reload that allows a new agent takes effect on the next record.
    state.agentLabels = ['agent-7'];
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: 'agent-7' }));
    metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', agent: 'cursor' }));
    m = await parsed(metrics);
    expect(total(m, 'gatehouse_calls_total', { agent: 'agent-7' })).toBe(1);
    expect(total(m, 'gatehouse_calls_total', { agent: 'other' })).toBe(501);
  });

  it('bounds tool, method and error labels to what config, catalog and the error table know', async () => {
    const { metrics } = setup();
    for (let i = 0; i < 50; i++) {
      metrics.onRecord(call('tools/call', { name: `made-up-${i}`, outcome: 'error', errorType: 'tool_not_found' }));
      metrics.onRecord(call(`vendor/method-${i}`, { outcome: 'error', errorType: 'method_not_found' }));
      metrics.onRecord(call('tools/call', { name: 'echo', target: 'alpha', outcome: 'upstream_error', errorType: `upstream-invented-${i}` }));
    }
    const m = await parsed(metrics);
    expect(total(m, 'gatehouse_calls_total', { method: 'tools/call', tool: 'other' })).toBe(50);
    expect(total(m, 'gatehouse_calls_total', { method: 'other' })).toBe(50);
    expect(samples(m, 'gatehouse_calls_total')).toHaveLength(3);
    expect(total(m, 'gatehouse_call_errors_total', { error_type: 'tool_not_found' })).toBe(50);
    expect(total(m, 'gatehouse_call_errors_total', { target: 'alpha', error_type: 'other' })).toBe(50);
    expect(errorTypeLabel('rpc_-32602')).toBe('rpc_-32602');
    expect(errorTypeLabel('rpc_12345')).toBe('other');
    expect(errorTypeLabel('upstream_timeout')).toBe('upstream_timeout');
  });

  it('reads upstream state, restarts and sessions when scraped', async () => {
    const { metrics, state } = setup();
    let m = await parsed(metrics);
    expect(total(m, 'gatehouse_upstream_up', { target: 'alpha' })).toBe(1);
    expect(total(m, 'gatehouse_upstream_up', { target: 'beta' })).toBe(0);
    expect(total(m, 'gatehouse_upstream_state', { target: 'beta', state: 'reconnecting' })).toBe(1);
    expect(total(m, 'gatehouse_upstream_state', { target: 'beta', state: 'ready' })).toBe(0);
    expect(total(m, 'gatehouse_upstream_restarts_total', { target: 'beta' })).toBe(4);
    expect(total(m, 'gatehouse_upstream_in_flight', { target: 'alpha' })).toBe(2);
    expect(total(m, 'gatehouse_sessions')).toBe(3);
    state.sessions = 5;
    m = await parsed(metrics);
    expect(total(m, 'gatehouse_sessions')).toBe(5);
    // Scraping twice must not double the restart counter (it is copied, not added).
    expect(total(m, 'gatehouse_upstream_restarts_total', { target: 'beta' })).toBe(4);
  });

  it('takes audit write latency and queue depth from the audit writer', async () => {
    const { metrics } = setup();
    metrics.observeAuditWrite(3);
    metrics.observeAuditWrite(40);
    metrics.setAuditQueueDepth(17);
    const m = await parsed(metrics);
    const [write] = samples(m, 'gatehouse_audit_write_seconds');
    expect(write?.count).toBe('2');
    expect(write?.buckets?.['0.005']).toBe('1');
    expect(write?.buckets?.['0.05']).toBe('2');
    expect(total(m, 'gatehouse_audit_queue_depth')).toBe(17);
  });

  it('never throws into the emit loop', () => {
    const metrics = new GatewayMetrics({
      targets: () => [],
      sessions: () => 0,
      isTool: () => {
        throw new Error('catalog defect');
      },
      agentLabels: () => [],
    });
    expect(() => metrics.onRecord(call('tools/call', { name: 'x' }))).not.toThrow();
  });
});
