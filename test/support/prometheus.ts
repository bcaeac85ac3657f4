// Scraping the admin listener's /metrics and reading it with a real Prometheus text-format
// parser (parse-prometheus-text-format, prom2json-compatible output).
import parsePrometheusTextFormat, { type PrometheusFamily, type PrometheusSample } from 'parse-prometheus-text-format';

export type { PrometheusFamily, PrometheusSample };

/** GET `<adminBase>/metrics`, check the exposition content type, parse it. */
export async function scrapeMetrics(adminBase: string): Promise<PrometheusFamily[]> {
  const res = await fetch(`${adminBase}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain') || !type.includes('version=0.0.4')) throw new Error(`unexpected content type ${type}`);
  return parsePrometheusTextFormat(await res.text());
}

export function family(families: readonly PrometheusFamily[], name: string): PrometheusFamily | undefined {
  return families.find((f) => f.name === name);
}

/** Samples of a family whose labels include every given label (exact values). */
export function samples(families: readonly PrometheusFamily[], name: string, labels: Record<string, string> = {}): PrometheusSample[] {
  return (family(families, name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => (m.labels?.[k] ?? '') === v));
}

/** Sum of the values (or histogram counts) of the matching samples. */
export function total(families: readonly PrometheusFamily[], name: string, labels: Record<string, string> = {}): number {
  return samples(families, name, labels).reduce((sum, m) => sum + Number(m.value ?? m.count ?? 0), 0);
}
