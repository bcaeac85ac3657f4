/**
 * The paths under test, all started once per run on 127.0.0.1 and pinned to the server core:
 *
 *   direct           client → echo server (HTTP)                         the MCP-aware floor
 *   passthrough      client → minimal Node proxy → echo server (HTTP)    the floor for one Node hop
 *   nginx            client → nginx → echo server (HTTP)                 when nginx is installed
 *   gatehouse-http   client → Gatehouse → echo server (HTTP)
 *   gatehouse-stdio  client → Gatehouse → one shared echo child (stdio)
 *   mcp-proxy        client → mcp-proxy → echo child(ren) (stdio)
 *   supergateway     client → supergateway --stateful → one echo child per session (stdio)
 */
import type { EchoVariant } from './echo-server.ts';
import { startGatehouse, type GatehouseLaunch } from './gatehouse.ts';
import { findNginx, nginxCommand } from './nginx.ts';
import { ensurePeers, peerCommand, PEER_VERSIONS, type PeerName } from './peers.ts';
import { freePort, waitForPort } from './ports.ts';
import { failureSummary, type ManagedProcess, type ProcessRegistry } from './processes.ts';
import type { ServerPrograms } from './server-build.ts';

export const PATH_IDS = ['direct', 'passthrough', 'nginx', 'gatehouse-http', 'gatehouse-stdio', 'mcp-proxy', 'supergateway'] as const;
export type PathId = (typeof PATH_IDS)[number];

export interface PathUnderTest {
  id: PathId;
  url: string;
  /** The path's own process (the proxy or gateway); undefined for direct. */
  front: ManagedProcess | undefined;
  /** Whether calls also cross the shared HTTP echo server (its CPU is reported apart). */
  viaHttpUpstream: boolean;
  /** The path's work happens in child processes of `front` (nginx master → worker). */
  workInChildren?: boolean;
  /** One line for the report: what runs and how. */
  describe: string;
  /** Gatehouse only: where its log went. */
  logFile?: string;
  /** Headers every request to this path carries (Gatehouse: its credential). */
  headers?: Record<string, string>;
}

export interface Fleet {
  upstream: ManagedProcess;
  upstreamUrl: string;
  paths: PathUnderTest[];
  /** Paths that did not run, and why; `optional` when by choice or not installed (nginx). */
  skipped: Array<{ id: PathId; reason: string; optional: boolean }>;
  nginxVersion: string | undefined;
}

export interface FleetOptions {
  registry: ProcessRegistry;
  programs: ServerPrograms;
  gatehouse: GatehouseLaunch;
  dir: string;
  serverCpu: number | undefined;
  variant: EchoVariant;
  only: ReadonlySet<PathId>;
  withPeers: boolean;
  log(msg: string): void;
}

export function echoStdioCommand(programs: ServerPrograms): { command: string; args: string[] } {
  return { command: process.execPath, args: [programs.echoServer, '--stdio'] };
}

