/**
 * Admin routes that read telemetry: `GET /metrics` (Prometheus text exposition) and
 * `GET /slos` (burn rates and error budgets as JSON).
 */
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import type { SloMonitor } from '../telemetry/slo.ts';
import { sendJson } from '../downstream/http-answers.ts';
import type { AdminRoute } from './admin-listener.ts';

export function metricsRoute(metrics: GatewayMetrics): AdminRoute {
  return {
    method: 'GET',
    path: '/metrics',
    async handle(_req, res) {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
      res.end(text);
    },
  };
}

export function slosRoute(slos: SloMonitor): AdminRoute {
  return {
    method: 'GET',
    path: '/slos',
    handle(_req, res) {
      sendJson(res, 200, { slos: slos.status() }, { 'cache-control': 'no-store' });
    },
  };
}
