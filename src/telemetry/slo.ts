/**
 * SLOs: per target or tool, an availability objective and/or a p95 latency objective over a
 * compliance window. Burn rates come from call records (a record subscriber) over sliding
 * windows read with the injected clock; they are exposed as metrics and through the admin
 * API (`/slos`), and a webhook gets a JSON alert when the budget burns faster than configured.
 *
 * Alerting is multi-window (Google SRE workbook, "Alerting on SLOs"): it fires when both the
 * long and the short alert window burn faster than `rate` (the short one makes it reset fast
 * once the burn stops). De-duplication: one `firing` notice when the condition starts, one
 * `resolved` when it ends, and at most one notice per short window per objective, however
 * many calls arrive; a failed delivery is retried on the periodic evaluation, not per call.
 *
 * What counts: requests only (notifications and cancelled calls are not eligible). A call is
 * bad for availability when the gateway or the upstream failed it (an error type whose HTTP
 * status is 5xx, or an upstream JSON-RPC error other than the client-fault codes); a client's
 * own mistake (unknown tool, invalid params) is not the service's unavailability. Latency
 * counts successful calls: bad when slower than `latencyP95Ms` (budget 5%).
 */
import { isDeepStrictEqual } from 'node:util';
import { Gauge, type Registry } from 'prom-client';
import type { Clock, TimerHandle } from '../clock.ts';
import { durationMs, type SloConfig } from '../config/telemetry-schema.ts';
import { ERROR_TABLE } from '../protocol/errors.ts';
import type { CallRecord } from './call-record.ts';
import { SlidingCounts } from './slo-window.ts';

export type ObjectiveKind = 'availability' | 'latency';

/** One objective's state, as `/slos` shows it and the metrics expose it. */
export interface ObjectiveStatus {
  objective: ObjectiveKind;
  /** 0.999 for availability; 0.95 (share of calls within `thresholdMs`) for latency. */
  target: number;
  thresholdMs?: number;
  /** Eligible and bad calls over the compliance window. */
  calls: number;
  bad: number;
  /** 1 = untouched, 0 = spent, negative = overspent. */
  errorBudgetRemaining: number;
  burnRates: Array<{ window: string; value: number }>;
  alert?: { rate: number; firing: boolean; lastNotifiedAt: string | undefined };
}

export interface SloStatus {
  name: string;
  target: string | undefined;
  tool: string | undefined;
  window: string;
  objectives: ObjectiveStatus[];
}

/** The JSON body POSTed to an SLO's webhook. */
export interface SloAlert {
  kind: 'gatehouse.slo.burn_rate';
  status: 'firing' | 'resolved';
  slo: string;
  objective: ObjectiveKind;
  objectiveTarget: number;
  target: string | undefined;
  tool: string | undefined;
  window: string;
  threshold: number;
  burnRates: Record<string, number>;
  errorBudgetRemaining: number;
  at: string;
}

export interface SloMonitorDeps {
  clock: Clock;
  /** Delivers an alert; rejects when the webhook did not take it. Default: HTTP POST. */
  send?: (url: string, alert: SloAlert, signal: AbortSignal) => Promise<void>;
  /** A webhook delivery failed (for the log). */
  onDeliveryError?: (slo: string, error: unknown) => void;
}

const SERVER_STATUS = new Map<string, number>(Object.values(ERROR_TABLE).map((spec) => [spec.type, spec.http]));
/** JSON-RPC codes that say the request was wrong, not that the service failed. */
const CLIENT_FAULT_CODES = new Set(['rpc_-32700', 'rpc_-32600', 'rpc_-32601', 'rpc_-32602', 'rpc_-32002', 'rpc_-32020', 'rpc_-32021', 'rpc_-32022', 'rpc_-32800']);

/** Whether a failed call counts against availability (see the module doc). */
export function isServiceFault(record: Readonly<CallRecord>): boolean {
  if (record.outcome !== 'error' && record.outcome !== 'upstream_error') return false;
  const type = record.errorType ?? '';
  const status = SERVER_STATUS.get(type);
  if (status !== undefined) return status >= 500;
  return record.outcome === 'error' || !CLIENT_FAULT_CODES.has(type);
}

/** `3600000` → `1h`: the largest unit that divides the duration. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const DELIVERY_TIMEOUT_MS = 5_000;

interface Objective {
  readonly kind: ObjectiveKind;
  readonly target: number;
  readonly budget: number;
  readonly thresholdMs: number | undefined;
  /** The compliance window first, then the alert windows (deduplicated by length). */
  readonly windows: ReadonlyMap<number, SlidingCounts>;
  firing: boolean;
  lastNotifiedAt: number | undefined;
  /** A notice whose delivery failed, retried at the next periodic evaluation. */
  retry: 'firing' | 'resolved' | undefined;
}

