/**
 * From measured windows to result rows: one row per path × mode × concurrency × size with
 * medians over rounds and per-round ratios (each round's value divided by the same round's
 * direct, or pass-through, value; the median of those ratios).
 */
import type { Sample, SessionMode } from './matrix.ts';
import { byReportOrder, PATH_LABEL, type PathId } from './paths.ts';
import { median, round } from './stats.ts';

export interface ResultRow {
  path: PathId;
  label: string;
  mode: SessionMode;
  concurrency: number;
  sizeBytes: number;
  rounds: number;
  calls: number;
  errors: number;
  firstError: string | null;
  callsPerSec: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  /** Median session set-up (initialize + notifications/initialized), ms. */
  setupMs: number | null;
  /** CPU per call, µs (medians over rounds). */
  cpuUsPerCall: { proxy: number | null; proxyTree: number | null; upstream: number | null; server: number | null; client: number | null };
  /** MiB. */
  rssMb: { proxyPeak: number | null; proxyTree: number | null; proxyHwm: number | null; upstreamPeak: number | null };
  treeProcesses: number | null;
  logBytesPerCall: number | null;
  /** Medians of per-round ratios (and differences) against direct in the same round. */
  vsDirect: { callsPerSec: number | null; p50: number | null; addedP50Ms: number | null; serverCpu: number | null; addedSetupMs: number | null };
  /** The path's own process CPU against the Node pass-through's, per round. */
  vsPassthrough: { proxyCpu: number | null; callsPerSec: number | null };
  perRound: { callsPerSec: Array<number | null>; p50Ms: Array<number | null>; proxyCpuUs: Array<number | null>; serverCpuUs: Array<number | null>; rssEndMb: Array<number | null> };
}

const key = (s: { path: string; mode: string; concurrency: number; size: number }): string => `${s.path}|${s.mode}|${s.concurrency}|${s.size}`;

function ratioByRound(mine: Sample[], reference: Sample[] | undefined, pick: (s: Sample) => number | undefined, combine: (a: number, b: number) => number): number {
  if (reference === undefined) return Number.NaN;
  const values: number[] = [];
  for (const s of mine) {
    const ref = reference.find((r) => r.round === s.round);
    const a = pick(s);
    const b = ref ? pick(ref) : undefined;
    if (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && s.calls > 0 && ref!.calls > 0) values.push(combine(a, b));
  }
  return median(values);
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : Number.NaN);
const minus = (a: number, b: number): number => a - b;

export function aggregate(samples: readonly Sample[]): ResultRow[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const list = groups.get(key(s));
    if (list) list.push(s);
    else groups.set(key(s), [s]);
  }
  const rows: ResultRow[] = [];
  for (const list of groups.values()) {
    const first = list[0]!;
    const ok = list.filter((s) => s.calls > 0);
    const med = (pick: (s: Sample) => number | undefined, digits = 1): number | null => round(median(ok.map((s) => pick(s) ?? Number.NaN)), digits);
    const direct = groups.get(key({ ...first, path: 'direct' }));
    const pass = groups.get(key({ ...first, path: 'passthrough' }));
    const byRound = (pick: (s: Sample) => number | undefined, digits = 1): Array<number | null> => list.map((s) => (s.calls > 0 ? round(pick(s) ?? Number.NaN, digits) : null));
    rows.push({
      path: first.path,
      label: PATH_LABEL[first.path],
      mode: first.mode,
      concurrency: first.concurrency,
      sizeBytes: first.size,
      rounds: list.length,
      calls: list.reduce((n, s) => n + s.calls, 0),
      errors: list.reduce((n, s) => n + s.errors, 0),
      firstError: list.find((s) => s.firstError !== undefined)?.firstError ?? null,
      callsPerSec: med((s) => s.callsPerSec, 0),
      p50Ms: med((s) => s.p50Ms, 3),
      p90Ms: med((s) => s.p90Ms, 3),
      p99Ms: med((s) => s.p99Ms, 3),
      setupMs: med((s) => s.setupMs, 2),
      cpuUsPerCall: {
        proxy: med((s) => s.proxyCpuUs),
        proxyTree: med((s) => s.proxyTreeCpuUs),
        upstream: med((s) => s.upstreamCpuUs),
        server: med((s) => s.serverCpuUs),
        client: med((s) => s.clientCpuUs),
      },
      rssMb: {
        proxyPeak: med((s) => s.proxyRssPeakMb),
        proxyTree: med((s) => s.proxyTreeRssMb),
        proxyHwm: round(Math.max(...ok.map((s) => s.proxyHwmMb ?? Number.NaN)), 1),
        upstreamPeak: med((s) => s.upstreamRssPeakMb),
      },
      treeProcesses: med((s) => s.treeProcesses, 0),
      logBytesPerCall: med((s) => s.logBytesPerCall, 0),
      vsDirect: {
        callsPerSec: round(ratioByRound(list, direct, (s) => s.callsPerSec, ratio), 3),
        p50: round(ratioByRound(list, direct, (s) => s.p50Ms, ratio), 3),
        addedP50Ms: round(ratioByRound(list, direct, (s) => s.p50Ms, minus), 3),
        serverCpu: round(ratioByRound(list, direct, (s) => s.serverCpuUs, ratio), 3),
        addedSetupMs: round(ratioByRound(list, direct, (s) => s.setupMs, minus), 2),
      },
      vsPassthrough: {
        proxyCpu: round(ratioByRound(list, pass, (s) => s.proxyCpuUs, ratio), 3),
        callsPerSec: round(ratioByRound(list, pass, (s) => s.callsPerSec, ratio), 3),
      },
      perRound: {
        callsPerSec: byRound((s) => s.callsPerSec, 0),
        p50Ms: byRound((s) => s.p50Ms, 3),
        proxyCpuUs: byRound((s) => s.proxyCpuUs),
        serverCpuUs: byRound((s) => s.serverCpuUs),
        rssEndMb: byRound((s) => s.proxyTreeRssMb),
      },
    });
  }
  return rows.sort(
    (a, b) => (a.mode === b.mode ? 0 : a.mode === 'per-session' ? -1 : 1) || a.concurrency - b.concurrency || a.sizeBytes - b.sizeBytes || byReportOrder(a.path, b.path),
  );
}

export function findRow(rows: readonly ResultRow[], path: PathId, concurrency: number, size: number, mode: SessionMode = 'per-session'): ResultRow | undefined {
  return rows.find((r) => r.path === path && r.concurrency === concurrency && r.sizeBytes === size && r.mode === mode);
}
