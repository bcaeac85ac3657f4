/**
 * Normalization: a pure function from a validated config (plus the few environment facts it
 * depends on) to the fully explicit config the snapshot compiles. Golden-tested.
 */
import path from 'node:path';
import type { GatehouseConfig } from './schema.ts';
import type { ConfigIssue } from './load.ts';
import { telemetryIssues } from './telemetry-schema.ts';
import { credentialIssues } from './credential-issues.ts';

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

  // The admin API (metrics, audit rows, key rotation) has no authentication of its own yet:
  // agent credentials must not open it, so it stays on loopback whatever auth.mode says.
  if (input.admin.enabled && !isLoopbackHost(input.admin.host)) {
    issues.push({
      path: 'admin.host',
      reason: `binding the admin listener to ${input.admin.host} is refused: the admin API has no authentication yet; bind 127.0.0.1 (reach it through an SSH tunnel or a sidecar)`,
    });
  }

  const auth = { ...input.auth };
  if (input.auth.mode === 'oauth') issues.push(...authIssues(input, listener.host));
  if (auth.publicUrl !== undefined) {
    // The public URL is the base of the issuer and of every resource URL: no trailing slash.
    auth.publicUrl = auth.publicUrl.replace(/\/+$/, '');
    // Agents and browsers reach the gateway under its public name: that Host and Origin are
    // the gateway's own, so DNS-rebinding protection must accept them.
    try {
      const url = new URL(auth.publicUrl);
      listener.allowedHosts = [...new Set([...listener.allowedHosts, url.host.toLowerCase()])];
      listener.allowedOrigins = [...new Set([...listener.allowedOrigins, url.origin.toLowerCase()])];
    } catch {
      // The schema already checked it is a URL.
    }
  }
  if (listener.tls !== undefined) {
    const tls = listener.tls;
    listener.tls = {
      ...tls,
      certFile: path.resolve(env.configDir, tls.certFile),
      keyFile: path.resolve(env.configDir, tls.keyFile),
      clientCaFile: tls.clientCaFile === undefined ? undefined : path.resolve(env.configDir, tls.clientCaFile),
    };
    if (tls.requireClientCert && tls.clientCaFile === undefined) issues.push({ path: 'listener.tls.requireClientCert', reason: 'requireClientCert needs listener.tls.clientCaFile' });
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
  issues.push(...credentialIssues(input));

  // File paths in the config are relative to the config file, like a target's cwd.
  const audit = input.audit.spool === undefined ? input.audit : { ...input.audit, spool: { ...input.audit.spool, path: path.resolve(env.configDir, input.audit.spool.path) } };

  const storage = input.storage.driver === 'sqlite' ? { ...input.storage, path: path.resolve(env.configDir, input.storage.path) } : input.storage;

  return { config: { ...input, listener, auth, targets, audit, storage }, issues };
}

/** What `auth.mode: oauth` needs beyond the schema. */
function authIssues(input: GatehouseConfig, host: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { auth } = input;
  // Resource URLs and the issuer are derived from the public URL; a routable bind's own address
  // is rarely what agents use (proxies, DNS names), and a wrong audience locks everyone out.
  if (auth.publicUrl === undefined && !isLoopbackHost(host)) {
    issues.push({ path: 'auth.publicUrl', reason: `binding ${host} with auth.mode oauth needs auth.publicUrl (the URL agents use, e.g. https://mcp.example.com)` });
  }
  if (auth.publicUrl !== undefined) {
    const url = new URL(auth.publicUrl);
    // OAuth 2.1 §1.5: tokens travel over TLS, except to loopback during development.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      issues.push({ path: 'auth.publicUrl', reason: 'auth.publicUrl must be https (http only for a loopback address)' });
    }
    if (url.search !== '' || url.hash !== '') issues.push({ path: 'auth.publicUrl', reason: 'auth.publicUrl must not have a query or fragment' });
  }
  if (Object.keys(auth.mtls).length > 0 && input.listener.tls?.clientCaFile === undefined) {
    issues.push({ path: 'auth.mtls', reason: 'client certificates need listener.tls.clientCaFile' });
  }
  // Every tenant named anywhere must be declared: a typo would otherwise make an object that no
  // principal can ever reach (or a principal that sees nothing), silently.
  const named: Array<[string, string]> = [
    ...Object.entries(input.targets).map(([name, t]): [string, string] => [`targets.${name}.tenant`, t.tenant]),
    ...Object.entries(input.toolsets).map(([name, t]): [string, string] => [`toolsets.${name}.tenant`, t.tenant]),
    ...Object.entries(auth.clients).map(([id, c]): [string, string] => [`auth.clients.${id}.tenant`, c.tenant]),
    ...Object.entries(auth.mtls).map(([fp, m]): [string, string] => [`auth.mtls.${fp}.tenant`, m.tenant]),
    ...auth.trustedIssuers.map((t, i): [string, string] => [`auth.trustedIssuers.${i}.tenant`, t.tenant]),
    ...input.policy.bindings.map((b, i): [string, string] => [`policy.bindings.${i}.tenant`, b.tenant]),
    ['auth.registration.tenant', auth.registration.tenant],
    ...(auth.idp === undefined || auth.idp.tenantClaim !== undefined ? [] : [['auth.idp.tenant', auth.idp.tenant] as [string, string]]),
  ];
  for (const [where, tenant] of named) {
    if (!auth.tenants.includes(tenant)) issues.push({ path: where, reason: `tenant "${tenant}" is not in auth.tenants` });
  }
  return issues;
}