interface TrackedSlo {
  readonly config: SloConfig;
  readonly windowMs: number;
  readonly longMs: number;
  readonly shortMs: number;
  readonly objectives: Objective[];
}

function track(config: SloConfig): TrackedSlo {
  const windowMs = durationMs(config.window);
  const alert = config.burnRateAlert;
  const longMs = alert?.longWindow === undefined ? Math.min(windowMs, 3_600_000) : durationMs(alert.longWindow);
  const shortMs = alert?.shortWindow === undefined ? longMs / 12 : durationMs(alert.shortWindow);
  const objective = (kind: ObjectiveKind, target: number, thresholdMs: number | undefined): Objective => {
    const windows = new Map<number, SlidingCounts>();
    for (const ms of alert === undefined ? [windowMs] : [windowMs, longMs, shortMs]) if (!windows.has(ms)) windows.set(ms, new SlidingCounts(ms));
    return { kind, target, budget: 1 - target, thresholdMs, windows, firing: false, lastNotifiedAt: undefined, retry: undefined };
  };
  const objectives: Objective[] = [];
  if (config.availability !== undefined) objectives.push(objective('availability', config.availability, undefined));
  if (config.latencyP95Ms !== undefined) objectives.push(objective('latency', 0.95, config.latencyP95Ms));
  return { config, windowMs, longMs, shortMs, objectives };
}

function burnRate(counts: { total: number; bad: number }, budget: number): number {
  return counts.total === 0 ? 0 : counts.bad / counts.total / budget;
}

