/**
 * The `telemetry` section of the config: metrics, tracing and SLOs. Kept beside schema.ts
 * (which composes it) so the telemetry keys and their defaults read in one place.
 */
import { z } from 'zod';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

/** A duration such as `500ms`, `30s`, `5m`, `1h`, `30d`. */
export const durationSchema = z.string().regex(/^[1-9][0-9]*(ms|s|m|h|d)$/, 'a duration such as 30s, 5m, 1h or 30d');

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a duration that `durationSchema` accepted. */
export function durationMs(text: string): number {
  const match = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (match === null) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

const metricsSchema = z.strictObject({
  /** Serve `/metrics` on the admin listener and keep the counters behind it. */
  enabled: z.boolean().default(true),
  /**
   * Agents that get their own value of the `agent` label; every other agent is counted as
   * `other`, so an agent population cannot blow up the series count.
   */
  agentLabels: z.array(z.string().min(1).max(128)).max(1000).default([]),
});

const tracingSchema = z.strictObject({
  /**
   * OTLP/HTTP traces endpoint (JSON encoding), e.g. `http://127.0.0.1:4318/v1/traces`. Absent:
   * no spans are made; an agent's incoming trace id is still noted on the call record.
   */
  otlpEndpoint: z.url().optional(),
  /** Extra headers on every export (for example a collector's API key). */
  headers: z.record(z.string(), z.string()).default({}),
  serviceName: z.string().min(1).default('gatehouse'),
  /** Share of new traces kept; a call that continues an agent's trace follows its sampled flag. */
  sampleRatio: z.number().min(0).max(1).default(1),
});

const burnRateAlertSchema = z.strictObject({
  /** Alert when the error budget burns this many times faster than the window allows. */
  rate: z.number().positive(),
  /** Receives a JSON POST when the alert fires and when it resolves. */
  webhook: z.url(),
  /** The long alert window; default the SLO window, at most 1h. */
  longWindow: durationSchema.optional(),
  /** The short alert window (fast reset); default a twelfth of the long one. */
  shortWindow: durationSchema.optional(),
  /** Fewer calls than this in the long window never alert (one failure of two is not an incident). */
  minCalls: z.number().int().min(1).default(10),
});

export const sloSchema = z
  .strictObject({
    name: z.string().regex(NAME, 'SLO names are letters, digits, _ and -'),
    /** Only calls routed to this target. */
    target: z.string().optional(),
    /** Only `tools/call` of this exposed tool name. */
    tool: z.string().optional(),
    /** Share of calls that must not fail for the gateway's or the upstream's fault, e.g. 0.999. */
    availability: z.number().gt(0).lt(1).optional(),
    /** 95% of successful calls must complete within this many milliseconds. */
    latencyP95Ms: z.number().positive().optional(),
    /** The compliance window the error budget is spent over. */
    window: durationSchema.default('30d'),
    burnRateAlert: burnRateAlertSchema.optional(),
  })
  .refine((slo) => slo.availability !== undefined || slo.latencyP95Ms !== undefined, { message: 'an SLO needs availability or latencyP95Ms' });

export const telemetrySchema = z.strictObject({
  metrics: metricsSchema.prefault({}),
  tracing: tracingSchema.prefault({}),
  slos: z.array(sloSchema).default([]),
});

export type TelemetryConfig = z.output<typeof telemetrySchema>;
export type SloConfig = z.output<typeof sloSchema>;
export type TracingConfig = z.output<typeof tracingSchema>;

/** Cross-field checks the schema cannot express: SLO names, targets and window order. */
export function telemetryIssues(telemetry: TelemetryConfig, targets: ReadonlySet<string>): Array<{ path: string; reason: string }> {
  const issues: Array<{ path: string; reason: string }> = [];
  const seen = new Set<string>();
  telemetry.slos.forEach((slo, i) => {
    const at = `telemetry.slos.${i}`;
    if (seen.has(slo.name)) issues.push({ path: `${at}.name`, reason: `duplicate SLO name "${slo.name}"` });
    seen.add(slo.name);
    if (slo.target !== undefined && !targets.has(slo.target)) issues.push({ path: `${at}.target`, reason: `unknown target "${slo.target}"` });
    const alert = slo.burnRateAlert;
    if (alert === undefined) return;
    const window = durationMs(slo.window);
    const long = alert.longWindow === undefined ? Math.min(window, 3_600_000) : durationMs(alert.longWindow);
    const short = alert.shortWindow === undefined ? long / 12 : durationMs(alert.shortWindow);
    if (long > window) issues.push({ path: `${at}.burnRateAlert.longWindow`, reason: 'must not be longer than the SLO window' });
    if (short >= long) issues.push({ path: `${at}.burnRateAlert.shortWindow`, reason: 'must be shorter than the long window' });
  });
  return issues;
}
