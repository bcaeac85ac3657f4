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
import type { UpstreamCredential } from '../upstream-auth/upstream-credential.ts';

/** What the third auth tier adds to a transport (upstream-authorizer.ts builds both). */
export interface TransportCredentials {
  /** HTTP targets: the credential whose headers go on every request. */
  credential?: UpstreamCredential | undefined;
  /** stdio targets: secret environment variables, merged over the allow-listed ones. */
  secretEnv?: Readonly<Record<string, string>> | undefined;
  /**
   * Streamable HTTP: open the standalone GET stream (default true). A user's connection that
   * does not serve discovery has nobody to hand that stream's messages to.
   */
  standaloneStream?: boolean | undefined;
}

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

export function createTransport(target: TargetConfig, clock: Clock, sourceEnv: NodeJS.ProcessEnv = process.env, options: TransportCredentials = {}): UpstreamTransport {
  switch (target.transport) {
    case 'stdio':
      return createStdioTransport({
        command: target.command,
        args: target.args,
        cwd: target.cwd,
        // The secret last: a configured literal or allow-listed variable of the same name must not shadow it.
        env: options.secretEnv === undefined ? childEnvironment(target.envAllow, target.env, sourceEnv) : { ...childEnvironment(target.envAllow, target.env, sourceEnv), ...options.secretEnv },
        maxLineBytes: target.maxLineBytes,
        stopGraceMs: target.stopGraceMs,
        restart: target.restart,
        clock,
      });
    case 'streamable-http':
      return createStreamableHttpTransport({ url: target.url, headers: target.headers, connections: target.connections, clock, credential: options.credential, openStandaloneStream: options.standaloneStream });
    case 'sse':
      return createSseTransport({ url: target.url, headers: target.headers, clock, credential: options.credential });
  }
}