export async function startEchoHttp(registry: ProcessRegistry, programs: ServerPrograms, cpu: number | undefined, variant: EchoVariant, extra: string[] = [], name = 'echo-http'): Promise<ManagedProcess> {
  return registry.start({
    name,
    command: process.execPath,
    args: [programs.echoServer, '--http', '0', '--variant', variant, ...extra],
    cpu,
    readyLine: /LISTENING (\S+)/,
  });
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const { registry, programs, serverCpu: cpu } = options;
  const upstream = await startEchoHttp(registry, programs, cpu, options.variant);
  const upstreamUrl = upstream.ready;
  const paths: PathUnderTest[] = [];
  const skipped: Fleet['skipped'] = [];
  const want = (id: PathId): boolean => options.only.has(id);
  const stdio = echoStdioCommand(programs);
  let nginxVersion: string | undefined;

  /** A path that fails to start is reported, not fatal: the others are still measured. */
  const attempt = async (id: PathId, start: () => Promise<PathUnderTest | undefined>): Promise<void> => {
    if (!want(id)) return;
    try {
      const path = await start();
      if (path) paths.push(path);
    } catch (err) {
      const reason = failureSummary(err);
      options.log(`  ${id} did not start: ${reason}`);
      skipped.push({ id, reason: `failed to start: ${reason}`, optional: false });
    }
  };

  await attempt('direct', async () => ({ id: 'direct', url: upstreamUrl, front: undefined, viaHttpUpstream: true, describe: `echo server (${options.variant})` }));

  await attempt('passthrough', async () => {
    const proxy = await registry.start({ name: 'passthrough', command: process.execPath, args: [programs.passthroughProxy, '--upstream', upstreamUrl], cpu, readyLine: /LISTENING (\S+)/ });
    return { id: 'passthrough', url: proxy.ready, front: proxy, viaHttpUpstream: true, describe: 'node:http server + http.Agent keepAlive, bodies piped' };
  });

  await attempt('nginx', async () => {
    const nginx = findNginx();
    if (nginx === undefined) {
      skipped.push({ id: 'nginx', reason: '`command -v nginx` found nothing', optional: true });
      return undefined;
    }
    const port = await freePort();
    const cmd = nginxCommand(nginx.binary, options.dir, port, new URL(upstreamUrl));
    const proc = await registry.start({ name: 'nginx', command: cmd.command, args: cmd.args, cpu });
    await waitForPort(port, 10_000, () => proc.exited);
    nginxVersion = nginx.version;
    return { id: 'nginx', url: `http://127.0.0.1:${port}${new URL(upstreamUrl).pathname}`, front: proc, viaHttpUpstream: true, workInChildren: true, describe: `nginx ${nginx.version}, 1 worker, upstream keepalive, access log on` };
  });

  await attempt('gatehouse-http', async () => {
    const gh = await startGatehouse(options.gatehouse, 'gatehouse-http', { echo: { transport: 'streamable-http', url: upstreamUrl } });
    return { id: 'gatehouse-http', url: gh.url, front: gh.process, viaHttpUpstream: true, describe: 'one streamable-http target (shared upstream session, undici Pool)', logFile: gh.logFile, headers: gh.headers };
  });

  await attempt('gatehouse-stdio', async () => {
    const gh = await startGatehouse(options.gatehouse, 'gatehouse-stdio', { echo: { transport: 'stdio', ...stdio } });
    return { id: 'gatehouse-stdio', url: gh.url, front: gh.process, viaHttpUpstream: false, describe: 'one stdio target (one shared child)', logFile: gh.logFile, headers: gh.headers };
  });

  const peers: PeerName[] = (['mcp-proxy', 'supergateway'] as const).filter((p) => want(p));
  if (peers.length > 0 && !options.withPeers) for (const p of peers) skipped.push({ id: p, reason: 'peers disabled (--no-peers)', optional: true });
  else if (peers.length > 0) {
    const { ready, problems } = ensurePeers(options.log);
    for (const problem of problems) options.log(`  ${problem}`);
    for (const name of peers) {
      await attempt(name, async () => {
        if (!ready.includes(name)) throw new Error(`not installed: ${problems.join('; ') || 'unknown'}`);
        const port = await freePort();
        const cmd = peerCommand(name, port, stdio, programs.loopbackPreload);
        const proc = await registry.start({ name, command: cmd.command, args: cmd.args, cpu, stopGraceMs: 6_000 });
        await waitForPort(port, 30_000, () => proc.exited);
        const how = name === 'mcp-proxy' ? 'stream endpoint, one shared stdio child' : '--stateful, one stdio child per session';
        return { id: name, url: `http://127.0.0.1:${port}/mcp`, front: proc, viaHttpUpstream: false, describe: `${name} ${PEER_VERSIONS[name]} (npm), ${how}` };
      });
    }
  }
  return { upstream, upstreamUrl, paths, skipped, nginxVersion };
}

/** Paths in the order they appear in reports. */
export function byReportOrder(a: PathId, b: PathId): number {
  return PATH_IDS.indexOf(a) - PATH_IDS.indexOf(b);
}

export const PATH_LABEL: Record<PathId, string> = {
  direct: 'direct',
  passthrough: 'Node pass-through',
  nginx: 'nginx',
  'gatehouse-http': 'Gatehouse HTTP→HTTP',
  'gatehouse-stdio': 'Gatehouse HTTP→stdio',
  'mcp-proxy': 'mcp-proxy',
  supergateway: 'supergateway',
};
