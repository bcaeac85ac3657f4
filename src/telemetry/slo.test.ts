import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { sloSchema, type SloConfig } from '../config/telemetry-schema.ts';
import { createCallRecord, type CallRecord } from './call-record.ts';
import { SlidingCounts } from './slo-window.ts';
import { SloMonitor, formatDuration, isServiceFault, type SloAlert } from './slo.ts';

/** A start aligned on the hour, so bucket edges are at round times. */
const HOUR = 3_600_000;
const START = 472_222 * HOUR;

function call(fields: Partial<CallRecord> = {}): CallRecord {
  return Object.assign(createCallRecord('tools/call', 1, 0, 'streamable-http'), { name: 'search', target: 'web', latencyMs: 20, ...fields });
}
const ok = (fields: Partial<CallRecord> = {}) => call(fields);
const failed = (errorType = 'upstream_timeout') => call({ outcome: 'error', errorType });

function slo(input: Record<string, unknown>): SloConfig {
  return sloSchema.parse(input);
}

describe('sliding window counts', () => {
  it('counts events inside the window and lets whole buckets expire', () => {
    const w = new SlidingCounts(60_000, 60); // 1 s buckets
    w.add(START, false);
    w.add(START + 500, true);
    w.add(START + 30_000, false);
    expect(w.read(START + 30_000)).toEqual({ total: 3, bad: 1 });
    expect(w.read(START + 59_999)).toEqual({ total: 3, bad: 1 });
    // The first bucket [START, START+1s) leaves once the window has moved a whole minute on.
    expect(w.read(START + 60_000)).toEqual({ total: 1, bad: 0 });
    expect(w.read(START + 90_000)).toEqual({ total: 0, bad: 0 });
    // A long silence clears everything, however long.
    w.add(START + 100 * HOUR, true);
    expect(w.read(START + 100 * HOUR)).toEqual({ total: 1, bad: 1 });
  });

  it('formats windows the way config writes them', () => {
    expect(formatDuration(HOUR)).toBe('1h');
    expect(formatDuration(30 * 86_400_000)).toBe('30d');
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(7_500)).toBe('7500ms');
  });
});

describe('which failures spend the availability budget', () => {
  it('counts the gateway\'s and the upstream\'s faults, not the client\'s', () => {
    expect(isServiceFault(failed('upstream_timeout'))).toBe(true);
    expect(isServiceFault(failed('upstream_unavailable'))).toBe(true);
    expect(isServiceFault(failed('internal'))).toBe(true);
    expect(isServiceFault(failed('tool_not_found'))).toBe(false);
    expect(isServiceFault(failed('invalid_params'))).toBe(false);
    expect(isServiceFault(call({ outcome: 'upstream_error', errorType: 'rpc_-32603' }))).toBe(true);
    expect(isServiceFault(call({ outcome: 'upstream_error', errorType: 'rpc_-32602' }))).toBe(false);
    expect(isServiceFault(ok())).toBe(false);
  });
});

describe('SLO burn rates', () => {
  let clock: ManualClock;
  let monitor: SloMonitor;

  beforeEach(() => {
    clock = new ManualClock(START);
    monitor = new SloMonitor({ clock, send: async () => undefined });
  });

  it('computes burn rates and the error budget over each window', () => {
    monitor.configure([slo({ name: 'web-avail', target: 'web', availability: 0.99, window: '30d', burnRateAlert: { rate: 14.4, webhook: 'http://127.0.0.1:1/x' } })]);
    for (let i = 0; i < 95; i++) monitor.onRecord(ok());
    for (let i = 0; i < 5; i++) monitor.onRecord(failed());
    // Not this SLO's: another target, a client fault, a cancelled call, a notification.
    monitor.onRecord(call({ target: 'other', outcome: 'error', errorType: 'upstream_timeout' }));
    monitor.onRecord(failed('tool_not_found'));
    monitor.onRecord(call({ outcome: 'cancelled' }));
    monitor.onRecord(Object.assign(createCallRecord('notifications/initialized', undefined, 0, 'stdio'), { outcome: 'accepted' as const }));

    let [status] = monitor.status();
    const availability = status!.objectives[0]!;
    expect(availability).toMatchObject({ objective: 'availability', target: 0.99, calls: 101, bad: 5 });
    // 5 bad of 101 against a 1% budget: burning 4.95× too fast, in every window.
    const burn = (5 / 101) / 0.01;
    expect(availability.burnRates.map((b) => b.window)).toEqual(['30d', '1h', '5m']);
    for (const b of availability.burnRates) expect(b.value).toBeCloseTo(burn, 10);
    expect(availability.errorBudgetRemaining).toBeCloseTo(1 - burn, 10);

    // Ten minutes on, the short window is empty; an hour on, the long one too; the 30-day one still counts them.
    clock.advance(10 * 60_000);
    [status] = monitor.status();
    expect(status!.objectives[0]!.burnRates.find((b) => b.window === '5m')!.value).toBe(0);
    expect(status!.objectives[0]!.burnRates.find((b) => b.window === '1h')!.value).toBeCloseTo(burn, 10);
    clock.advance(HOUR);
    [status] = monitor.status();
    expect(status!.objectives[0]!.burnRates.find((b) => b.window === '1h')!.value).toBe(0);
    expect(status!.objectives[0]!.burnRates.find((b) => b.window === '30d')!.value).toBeCloseTo(burn, 10);
  });

  it('counts latency against p95: successful calls slower than the threshold', () => {
    monitor.configure([slo({ name: 'fast-search', tool: 'search', latencyP95Ms: 100, window: '1h' })]);
    for (let i = 0; i < 90; i++) monitor.onRecord(ok({ latencyMs: 40 }));
    for (let i = 0; i < 10; i++) monitor.onRecord(ok({ latencyMs: 250 }));
    monitor.onRecord(failed()); // a failure is availability's business, not latency's
    monitor.onRecord(ok({ name: 'other-tool', latencyMs: 900 }));
    const latency = monitor.status()[0]!.objectives[0]!;
    expect(latency).toMatchObject({ objective: 'latency', target: 0.95, thresholdMs: 100, calls: 100, bad: 10 });
    // 10% slow against a 5% budget.
    expect(latency.burnRates).toEqual([{ window: '1h', value: expect.closeTo(2, 10) }]);
  });

  it('keeps the counts of an unchanged SLO across a reload and starts a changed one afresh', () => {
    const a = slo({ name: 'a', availability: 0.9, window: '1h' });
    monitor.configure([a, slo({ name: 'b', availability: 0.9, window: '1h' })]);
    monitor.onRecord(failed());
    monitor.configure([a, slo({ name: 'b', availability: 0.95, window: '1h' })]);
    expect(monitor.status().map((s) => s.objectives[0]!.bad)).toEqual([1, 0]);
  });
});

