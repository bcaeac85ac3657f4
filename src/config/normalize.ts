/**
 * Normalization: a pure function from a validated config (plus the few environment facts it
 * depends on) to the fully explicit config the snapshot compiles. Golden-tested.
 */
import path from 'node:path';
import type { GatehouseConfig } from './schema.ts';
import type { ConfigIssue } from './load.ts';
import { telemetryIssues } from './telemetry-schema.ts';

export interface NormalizeEnv {
  /** Directory of the config file: relative `cwd` of stdio targets resolve against it. */
  configDir: string;
  /** `GATEHOUSE_PORT`, when set: overrides `listener.port`. */
  port?: string | undefined;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function normalizeConfig(input: GatehouseConfig, env: NormalizeEnv): { config: GatehouseConfig; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const listener = { ...input.listener };
  if (env.port !== undefined && env.port !== '') {
    const port = Number(env.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      issues.push({ path: 'listener.port', reason: `GATEHOUSE_PORT must be a port number, got "${env.port}"` });
    } else {
      listener.port = port;
    }
  }
  if (listener.path.length > 1 && listener.path.endsWith('/')) listener.path = listener.path.slice(0, -1);

  // Security: an unauthenticated gateway on a routable address hands every tool to anyone
  // who can reach it. Until an auth mode is configured, only loopback binds are allowed.
  if (input.auth.mode === 'none' && !isLoopbackHost(listener.host)) {
    issues.push({
      path: 'listener.host',
      reason: `binding ${listener.host} without authentication is refused; bind 127.0.0.1 or configure auth`,
    });
  }

  // The admin API (metrics today, audit rows and break-glass later) is at least as sensitive.
  if (input.auth.mode === 'none' && input.admin.enabled && !isLoopbackHost(input.admin.host)) {
    issues.push({
      path: 'admin.host',
      reason: `binding the admin listener to ${input.admin.host} without authentication is refused; bind 127.0.0.1 or configure auth`,
    });
  }

  const targets: GatehouseConfig['targets'] = {};
  for (const name of Object.keys(input.targets).sort()) {
    const target = input.targets[name]!;
    if (target.transport === 'stdio') {
      targets[name] = { ...target, cwd: target.cwd === undefined ? undefined : path.resolve(env.configDir, target.cwd) };
    } else {
      targets[name] = target;
    }
  }
  if (Object.keys(targets).length === 0) issues.push({ path: 'targets', reason: 'at least one target is required' });

  for (const [name, toolset] of Object.entries(input.toolsets)) {
    toolset.tools.forEach((selector, i) => {
      const slash = selector.indexOf('/');
      if (slash > 0 && !(selector.slice(0, slash) in targets)) {
        issues.push({ path: `toolsets.${name}.tools.${i}`, reason: `unknown target "${selector.slice(0, slash)}"` });
      }
    });
  }

  issues.push(...telemetryIssues(input.telemetry, new Set(Object.keys(targets))));

  // File paths in the config are relative to the config file, like a target's cwd.
  const audit = input.audit.spool === undefined ? input.audit : { ...input.audit, spool: { ...input.audit.spool, path: path.resolve(env.configDir, input.audit.spool.path) } };

  const storage = input.storage.driver === 'sqlite' ? { ...input.storage, path: path.resolve(env.configDir, input.storage.path) } : input.storage;

  return { config: { ...input, listener, targets, audit, storage }, issues };
}
