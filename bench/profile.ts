/**
 * `--profile`: Gatehouse HTTP→HTTP under `node --cpu-prof`, driven at concurrency 32, one
 * gateway per result size; each .cpuprofile is summarized by self time inside the measured
 * window: per area (a src/ file, an npm package, Node internals, GC) and per function.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startGatehouse, type GatehouseLaunch } from './gatehouse.ts';
import { McpHttpClient } from './mcp-client.ts';
import { runLoad } from './load.ts';
import { REPO_ROOT } from './server-build.ts';

export interface ProfileEntry {
  name: string;
  ms: number;
  /** % of busy time in the window. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  sizeBytes: number;
  totalMs: number;
  calls: number;
  /** Self time per area (a src/ file, an npm package, Node internals, GC). */
  byArea: ProfileEntry[];
  /** Self time per function. */
  byFunction: ProfileEntry[];
  /** Inclusive time of the gateway's own functions and of undici/pino entry points: what a stage costs with what it calls. */
  inclusive: ProfileEntry[];
  error: string | null;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function areaOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return path.basename(url);
}

/**
 * Self time per area and per function, idle excluded. Only samples inside the measured window
 * count (given as distances before the profile's end), so start-up (module loading, the tsx
 * loader), warm-up and shutdown stay out.
 */
export function summarizeProfile(file: string, sizeBytes: number, calls: number, window: { fromEndMs: number; toEndMs: number }, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const label = (frame: CpuProfile['nodes'][number]['callFrame']): string => {
    // tsx-compiled sources report line 0: the file alone is the useful part then.
    const where = frame.url ? `${areaOf(frame.url, '')}${frame.lineNumber > 0 ? `:${frame.lineNumber + 1}` : ''}` : '';
    return `${frame.functionName || '(anonymous)'}${where ? ` (${where})` : ''}`;
  };
  const from = profile.endTime - window.fromEndMs * 1000;
  const to = profile.endTime - window.toEndMs * 1000;
  let at = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i]!);
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (at < from || at > to || frame === undefined || frame.functionName === '(idle)') continue;
    total += us;
    const area = areaOf(frame.url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const fn = label(frame);
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    // Inclusive: every distinct gateway (or undici/pino) function on this sample's stack.
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined && seen.size < 200; id = parent.get(id)) {
      const f = byId.get(id);
      if (f === undefined) break;
      const a = areaOf(f.url, f.functionName);
      if (!a.startsWith('src/') && a !== 'undici' && a !== 'pino') continue;
      const key = label(f);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const list = (m: Map<string, number>): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, share: total > 0 ? Math.round((us / total) * 1000) / 10 : 0 }));
  return {
    file: path.relative(REPO_ROOT, file), sizeBytes, totalMs: Math.round(total / 1000), calls,
    byArea: list(areas), byFunction: list(functions), inclusive: list(inclusive), error: null,
  };
}

export interface ProfileOptions {
  gatehouse: GatehouseLaunch;
  outDir: string;
  upstreamUrl: string;
  seconds: number;
  sizes: readonly number[];
}

/** One profiled gateway per size, so each profile shows one workload. */
export async function runProfile(opts: ProfileOptions): Promise<ProfileSummary[]> {
  // Profiles are large: keep only this run's.
  mkdirSync(opts.outDir, { recursive: true });
  for (const f of readdirSync(opts.outDir)) if (f.endsWith('.cpuprofile')) rmSync(path.join(opts.outDir, f), { force: true });
  const out: ProfileSummary[] = [];
  for (const size of opts.sizes) out.push(await profileOne(opts, size));
  return out;
}

async function profileOne(opts: ProfileOptions, size: number): Promise<ProfileSummary> {
  const before = new Set(readdirSync(opts.outDir));
  const gateway = await startGatehouse(opts.gatehouse, `gatehouse-profiled-${size}`, { echo: { transport: 'streamable-http', url: opts.upstreamUrl } }, {
    nodeFlags: ['--cpu-prof', '--cpu-prof-dir', opts.outDir],
  });
  const client = new McpHttpClient(gateway.url, 32, gateway.headers);
  let calls = 0;
  let windowStart = 0;
  let windowEnd = 0;
  try {
    const sessions = await Promise.all(Array.from({ length: 32 }, () => client.openSession()));
    const load = await runLoad({
      client, sessions, size, warmupMs: 500, measureMs: opts.seconds * 1000, maxCalls: 2_000_000,
      onWindowStart: () => (windowStart = performance.now()),
      onWindowEnd: () => (windowEnd = performance.now()),
    });
    calls = load.calls;
    await Promise.all(sessions.map((s) => client.closeSession(s)));
  } finally {
    await client.close();
    // SIGTERM: the gateway exits through process.exit(0), which writes the profile.
    await gateway.process.stop();
  }
  const exited = performance.now();
  const written = readdirSync(opts.outDir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (written.length === 0) return { file: '', sizeBytes: size, totalMs: 0, calls, byArea: [], byFunction: [], inclusive: [], error: 'no .cpuprofile was written' };
  // The profile ends at exit: the window is placed by its distance from the exit.
  return summarizeProfile(path.join(opts.outDir, written[0]!), size, calls, { fromEndMs: exited - windowStart, toEndMs: exited - windowEnd });
}
