/** The markdown report of one run. */
import type { BudgetLine } from './budget.ts';
import type { Machine } from './environment.ts';
import type { OpenStreamsResult } from './open-streams.ts';
import type { PathId } from './paths.ts';
import type { ProfileSummary } from './profile.ts';
import { findRow, type ResultRow } from './results.ts';
import type { ToolsListResult } from './tools-list.ts';

export interface RunMeta {
  mode: string;
  startedAt: string;
  durationS: number;
  rounds: number;
  warmupMs: number;
  measureMs: number;
  concurrencies: number[];
  sizes: number[];
  sharedSessionConcurrency: number | undefined;
  pinning: string;
  upstream: string;
  gatehouseFeatures: string[];
  machine: Machine;
  loadAverageEnd: number[];
  versions: Record<string, string>;
  peers: Record<string, string>;
  nginx: string | undefined;
  paths: Array<{ id: PathId; describe: string }>;
  skipped: Array<{ id: PathId; reason: string; optional: boolean }>;
  logLines: Record<string, number>;
  commandLine: string;
}

export interface RunReport {
  meta: RunMeta;
  budget: BudgetLine[];
  results: ResultRow[];
  toolsList: ToolsListResult | undefined;
  openStreams: OpenStreamsResult | undefined;
  profile: ProfileSummary[] | undefined;
}

const n = (v: number | null | undefined, digits = 0): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const x = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);
const sizeLabel = (b: number): string => (b >= 1024 ? `${b / 1024} KiB` : `${b} B`);

