/**
 * The main measurement: every path × concurrency × result size, in rounds. Within a round the
 * path order is rotated (round r starts at path r), so drift on a noisy machine spreads over
 * all paths instead of landing on one. For each (round, concurrency, path) the workers open
 * their sessions once, then every size runs as warm-up + measured window; /proc is read at the
 * window's edges.
 */
import { statSync } from 'node:fs';
import { McpHttpClient, type McpSession } from './mcp-client.ts';
import { runLoad } from './load.ts';
import type { Fleet, PathId, PathUnderTest } from './paths.ts';
import { processTree, readCpu, readMemory, RssSampler, treeRss, type CpuReading } from './proc-stats.ts';
import { median, percentiles } from './stats.ts';

export type SessionMode = 'per-session' | 'shared-session';

/** One measured window. */
export interface Sample {
  path: PathId;
  mode: SessionMode;
  concurrency: number;
  size: number;
  round: number;
  calls: number;
  errors: number;
  firstError: string | undefined;
  windowMs: number;
  callsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Median set-up (initialize + initialized) of the sessions used. */
  setupMs: number;
  /** Per call, µs: the path's own process; its process tree; the upstream; all server side; the client. */
  proxyCpuUs: number | undefined;
  proxyTreeCpuUs: number | undefined;
  upstreamCpuUs: number;
  serverCpuUs: number;
  clientCpuUs: number;
  /** MiB: peak sampled VmRSS of the path's process in the window; its tree at the end; its VmHWM. */
  proxyRssPeakMb: number | undefined;
  proxyTreeRssMb: number | undefined;
  proxyHwmMb: number | undefined;
  upstreamRssPeakMb: number;
  /** Live processes in the path's tree at the window's end (children per session show here). */
  treeProcesses: number | undefined;
  /** Gatehouse: bytes of log written per call in the window. */
  logBytesPerCall: number | undefined;
}

export interface MatrixOptions {
  fleet: Fleet;
  rounds: number;
  concurrencies: readonly number[];
  sizes: readonly number[];
  /** Also run the shared-session mode at this concurrency (tiny size only). */
  sharedSessionConcurrency: number | undefined;
  warmupMs: number;
  measureMs: number;
  maxCalls: number;
  /** Sessions opened one after another at concurrency 1, for the set-up median. */
  setupSamples: number;
  log(msg: string): void;
}

const MB = 1024 * 1024;
const SETTLE_MS = 5_000;

function rotated<T>(items: readonly T[], by: number): T[] {
  const n = items.length;
  return items.map((_, i) => items[(i + by) % n]!);
}

async function openSessions(client: McpHttpClient, concurrency: number, mode: SessionMode, setupSamples: number): Promise<{ sessions: McpSession[]; setupMs: number }> {
  if (mode === 'shared-session') {
    const one = await client.openSession();
    return { sessions: Array.from({ length: concurrency }, () => one), setupMs: one.setupMs };
  }
  if (concurrency === 1) {
    // Sequential set-ups give an uncontended figure; the last session carries the load, the
    // others close at once (supergateway would keep a child for each).
    const opened: McpSession[] = [];
    for (let i = 0; i < Math.max(1, setupSamples); i++) opened.push(await client.openSession());
    await Promise.all(opened.slice(0, -1).map((s) => client.closeSession(s)));
    return { sessions: [opened[opened.length - 1]!], setupMs: median(opened.map((s) => s.setupMs)) };
  }
  const sessions = await Promise.all(Array.from({ length: concurrency }, () => client.openSession()));
  return { sessions, setupMs: median(sessions.map((s) => s.setupMs)) };
}

/** Wait until the path's process tree is back to its idle size (per-session children gone). */
async function settle(path: PathUnderTest, idleTree: number): Promise<void> {
  if (path.front === undefined) return;
  const deadline = Date.now() + SETTLE_MS;
  while (Date.now() < deadline && processTree(path.front.pid).length > idleTree) await new Promise((r) => setTimeout(r, 50));
}

