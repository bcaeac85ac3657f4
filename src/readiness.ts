/**
 * `GET /readyz`: whether this gateway should receive traffic, with the per-target detail an
 * operator needs to see why not.
 */
import type { TargetHealth } from './upstream/registry.ts';

export function readiness(targets: readonly TargetHealth[], sessions: number, configVersion: number): { ready: boolean; body: unknown } {
  const enabled = targets.filter((t) => t.state !== 'disabled');
  // Ready once config is loaded and some enabled target serves: one broken target must not
  // pull the whole gateway out of a load balancer. Per-target states are in the body.
  const ready = enabled.length === 0 || enabled.some((t) => t.state === 'ready');
  return {
    ready,
    body: {
      status: ready ? 'ready' : 'not_ready',
      configVersion,
      sessions,
      targets: targets.map((t) => ({ name: t.name, state: t.state, transport: t.transport, era: t.era, protocolVersion: t.protocolVersion, serverInfo: t.serverInfo, tools: t.tools, restarts: t.restarts, lastError: t.lastError })),
    },
  };
}
