/**
 * The gateway's telemetry subscribers in one place: metrics, traces and SLOs, built from the
 * config, fed by call records, and read by the admin routes. The gateway composes this; no
 * stage ever calls it (the call runner only starts a call's span, forward.ts an attempt's).
 */
import type { Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { AdminRoute } from '../admin/admin-listener.ts';
import { metricsRoute, slosRoute } from '../admin/telemetry-routes.ts';
import type { CallRecordListener } from './call-record.ts';
import { GatewayMetrics, type MetricsSources } from './metrics.ts';
import { SloMonitor, registerSloMetrics } from './slo.ts';
import { createCallTracer, type CallTracer, type CallTracerOptions } from './tracing.ts';

export interface TelemetryDeps {
  config: GatehouseConfig;
  clock: Clock;
  sources: MetricsSources;
  /** An SLO webhook could not be reached (for the log). */
  onAlertDeliveryError(slo: string, error: unknown): void;
  tracing?: CallTracerOptions;
}

export class GatewayTelemetry {
  readonly metrics: GatewayMetrics;
  readonly tracer: CallTracer;
  readonly slos: SloMonitor;
  /** Call-record subscribers, in the order they run. */
  readonly listeners: CallRecordListener[];
  private readonly metricsEnabled: boolean;

  constructor(deps: TelemetryDeps) {
    const { telemetry } = deps.config;
    this.metricsEnabled = telemetry.metrics.enabled;
    this.metrics = new GatewayMetrics(deps.sources);
    // Tracing is set up once: an exporter change needs a restart (spans in flight belong to it).
    this.tracer = createCallTracer(telemetry.tracing, deps.tracing);
    this.slos = new SloMonitor({ clock: deps.clock, onDeliveryError: deps.onAlertDeliveryError });
    this.slos.configure(telemetry.slos);
    registerSloMetrics(this.metrics.registry, this.slos);
    this.listeners = [this.tracer.onRecord, this.slos.onRecord, ...(this.metricsEnabled ? [this.metrics.onRecord] : [])];
  }

  /** Routes for the admin listener. */
  adminRoutes(): AdminRoute[] {
    return [...(this.metricsEnabled ? [metricsRoute(this.metrics)] : []), slosRoute(this.slos)];
  }

  /** A new config: SLOs follow it (unchanged ones keep their counts); the agent allow-list is read per record. */
  reload(config: GatehouseConfig): void {
    this.slos.configure(config.telemetry.slos);
  }

  /** Flush spans and stop SLO evaluation. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.slos.close(), this.tracer.shutdown()]);
  }
}