describe('SLO burn-rate alerts', () => {
  let server: Server;
  let url: string;
  const received: SloAlert[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as SloAlert);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    received.length = 0;
  });

  it('POSTs one alert when the budget burns too fast, not one per call, and one when it stops', async () => {
    const clock = new ManualClock(START);
    const monitor = new SloMonitor({ clock });
    monitor.configure([slo({ name: 'web-avail', target: 'web', availability: 0.99, window: '30d', burnRateAlert: { rate: 10, webhook: url, minCalls: 20 } })]);
    try {
      for (let i = 0; i < 100; i++) monitor.onRecord(ok());
      // 30 failures: from the 12th on, 12/112 ≈ 10.7% ≥ 10 × the 1% budget, in both windows.
      for (let i = 0; i < 30; i++) monitor.onRecord(failed());
      await monitor.idle();
      expect(received).toHaveLength(1);
      expect(received[0]).toMatchObject({
        kind: 'gatehouse.slo.burn_rate',
        status: 'firing',
        slo: 'web-avail',
        objective: 'availability',
        objectiveTarget: 0.99,
        target: 'web',
        window: '30d',
        threshold: 10,
        at: new Date(START).toISOString(),
      });
      expect(received[0]!.burnRates['1h']).toBeGreaterThan(10);
      expect(received[0]!.burnRates['5m']).toBeGreaterThan(10);
      expect(monitor.status()[0]!.objectives[0]!.alert).toMatchObject({ rate: 10, firing: true });

      // Still burning: more failures and periodic evaluations send nothing new.
      for (let i = 0; i < 50; i++) monitor.onRecord(failed());
      clock.advance(60_000);
      await monitor.idle();
      expect(received).toHaveLength(1);

      // The failures stop: once the short window has slid past them the alert resolves, once.
      for (let i = 0; i < 10; i++) {
        clock.advance(60_000);
        monitor.onRecord(ok());
      }
      await monitor.idle();
      expect(received.map((a) => a.status)).toEqual(['firing', 'resolved']);
      expect(monitor.status()[0]!.objectives[0]!.alert?.firing).toBe(false);
    } finally {
      await monitor.close();
    }
  });

  it('does not alert below the minimum call count, nor on a burst the long window absorbs', async () => {
    const clock = new ManualClock(START);
    const config = [slo({ name: 'quiet', availability: 0.99, window: '30d', burnRateAlert: { rate: 10, webhook: url, minCalls: 20 } })];
    const few = new SloMonitor({ clock });
    few.configure(config);
    for (let i = 0; i < 5; i++) few.onRecord(failed());
    await few.close();
    expect(received).toHaveLength(0);

    const monitor = new SloMonitor({ clock });
    monitor.configure(config);
    try {
      // 1000 good calls half an hour back keep the long window under the rate when a burst comes.
      for (let i = 0; i < 1000; i++) monitor.onRecord(ok());
      clock.advance(30 * 60_000);
      for (let i = 0; i < 20; i++) monitor.onRecord(failed());
      await monitor.idle();
      expect(monitor.status()[0]!.objectives[0]!.burnRates.find((b) => b.window === '5m')!.value).toBeGreaterThan(10);
      expect(received).toHaveLength(0);
    } finally {
      await monitor.close();
    }
  });

  it('retries a failed delivery on the periodic evaluation, not per call', async () => {
    const clock = new ManualClock(START);
    const attempts: string[] = [];
    let failing = true;
    const monitor = new SloMonitor({
      clock,
      send: async (_url, alert) => {
        attempts.push(alert.status);
        if (failing) throw new Error('webhook down');
      },
    });
    monitor.configure([slo({ name: 'r', availability: 0.99, window: '1h', burnRateAlert: { rate: 2, webhook: url, minCalls: 1 } })]);
    try {
      for (let i = 0; i < 10; i++) monitor.onRecord(failed());
      await monitor.idle();
      expect(attempts).toEqual(['firing']);
      for (let i = 0; i < 10; i++) monitor.onRecord(failed());
      await monitor.idle();
      expect(attempts).toEqual(['firing']);
      failing = false;
      // The evaluation period follows the short window: 5 min / 60 = 5 s.
      clock.advance(5_000);
      await monitor.idle();
      expect(attempts).toEqual(['firing', 'firing']);
      clock.advance(5_000);
      await monitor.idle();
      expect(attempts).toEqual(['firing', 'firing']);
    } finally {
      await monitor.close();
    }
    expect(clock.pending).toBe(0);
  });
});
