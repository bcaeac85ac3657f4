/**
 * Gatehouse as the benchmark runs it: the production entry point (`bin/gatehouse.js start`)
 * with a config file written to the run's temp dir, its JSON log (one line per message at
 * `info`, from the call record) going to a file or /dev/null.
 */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ProcessRegistry, ManagedProcess } from './processes.ts';
import { REPO_ROOT } from './server-build.ts';

export const GATEHOUSE_ENTRY = path.join(REPO_ROOT, 'bin/gatehouse.js');

export type GatehouseTarget =
  | { transport: 'streamable-http'; url: string }
  | { transport: 'stdio'; command: string; args: string[] };

export interface GatehouseRun {
  process: ManagedProcess;
  url: string;
  /** Where the log went (`/dev/null` or a file that can be counted). */
  logFile: string;
  configFile: string;
  /** What every request must carry: the development API key the gateway printed. */
  headers: Record<string, string>;
}

/** What the report says about the features the measured gateway had on. */
export function gatehouseFeatures(logSink: string, runtime: 'tsx' | 'bundle', extra: Record<string, unknown> | undefined): string[] {
  const extraKeys = Object.keys(extra ?? {});
  return [
    runtime === 'tsx' ? 'started as shipped: `node bin/gatehouse.js start` (compiled dist/ when it is as new as the sources, else TypeScript through the tsx loader)' : 'started from a plain-JS bundle of src/main.ts (esbuild, packages external), no tsx loader',
    `per-message JSON log line (pino, level info) → ${logSink === '/dev/null' ? '/dev/null' : 'a file'}`,
    'call record built and emitted once per message',
    'Host/Origin guard, body-size and JSON-depth limits (defaults)',
    'legacy session store with replay buffer (256 events)',
    'audit row per message, durable before the answer leaves (SQLite WAL, synchronous=NORMAL as shipped, group commit)',
    'Prometheus metrics and SLO subscribers on every call record; admin listener up; tracing off (no OTLP endpoint)',
    'authentication on every request (auth.mode oauth; the load client presents the development API key the gateway prints, a service-account key checked against its SHA-256 on each request)',
    'authorization on every call (the default policy: role admin granted every tool; lists filtered through the principal\'s view)',
    extraKeys.length > 0
      ? `extra config merged into every gateway (--gatehouse-config): ${extraKeys.map((k) => `\`${k}\``).join(', ')}`
      : 'no extra config; rate limits are not in the gateway yet',
  ];
}

/** Top-level keys of `extra` replace the generated ones; objects are merged one level deep. */
function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra ?? {})) {
    const current = out[key];
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = isObject(current) && isObject(value) ? { ...current, ...value } : value;
  }
  return out;
}

function writeConfig(dir: string, name: string, targets: Record<string, GatehouseTarget>, extra: Record<string, unknown> | undefined): string {
  const config = mergeConfig(
    {
      listener: { host: '127.0.0.1', port: 0 },
      targets: Object.fromEntries(
        Object.entries(targets).map(([key, t]) => [
          key,
          t.transport === 'stdio'
            ? { transport: 'stdio', command: t.command, args: t.args, envAllow: ['PATH', 'HOME'] }
            : { transport: 'streamable-http', url: t.url },
        ]),
      ),
      logging: { level: 'info' },
      // Production features as shipped: the audit trail on its default store (one SQLite file
      // per gateway, WAL, synchronous=NORMAL as shipped) and the admin listener (metrics) on a free port,
      // so several gateways of one run never collide on 9090.
      storage: { driver: 'sqlite', path: `${name}.db` },
      admin: { port: 0 },
      // Authentication as a new user runs it: OAuth on, the development key for the client.
      auth: { mode: 'oauth' },
    },
    extra,
  );
  const file = path.join(dir, `${name}.yaml`);
  // JSON is YAML: no serializer needed.
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** How every Gatehouse of a run is launched (the same for the matrix and the scenarios). */
export interface GatehouseLaunch {
  registry: ProcessRegistry;
  /** The run's temp dir: configs and logs go here. */
  dir: string;
  cpu: number | undefined;
  /** `file` writes the log to `<dir>/<name>.log`. */
  logSink: 'file' | 'devnull';
  /** Entry script: bin/gatehouse.js (through tsx, as shipped) unless a bundle is given. */
  entry: string;
  /** Config merged into every generated config (auth, audit, rate limits as they land). */
  extraConfig: Record<string, unknown> | undefined;
}

export async function startGatehouse(
  launch: GatehouseLaunch,
  name: string,
  targets: Record<string, GatehouseTarget>,
  extra: { nodeFlags?: string[]; readyTimeoutMs?: number } = {},
): Promise<GatehouseRun> {
  const configFile = writeConfig(launch.dir, name, targets, launch.extraConfig);
  const logFile = launch.logSink === 'file' ? path.join(launch.dir, `${name}.log`) : '/dev/null';
  const process_ = await launch.registry.start({
    name,
    command: process.execPath,
    args: [...(extra.nodeFlags ?? []), launch.entry, 'start', '--config', configFile],
    cwd: REPO_ROOT,
    cpu: launch.cpu,
    stdoutFile: logFile,
    readyLine: /MCP endpoint .*?(http:\/\/127\.0\.0\.1:\d+\/\S*)/,
    readyTimeoutMs: extra.readyTimeoutMs ?? 60_000,
    stopGraceMs: 5_000,
  });
  // The banner lists the development key (auth.mode oauth on loopback) after the endpoint line;
  // both arrive in one write, so the tail holds it once the ready line matched.
  const key = /Development API key[^\n]*\n\s*(gh_[A-Za-z0-9_-]+)/.exec(process_.tail())?.[1];
  if (key === undefined && launch.extraConfig?.['auth'] === undefined) {
    throw new Error(`${name} printed no development API key: the load client could not authenticate (banner: ${process_.tail().slice(-400)})`);
  }
  return { process: process_, url: process_.ready, logFile, configFile, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } };
}

/** Lines in the log file so far (0 for /dev/null): proves the per-message line was written. */
export function countLogLines(logFile: string): number {
  if (logFile === '/dev/null') return 0;
  let fd: number;
  try {
    fd = openSync(logFile, 'r');
  } catch {
    return 0;
  }
  const buffer = Buffer.allocUnsafe(1 << 20);
  let lines = 0;
  try {
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) {
      for (let at = buffer.indexOf(10); at >= 0 && at < n; at = buffer.indexOf(10, at + 1)) lines++;
    }
  } finally {
    closeSync(fd);
  }
  return lines;
}