function logSize(file: string | undefined): number | undefined {
  if (file === undefined || file === '/dev/null') return undefined;
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

async function measure(path: PathUnderTest, fleet: Fleet, client: McpHttpClient, sessions: McpSession[], size: number, opts: MatrixOptions): Promise<Omit<Sample, 'path' | 'mode' | 'concurrency' | 'size' | 'round' | 'setupMs'>> {
  const upstreamPid = fleet.upstream.pid;
  const frontPid = path.front?.pid;
  const roots = frontPid === undefined ? [upstreamPid] : [frontPid, upstreamPid];
  let before: CpuReading | undefined;
  let after: CpuReading | undefined;
  let sampler: RssSampler | undefined;
  let peaks = new Map<number, number>();
  let logBefore: number | undefined;
  let logAfter: number | undefined;
  const load = await runLoad({
    client,
    sessions,
    size,
    warmupMs: opts.warmupMs,
    measureMs: opts.measureMs,
    maxCalls: opts.maxCalls,
    onWindowStart: () => {
      sampler = new RssSampler(roots);
      logBefore = logSize(path.logFile);
      before = readCpu(roots);
    },
    onWindowEnd: () => {
      after = readCpu(roots);
      logAfter = logSize(path.logFile);
      peaks = sampler?.stop() ?? peaks;
    },
  });
  const calls = Math.max(1, load.calls);
  const delta = (pick: (r: CpuReading) => Map<number, number>, pid: number): number => ((after ? pick(after).get(pid) ?? 0 : 0) - (before ? pick(before).get(pid) ?? 0 : 0)) / calls;
  const upstreamUs = delta((r) => r.own, upstreamPid);
  const treeUs = frontPid === undefined ? undefined : delta((r) => r.tree, frontPid);
  // nginx: the master idles and the worker (its child) proxies; the pair is the process.
  const ownUs = frontPid === undefined ? undefined : path.workInChildren ? treeUs : delta((r) => r.own, frontPid);
  const treeEndRss = frontPid === undefined ? undefined : treeRss(frontPid);
  const [p50, p90, p99] = percentiles(load.latencies, load.samples, [50, 90, 99]);
  return {
    calls: load.calls,
    errors: load.errors,
    firstError: load.firstError,
    windowMs: load.windowMs,
    callsPerSec: load.windowMs > 0 ? (load.calls * 1000) / load.windowMs : 0,
    p50Ms: p50!,
    p90Ms: p90!,
    p99Ms: p99!,
    proxyCpuUs: ownUs,
    proxyTreeCpuUs: treeUs,
    // Over stdio the "upstream" is the child(ren) in the path's own tree.
    upstreamCpuUs: path.viaHttpUpstream ? upstreamUs : (treeUs ?? 0) - (ownUs ?? 0),
    serverCpuUs: (treeUs ?? 0) + (path.viaHttpUpstream ? upstreamUs : 0),
    clientCpuUs: load.clientCpuUs / calls,
    proxyRssPeakMb: frontPid === undefined ? undefined : (path.workInChildren ? treeEndRss! : peaks.get(frontPid) ?? 0) / MB,
    proxyTreeRssMb: treeEndRss === undefined ? undefined : treeEndRss / MB,
    proxyHwmMb: frontPid === undefined ? undefined : (path.workInChildren ? processTree(frontPid).reduce((sum, pid) => sum + readMemory(pid).hwm, 0) : readMemory(frontPid).hwm) / MB,
    upstreamRssPeakMb: (peaks.get(upstreamPid) ?? 0) / MB,
    treeProcesses: frontPid === undefined ? undefined : after?.treeSize.get(frontPid),
    logBytesPerCall: logBefore !== undefined && logAfter !== undefined ? (logAfter - logBefore) / calls : undefined,
  };
}

/** Run every round; returns one sample per measured window. */
export async function runMatrix(opts: MatrixOptions): Promise<Sample[]> {
  const samples: Sample[] = [];
  const { fleet } = opts;
  const idleTrees = new Map(fleet.paths.map((p) => [p.id, p.front ? processTree(p.front.pid).length : 0]));
  for (let round = 0; round < opts.rounds; round++) {
    const order = rotated(fleet.paths, round);
    opts.log(`round ${round + 1}/${opts.rounds}: ${order.map((p) => p.id).join(' → ')}`);
    for (const concurrency of opts.concurrencies) {
      for (const path of order) {
        const modes: SessionMode[] = concurrency === opts.sharedSessionConcurrency ? ['per-session', 'shared-session'] : ['per-session'];
        for (const mode of modes) {
          const sizes = mode === 'shared-session' ? [opts.sizes[0]!] : opts.sizes;
          const client = new McpHttpClient(path.url, concurrency, path.headers);
          let opened: Awaited<ReturnType<typeof openSessions>> | undefined;
          try {
            opened = await openSessions(client, concurrency, mode, opts.setupSamples);
            for (const size of sizes) {
              const m = await measure(path, fleet, client, opened.sessions, size, opts);
              samples.push({ path: path.id, mode, concurrency, size, round, setupMs: opened.setupMs, ...m });
              const err = m.errors > 0 ? ` errors=${m.errors} (${m.firstError})` : '';
              opts.log(
                `  ${path.id.padEnd(16)} c=${String(concurrency).padEnd(3)} ${mode === 'shared-session' ? 'shared ' : ''}${String(size).padStart(6)} B  ${m.callsPerSec.toFixed(0).padStart(6)}/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  cpu ${(m.proxyTreeCpuUs ?? m.serverCpuUs).toFixed(0)} µs${err}`,
              );
            }
          } catch (err) {
            const message = (err as Error).message;
            opts.log(`  ${path.id} c=${concurrency} ${mode}: FAILED ${message}`);
            for (const size of sizes) samples.push(failedSample(path.id, mode, concurrency, size, round, message));
          } finally {
            if (opened) await Promise.all([...new Set(opened.sessions)].map((s) => client.closeSession(s)));
            await client.close();
            await settle(path, idleTrees.get(path.id) ?? 0);
          }
        }
      }
    }
  }
  return samples;
}

function failedSample(path: PathId, mode: SessionMode, concurrency: number, size: number, round: number, error: string): Sample {
  return {
    path, mode, concurrency, size, round,
    calls: 0, errors: 1, firstError: error, windowMs: 0, callsPerSec: 0,
    p50Ms: Number.NaN, p90Ms: Number.NaN, p99Ms: Number.NaN, setupMs: Number.NaN,
    proxyCpuUs: undefined, proxyTreeCpuUs: undefined, upstreamCpuUs: Number.NaN, serverCpuUs: Number.NaN, clientCpuUs: Number.NaN,
    proxyRssPeakMb: undefined, proxyTreeRssMb: undefined, proxyHwmMb: undefined, upstreamRssPeakMb: Number.NaN,
    treeProcesses: undefined, logBytesPerCall: undefined,
  };
}
