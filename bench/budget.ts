/**
 * The issue-3 performance budget, checked against one run's rows (tiny result unless said).
 * A goal whose inputs are missing (a path skipped, a scenario off) is reported as not measured.
 */
import type { OpenStreamsResult } from './open-streams.ts';
import { findRow, type ResultRow } from './results.ts';
import type { ToolsListResult } from './tools-list.ts';

export interface BudgetLine {
  goal: string;
  measured: string;
  /** true: met; false: missed; undefined: not measured. */
  met: boolean | undefined;
}

const fmt = (v: number | null | undefined, digits = 2, unit = ''): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(digits)}${unit}`);

function check(goal: string, value: number | null | undefined, limit: number, kind: '≤' | '≥', measured: string): BudgetLine {
  if (value === null || value === undefined || !Number.isFinite(value)) return { goal, measured: 'not measured', met: undefined };
  return { goal, measured, met: kind === '≤' ? value <= limit : value >= limit };
}

export interface BudgetInputs {
  rows: readonly ResultRow[];
  tiny: number;
  big: number | undefined;
  highConcurrency: number;
  toolsList: ToolsListResult | undefined;
  openStreams: OpenStreamsResult | undefined;
}

export function evaluateBudget(inputs: BudgetInputs): BudgetLine[] {
  const { rows, tiny, big, highConcurrency: hi } = inputs;
  const lines: BudgetLine[] = [];
  for (const c of [hi, 1]) {
    const gh = findRow(rows, 'gatehouse-http', c, tiny);
    const pass = findRow(rows, 'passthrough', c, tiny);
    const r = gh?.vsPassthrough.proxyCpu;
    lines.push(
      check(`HTTP→HTTP process CPU/call ≤ 1.2× pass-through (c=${c})`, r, 1.2, '≤', `${fmt(r, 2, '×')} (${fmt(gh?.cpuUsPerCall.proxy, 0, ' µs')} vs ${fmt(pass?.cpuUsPerCall.proxy, 0, ' µs')})`),
    );
  }
  const gh1 = findRow(rows, 'gatehouse-http', 1, tiny);
  lines.push(check('Added p50 at c=1 ≤ 0.3 ms (HTTP→HTTP vs direct)', gh1?.vsDirect.addedP50Ms, 0.3, '≤', `${fmt(gh1?.vsDirect.addedP50Ms, 3, ' ms')} (p50 ${fmt(gh1?.p50Ms, 3, ' ms')})`));
  const stdio = findRow(rows, 'gatehouse-stdio', hi, tiny);
  for (const [peer, limit] of [['mcp-proxy', 3], ['supergateway', 4]] as const) {
    const other = findRow(rows, peer, hi, tiny);
    const x = stdio?.callsPerSec && other?.callsPerSec ? stdio.callsPerSec / other.callsPerSec : undefined;
    lines.push(check(`HTTP→stdio throughput ≥ ${limit}× ${peer} (c=${hi})`, x, limit, '≥', `${fmt(x, 2, '×')} (${fmt(stdio?.callsPerSec, 0, '/s')} vs ${fmt(other?.callsPerSec, 0, '/s')})`));
  }
  if (big !== undefined) {
    for (const c of [hi, 1]) {
      const gb = findRow(rows, 'gatehouse-http', c, big);
      const pb = findRow(rows, 'passthrough', c, big);
      const r = gb?.vsPassthrough.proxyCpu;
      lines.push(check(`${big / 1024} KiB result: CPU/call ≤ 1.3× pass-through (c=${c})`, r, 1.3, '≤', `${fmt(r, 2, '×')} (${fmt(gb?.cpuUsPerCall.proxy, 0, ' µs')} vs ${fmt(pb?.cpuUsPerCall.proxy, 0, ' µs')})`));
    }
  }
  const os = inputs.openStreams;
  lines.push(check('Idle RSS ≤ 80 MB', os?.idleRssMb, 80, '≤', fmt(os?.idleRssMb, 1, ' MiB')));
  const peakHi = Math.max(...rows.filter((r) => r.path === 'gatehouse-http' && r.concurrency === hi).map((r) => r.rssMb.proxyPeak ?? Number.NaN));
  lines.push(check(`RSS at c=${hi} ≤ 150 MB (peak over sizes)`, Number.isFinite(peakHi) ? peakHi : undefined, 150, '≤', fmt(peakHi, 1, ' MiB')));
  if (big !== undefined) {
    const series = findRow(rows, 'gatehouse-http', hi, big)?.perRound.rssEndMb.filter((v): v is number => v !== null) ?? [];
    const growth = series.length >= 2 ? series[series.length - 1]! - series[0]! : undefined;
    lines.push(check(`No RSS growth across repeated ${big / 1024} KiB runs (≤ 5 MiB first→last round)`, growth, 5, '≤', series.length >= 2 ? `${series.map((v) => v.toFixed(0)).join(' → ')} MiB` : 'needs ≥ 2 rounds'));
  }
  lines.push(check(`${os?.sessionsWanted ?? 1000} sessions with open GET streams ≤ 300 MB`, os && os.sessionsOpened === os.sessionsWanted ? os.openRssMb : undefined, 300, '≤', `${fmt(os?.openRssMb, 1, ' MiB')} (${os?.streamsOpen ?? 0} streams)`));
  const tl = inputs.toolsList;
  lines.push(check(`tools/list over ${tl?.targets ?? 50} targets / ${tl ? tl.targets * tl.toolsPerTarget : 2000} tools, warm p50 ≤ 5 ms (all pages)`, tl?.warmFullListP50Ms, 5, '≤', `${fmt(tl?.warmFullListP50Ms, 2, ' ms')} (first page ${fmt(tl?.warmFirstPageP50Ms, 2, ' ms')})`));
  lines.push(check('Session set-up ≤ 2 ms added over direct (c=1)', gh1?.vsDirect.addedSetupMs, 2, '≤', `${fmt(gh1?.vsDirect.addedSetupMs, 2, ' ms')} (${fmt(gh1?.setupMs, 2, ' ms')})`));
  return lines;
}