async function postJson(url: string, alert: SloAlert, signal: AbortSignal): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alert), signal });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}`);
}

export class SloMonitor {
  private readonly deps: SloMonitorDeps;
  private slos: TrackedSlo[] = [];
  private timer: TimerHandle | undefined;
  private readonly deliveries = new Set<Promise<void>>();
  private readonly lifetime = new AbortController();
  private closed = false;

  constructor(deps: SloMonitorDeps) {
    this.deps = deps;
  }

  /** Apply the SLOs of a (new) config; an SLO whose config did not change keeps its counts. */
  configure(configs: readonly SloConfig[]): void {
    const previous = new Map(this.slos.map((s) => [s.config.name, s]));
    this.slos = configs.map((config) => {
      const kept = previous.get(config.name);
      return kept !== undefined && isDeepStrictEqual(kept.config, config) ? kept : track(structuredClone(config));
    });
    this.schedule();
  }

  /** Call-record subscriber. Never throws. */
  readonly onRecord = (record: Readonly<CallRecord>): void => {
    if (this.slos.length === 0 || record.downstreamId === undefined || record.outcome === 'cancelled' || record.outcome === 'accepted') return;
    try {
      const now = this.deps.clock.now();
      for (const slo of this.slos) {
        if (!matches(slo.config, record)) continue;
        for (const o of slo.objectives) {
          if (o.kind === 'latency' && record.outcome !== 'ok') continue;
          const bad = o.kind === 'availability' ? isServiceFault(record) : record.latencyMs > o.thresholdMs!;
          for (const counts of o.windows.values()) counts.add(now, bad);
          this.evaluate(slo, o, now, false);
        }
      }
    } catch {
      // An SLO defect loses a sample, never a call or another subscriber's record.
    }
  };

  /** Every SLO's current burn rates and budgets. */
  status(): SloStatus[] {
    const now = this.deps.clock.now();
    return this.slos.map((slo) => ({
      name: slo.config.name,
      target: slo.config.target,
      tool: slo.config.tool,
      window: slo.config.window,
      objectives: slo.objectives.map((o) => {
        const whole = o.windows.get(slo.windowMs)!.read(now);
        const alert = slo.config.burnRateAlert;
        return {
          objective: o.kind,
          target: o.target,
          ...(o.thresholdMs === undefined ? {} : { thresholdMs: o.thresholdMs }),
          calls: whole.total,
          bad: whole.bad,
          errorBudgetRemaining: 1 - burnRate(whole, o.budget),
          burnRates: [...o.windows].map(([ms, counts]) => ({ window: formatDuration(ms), value: burnRate(counts.read(now), o.budget) })),
          ...(alert === undefined
            ? {}
            : { alert: { rate: alert.rate, firing: o.firing, lastNotifiedAt: o.lastNotifiedAt === undefined ? undefined : new Date(o.lastNotifiedAt).toISOString() } }),
        };
      }),
    }));
  }

  /** Resolves once every webhook delivery started so far has settled (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.deliveries.size > 0) await Promise.allSettled([...this.deliveries]);
  }

  /** Stop evaluating and abandon deliveries in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.lifetime.abort();
    await this.idle();
  }

  /** Re-evaluate every alert (burn rates fall while no calls arrive) and retry failed deliveries. */
  private tick(): void {
    this.timer = undefined;
    const now = this.deps.clock.now();
    for (const slo of this.slos) for (const o of slo.objectives) this.evaluate(slo, o, now, true);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined) return;
    const alerting = this.slos.filter((s) => s.config.burnRateAlert !== undefined);
    if (alerting.length === 0) return;
    // Often enough to follow the short window (one of its 60 buckets), between 1 s and 1 min.
    const every = Math.min(60_000, Math.max(1_000, Math.min(...alerting.map((s) => s.shortMs / 60))));
    this.timer = this.deps.clock.setTimeout(() => this.tick(), every);
  }

  private evaluate(slo: TrackedSlo, o: Objective, now: number, periodic: boolean): void {
    const alert = slo.config.burnRateAlert;
    if (alert === undefined) return;
    const long = o.windows.get(slo.longMs)!.read(now);
    const burning = long.total >= alert.minCalls && burnRate(long, o.budget) > alert.rate && burnRate(o.windows.get(slo.shortMs)!.read(now), o.budget) > alert.rate;
    if (burning !== o.firing) {
      // Anti-flap: at most one notice per short window, so a rate hovering at the threshold
      // does not page once per call. The next evaluation picks up a change held back here.
      if (o.lastNotifiedAt !== undefined && now - o.lastNotifiedAt < slo.shortMs) return;
      o.firing = burning;
      o.lastNotifiedAt = now;
      this.deliver(slo, o, burning ? 'firing' : 'resolved', now);
    } else if (periodic && o.retry !== undefined) {
      this.deliver(slo, o, o.retry, now);
    }
  }

  private deliver(slo: TrackedSlo, o: Objective, status: 'firing' | 'resolved', now: number): void {
    const alert = slo.config.burnRateAlert!;
    o.retry = undefined;
    const burnRates: Record<string, number> = {};
    for (const ms of [slo.longMs, slo.shortMs]) burnRates[formatDuration(ms)] = burnRate(o.windows.get(ms)!.read(now), o.budget);
    const body: SloAlert = {
      kind: 'gatehouse.slo.burn_rate',
      status,
      slo: slo.config.name,
      objective: o.kind,
      objectiveTarget: o.target,
      target: slo.config.target,
      tool: slo.config.tool,
      window: slo.config.window,
      threshold: alert.rate,
      burnRates,
      errorBudgetRemaining: 1 - burnRate(o.windows.get(slo.windowMs)!.read(now), o.budget),
      at: new Date(now).toISOString(),
    };
    const send = this.deps.send ?? postJson;
    const signal = AbortSignal.any([this.lifetime.signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]);
    const delivery = send(alert.webhook, body, signal).then(
      () => undefined,
      (err: unknown) => {
        // Only the latest state is worth retrying: a newer notice supersedes this one.
        if (!this.closed && o.firing === (status === 'firing')) o.retry = status;
        this.deps.onDeliveryError?.(slo.config.name, err);
      },
    );
    this.deliveries.add(delivery);
    void delivery.finally(() => this.deliveries.delete(delivery));
  }
}

function matches(config: SloConfig, record: Readonly<CallRecord>): boolean {
  if (config.target !== undefined && record.target !== config.target) return false;
  if (config.tool !== undefined && (record.method !== 'tools/call' || record.name !== config.tool)) return false;
  return true;
}

/** The SLO gauges, read from the monitor when scraped. */
export function registerSloMetrics(registry: Registry, monitor: SloMonitor): void {
  const registers = [registry];
  const read = (fill: (status: SloStatus, o: ObjectiveStatus) => void) => () => {
    for (const status of monitor.status()) for (const o of status.objectives) fill(status, o);
  };
  new Gauge({
    name: 'gatehouse_slo_burn_rate',
    help: 'How many times faster than sustainable the error budget burns over a window (1 = exactly spends it by the end of the SLO window).',
    labelNames: ['slo', 'objective', 'window'],
    registers,
    collect() {
      this.reset();
      read((s, o) => {
        for (const b of o.burnRates) this.set({ slo: s.name, objective: o.objective, window: b.window }, b.value);
      })();
    },
  });
  new Gauge({
    name: 'gatehouse_slo_error_budget_remaining',
    help: 'Share of the error budget left over the SLO window (1 = untouched, negative = overspent).',
    labelNames: ['slo', 'objective'],
    registers,
    collect() {
      this.reset();
      read((s, o) => this.set({ slo: s.name, objective: o.objective }, o.errorBudgetRemaining))();
    },
  });
  new Gauge({
    name: 'gatehouse_slo_alert_firing',
    help: '1 while an SLO objective\'s burn-rate alert is firing.',
    labelNames: ['slo', 'objective'],
    registers,
    collect() {
      this.reset();
      read((s, o) => {
        if (o.alert !== undefined) this.set({ slo: s.name, objective: o.objective }, o.alert.firing ? 1 : 0);
      })();
    },
  });
}
