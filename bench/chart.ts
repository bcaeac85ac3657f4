/**
 * The SVG chart (no dependencies): two panels of horizontal bars per path, CPU µs per call of
 * the path's own process and calls/s, each at concurrency 1 and at high concurrency (tiny result).
 */
import { findRow, type ResultRow } from './results.ts';
import { PATH_LABEL, type PathId } from './paths.ts';

const WIDTH = 980;
const PANEL = 440;
const LABEL = 170;
const ROW = 34;
const TOP = 64;
const COLORS = ['#8fb3d9', '#1f5f9e'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Panel {
  title: string;
  value(row: ResultRow): number | null;
  unit: string;
}

export function renderChart(rows: readonly ResultRow[], paths: readonly PathId[], concurrencies: readonly number[], size: number, subtitle: string): string {
  const panels: Panel[] = [
    // Direct has no proxy process: its bar is the upstream's own CPU, labelled so.
    { title: 'CPU per call, path process tree (µs, lower is better)', value: (r) => (r.path === 'direct' ? r.cpuUsPerCall.upstream : r.cpuUsPerCall.proxyTree), unit: 'µs' },
    { title: 'Throughput (calls/s, higher is better)', value: (r) => r.callsPerSec, unit: '/s' },
  ];
  const height = TOP + paths.length * ROW * 1 + 60;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="22" font-size="16" font-weight="600">Gatehouse benchmark: tools/call, ${size} B result</text>`,
    `<text x="12" y="40" fill="#555">${esc(subtitle)}</text>`,
  ];
  panels.forEach((panel, p) => {
    const x0 = 12 + p * (PANEL + 60);
    const values = paths.flatMap((id) => concurrencies.map((c) => findRow(rows, id, c, size)).map((r) => (r ? panel.value(r) ?? 0 : 0)));
    const max = Math.max(1, ...values);
    const barArea = PANEL - LABEL - 50;
    parts.push(`<text x="${x0}" y="${TOP - 8}" font-weight="600">${esc(panel.title)}</text>`);
    paths.forEach((id, i) => {
      const y = TOP + i * ROW;
      parts.push(`<text x="${x0 + LABEL - 6}" y="${y + 17}" text-anchor="end">${esc(PATH_LABEL[id])}${id === 'direct' && p === 0 ? ' (upstream)' : ''}</text>`);
      concurrencies.forEach((c, k) => {
        const row = findRow(rows, id, c, size);
        const v = row ? panel.value(row) : null;
        const w = v === null ? 0 : Math.max(1, (v / max) * barArea);
        const by = y + 3 + k * 14;
        parts.push(`<rect x="${x0 + LABEL}" y="${by}" width="${w.toFixed(1)}" height="12" fill="${COLORS[k % COLORS.length]}"/>`);
        parts.push(`<text x="${x0 + LABEL + w + 4}" y="${by + 10}" font-size="10" fill="#333">${v === null ? 'n/a' : `${Math.round(v).toLocaleString('en-US')}`}</text>`);
      });
    });
  });
  const ly = TOP + paths.length * ROW + 20;
  concurrencies.forEach((c, k) => {
    parts.push(`<rect x="${12 + k * 120}" y="${ly}" width="12" height="12" fill="${COLORS[k % COLORS.length]}"/>`);
    parts.push(`<text x="${30 + k * 120}" y="${ly + 10}">concurrency ${c}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