function table(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function matrixTable(rows: readonly ResultRow[], paths: readonly PathId[], concurrency: number, size: number, mode: ResultRow['mode'] = 'per-session'): string {
  const body = paths
    .map((id) => findRow(rows, id, concurrency, size, mode))
    .filter((r): r is ResultRow => r !== undefined)
    .map((r) => [
      r.label,
      n(r.callsPerSec),
      n(r.p50Ms, 3),
      n(r.p99Ms, 3),
      r.path === 'direct' ? '–' : n(r.cpuUsPerCall.proxy),
      r.path === 'direct' ? '–' : n(r.cpuUsPerCall.proxyTree),
      n(r.cpuUsPerCall.upstream),
      n(r.cpuUsPerCall.server),
      x(r.vsDirect.callsPerSec),
      r.path === 'direct' ? '–' : n(r.vsDirect.addedP50Ms, 3),
      r.path === 'direct' || r.path === 'passthrough' ? '–' : x(r.vsPassthrough.proxyCpu),
      n(r.setupMs, 2),
      n(r.rssMb.proxyPeak, 1),
      n(r.rssMb.proxyHwm, 1),
      r.errors > 0 ? `**${r.errors}**` : '0',
    ]);
  return table(
    ['path', 'calls/s', 'p50 ms', 'p99 ms', 'CPU µs/call (process)', 'CPU µs/call (tree)', 'upstream µs/call', 'server total µs/call', 'calls/s vs direct', 'added p50 ms', 'CPU vs pass-through', 'set-up ms', 'RSS peak in window MiB', 'VmHWM MiB', 'errors'],
    body,
  );
}

export function renderReport(report: RunReport, chartFile: string): string {
  const { meta, results } = report;
  const paths = meta.paths.map((p) => p.id);
  const tiny = meta.sizes[0]!;
  const hi = Math.max(...meta.concurrencies);
  const out: string[] = [];
  out.push(`# Gatehouse benchmark (${meta.mode})`, '');
  out.push(`Run ${meta.startedAt}, ${meta.durationS.toFixed(0)} s. \`${meta.commandLine}\``, '');
  out.push(
    `**Machine**: ${meta.machine.cpuModel}, ${meta.machine.cores} cores, ${meta.machine.memoryGiB} GiB, ${meta.machine.kernel}; Node ${meta.machine.node}; load average ${meta.machine.loadAverage.join(' / ')} at start, ${meta.loadAverageEnd.join(' / ')} at end.`,
    `**Method**: ${meta.rounds} round(s), path order rotated each round; per window ${meta.warmupMs} ms warm-up + ${meta.measureMs} ms measured; closed loop, every worker its own session (initialize, notifications/initialized, then tools/call back to back)${meta.sharedSessionConcurrency ? `, plus all workers on one session at c=${meta.sharedSessionConcurrency}` : ''}. ${meta.pinning}. Figures are medians over rounds; ratios are medians of per-round ratios. CPU comes from /proc/<pid>/stat in clock ticks (10 ms), so a window of N calls carries up to ±10 ms/N per process.`,
    `**Upstream**: ${meta.upstream}.`,
    `**Versions**: ${Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(', ')}; peers ${Object.entries(meta.peers).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; nginx ${meta.nginx ?? 'not installed'}.`,
    '',
    '**Gatehouse ran with**:',
    ...meta.gatehouseFeatures.map((f) => `- ${f}`),
    ...(Object.keys(meta.logLines).length > 0 ? [`- log lines written: ${Object.entries(meta.logLines).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}`] : []),
    '',
    '**Paths**:',
    ...meta.paths.map((p) => `- \`${p.id}\`: ${p.describe}`),
    ...meta.skipped.map((s) => `- \`${s.id}\`: skipped (${s.reason})`),
    '',
  );
  out.push('## Budget (issue 3)', '', table(['goal', 'measured', 'met'], report.budget.map((b) => [b.goal, b.measured, b.met === undefined ? 'not measured' : b.met ? 'yes' : '**no**'])), '');
  out.push(`![chart](${chartFile})`, '');
  out.push(
    'Columns: *process* is the path\'s own process (proxy or gateway) alone; *tree* adds its children (stdio servers); *upstream* is the echo server (the HTTP one, or the stdio children); *server total* is all server-side CPU. CPU is utime+stime from /proc over the measured window divided by calls.',
    '',
  );
  for (const size of meta.sizes) {
    for (const c of meta.concurrencies) {
      out.push(`## ${sizeLabel(size)} result, concurrency ${c}`, '', matrixTable(results, paths, c, size), '');
    }
  }
  if (meta.sharedSessionConcurrency !== undefined) {
    out.push(`## Shared session: ${meta.sharedSessionConcurrency} workers on one session, ${sizeLabel(tiny)}`, '', matrixTable(results, paths, meta.sharedSessionConcurrency, tiny, 'shared-session'), '');
  }
  const stdioRows = (['gatehouse-stdio', 'mcp-proxy', 'supergateway'] as const).map((id) => findRow(results, id, hi, tiny)).filter((r): r is ResultRow => r !== undefined);
  if (stdioRows.length > 0) {
    out.push(
      `## stdio bridges at c=${hi}, ${sizeLabel(tiny)}`,
      '',
      table(
        ['path', 'calls/s', 'p50 ms', 'p99 ms', 'tree CPU µs/call', 'processes in tree', 'tree RSS MiB', 'set-up ms'],
        stdioRows.map((r) => [r.label, n(r.callsPerSec), n(r.p50Ms, 3), n(r.p99Ms, 3), n(r.cpuUsPerCall.proxyTree), n(r.treeProcesses), n(r.rssMb.proxyTree, 1), n(r.setupMs, 2)]),
      ),
      '',
    );
  }
  const tl = report.toolsList;
  if (tl) {
    out.push(
      `## tools/list: ${tl.targets} targets, ${tl.targets * tl.toolsPerTarget} tools`,
      '',
      tl.error ? `Failed: ${tl.error}` : table(
        ['gateway start → ready (discovery) ms', 'cold full list ms', 'warm full list p50 ms', 'warm p99 ms', 'warm first page p50 ms', 'tools listed', 'pages', 'gateway CPU µs per full list', 'gateway RSS MiB'],
        [[n(tl.gatewayStartMs), n(tl.coldFullListMs, 2), n(tl.warmFullListP50Ms, 2), n(tl.warmFullListP99Ms, 2), n(tl.warmFirstPageP50Ms, 2), n(tl.toolsListed), n(tl.pages), n(tl.warmCpuUsPerFullList), n(tl.gatewayRssMb, 1)]],
      ),
      '',
    );
  }
  const os = report.openStreams;
  if (os) {
    out.push(
      `## ${os.sessionsWanted} sessions with an open GET stream (Gatehouse HTTP→HTTP)`,
      '',
      table(
        ['sessions opened', 'streams open', 'idle RSS MiB', 'RSS with streams MiB', 'VmHWM MiB', 'KiB per session', 'RSS after close MiB', 'open time ms'],
        [[n(os.sessionsOpened), n(os.streamsOpen), n(os.idleRssMb, 1), n(os.openRssMb, 1), n(os.hwmMb, 1), n(os.kibPerSession, 1), n(os.afterCloseRssMb, 1), n(os.openMs)]],
      ),
      ...(os.error ? ['', `Error: ${os.error}`] : []),
      '',
    );
  }
  const big = meta.sizes[meta.sizes.length - 1]!;
  const memRows = paths.map((id) => findRow(results, id, hi, big)).filter((r): r is ResultRow => r !== undefined && r.path !== 'direct');
  if (meta.rounds > 1 && memRows.length > 0) {
    out.push(`## Memory across rounds (${sizeLabel(big)}, c=${hi}): tree RSS at the end of each window, MiB`, '', table(['path', ...Array.from({ length: meta.rounds }, (_, i) => `round ${i + 1}`)], memRows.map((r) => [r.label, ...r.perRound.rssEndMb.map((v) => n(v, 1))])), '');
  }
  for (const p of report.profile ?? []) {
    const perCall = (ms: number): string => (p.calls > 0 ? n((ms * 1000) / p.calls) : '–');
    out.push(`## Profile: Gatehouse HTTP→HTTP under --cpu-prof, ${sizeLabel(p.sizeBytes)} result, c=32 (${n(p.calls)} calls, ${n(p.totalMs)} ms on CPU in the window, ${perCall(p.totalMs)} µs per call)`, '');
    if (p.error) out.push(`Failed: ${p.error}`, '');
    else {
      const rows = (list: typeof p.byArea, limit: number): string[][] => list.slice(0, limit).map((e) => [`\`${e.name}\``, n(e.ms, 1), n(e.share, 1), perCall(e.ms)]);
      out.push(`Profile file: \`${p.file}\`. Only samples inside the measured window count; idle excluded.`, '');
      out.push('Self time by area:', '', table(['area', 'self ms', 'share %', 'µs/call'], rows(p.byArea, 12)), '');
      out.push('Self time by function:', '', table(['function', 'self ms', 'share %', 'µs/call'], rows(p.byFunction, 15)), '');
      out.push('Inclusive time of gateway functions (with what they call):', '', table(['function', 'total ms', 'share %', 'µs/call'], rows(p.inclusive, 20)), '');
    }
  }
  const failures = results.filter((r) => r.errors > 0);
  if (failures.length > 0) {
    out.push('## Errors', '', ...failures.map((r) => `- ${r.label} c=${r.concurrency} ${sizeLabel(r.sizeBytes)} ${r.mode}: ${r.errors} error(s), first: ${r.firstError ?? '?'}`), '');
  }
  return `${out.join('\n')}\n`;
}
