/**
 * The one place that maps a target's configured transport to a transport object. No other
 * file switches on transport kind.
 */
import type { Clock } from '../clock.ts';
import type { TargetConfig } from '../config/schema.ts';
import { createStdioTransport } from './stdio-transport.ts';
import { createStreamableHttpTransport } from './streamable-http-transport.ts';
import { createSseTransport } from './sse-transport.ts';
import type { UpstreamTransport } from './transport.ts';

/**
 * Build the child's environment from the allowlist: a stdio server sees only the variables
 * named in config, never the gateway's whole environment (which may hold its own secrets).
 */
export function childEnvironment(allow: readonly string[], literal: Record<string, string>, source: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of allow) {
    const value = source[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...literal };
}

export function createTransport(target: TargetConfig, clock: Clock, sourceEnv: NodeJS.ProcessEnv = process.env): UpstreamTransport {
  switch (target.transport) {
    case 'stdio':
      return createStdioTransport({
        command: target.command,
        args: target.args,
        cwd: target.cwd,
        env: childEnvironment(target.envAllow, target.env, sourceEnv),
        maxLineBytes: target.maxLineBytes,
        stopGraceMs: target.stopGraceMs,
        restart: target.restart,
        clock,
      });
    case 'streamable-http':
      return createStreamableHttpTransport({ url: target.url, headers: target.headers, connections: target.connections, clock });
    case 'sse':
      return createSseTransport({ url: target.url, headers: target.headers, clock });
  }
}
