/**
 * tools/list across many targets: one echo process serves N catalog endpoints (`/mcp/t<i>`,
 * M tools each); a fresh Gatehouse fronts all of them. Cold: gateway start to ready (which
 * includes discovering every target) and the first full listing; warm: repeated full listings
 * (every page, following nextCursor) and first pages.
 */
import type { EchoVariant } from './echo-server.ts';
import { startGatehouse, type GatehouseLaunch, type GatehouseTarget } from './gatehouse.ts';
import { McpHttpClient, type McpSession } from './mcp-client.ts';
import { startEchoHttp } from './paths.ts';
import { failureSummary, type ManagedProcess } from './processes.ts';
import { readCpu, readMemory } from './proc-stats.ts';
import type { ServerPrograms } from './server-build.ts';
import { percentiles, round } from './stats.ts';

export interface ToolsListResult {
  targets: number;
  toolsPerTarget: number;
  toolsListed: number | null;
  pages: number | null;
  /** Spawn to ready, ms: process start plus discovery of every target. */
  gatewayStartMs: number | null;
  coldFullListMs: number | null;
  warmIterations: number;
  warmFullListP50Ms: number | null;
  warmFullListP99Ms: number | null;
  warmFirstPageP50Ms: number | null;
  /** Gateway CPU per full listing (warm), µs. */
  warmCpuUsPerFullList: number | null;
  gatewayRssMb: number | null;
  error: string | null;
}

export interface ToolsListOptions {
  gatehouse: GatehouseLaunch;
  programs: ServerPrograms;
  variant: EchoVariant;
  targets: number;
  toolsPerTarget: number;
  maxIterations: number;
  timeBudgetMs: number;
}

/** Every page of tools/list; returns the number of tools and pages. */
async function fullListing(client: McpHttpClient, session: McpSession): Promise<{ tools: number; pages: number }> {
  let cursor: string | undefined;
  let tools = 0;
  for (let pages = 1; pages <= 100; pages++) {
    const result = await client.request(session, 'tools/list', cursor === undefined ? {} : { cursor });
    tools += Array.isArray(result['tools']) ? result['tools'].length : 0;
    const next = result['nextCursor'];
    if (typeof next !== 'string' || next === '') return { tools, pages };
    cursor = next;
  }
  throw new Error('tools/list paged more than 100 times');
}

export async function runToolsList(opts: ToolsListOptions): Promise<ToolsListResult> {
  const result: ToolsListResult = {
    targets: opts.targets, toolsPerTarget: opts.toolsPerTarget, toolsListed: null, pages: null, gatewayStartMs: null, coldFullListMs: null,
    warmIterations: 0, warmFullListP50Ms: null, warmFullListP99Ms: null, warmFirstPageP50Ms: null, warmCpuUsPerFullList: null, gatewayRssMb: null, error: null,
  };
  let catalog: ManagedProcess | undefined;
  let client: McpHttpClient | undefined;
  let gateway: Awaited<ReturnType<typeof startGatehouse>> | undefined;
  try {
    catalog = await startEchoHttp(opts.gatehouse.registry, opts.programs, opts.gatehouse.cpu, opts.variant, ['--catalog', String(opts.targets), '--tools', String(opts.toolsPerTarget)], 'echo-catalog');
    const targets: Record<string, GatehouseTarget> = {};
    for (let i = 0; i < opts.targets; i++) targets[`t${i}`] = { transport: 'streamable-http', url: `${catalog.ready}/t${i}` };
    const started = performance.now();
    gateway = await startGatehouse(opts.gatehouse, 'gatehouse-catalog', targets, { readyTimeoutMs: 120_000 });
    result.gatewayStartMs = round(performance.now() - started, 1);
    client = new McpHttpClient(gateway.url, 4, gateway.headers);
    const session = await client.openSession();
    let t0 = performance.now();
    const cold = await fullListing(client, session);
    result.coldFullListMs = round(performance.now() - t0, 2);
    result.toolsListed = cold.tools;
    result.pages = cold.pages;
    const full = new Float64Array(opts.maxIterations);
    const first = new Float64Array(opts.maxIterations);
    const deadline = Date.now() + opts.timeBudgetMs;
    const pid = gateway.process.pid;
    const cpuBefore = readCpu([pid]).own.get(pid) ?? 0;
    let n = 0;
    for (; n < opts.maxIterations && Date.now() < deadline; n++) {
      t0 = performance.now();
      await fullListing(client, session);
      full[n] = performance.now() - t0;
    }
    const cpuUs = (readCpu([pid]).own.get(pid) ?? 0) - cpuBefore;
    let m = 0;
    for (; m < n; m++) {
      t0 = performance.now();
      await client.request(session, 'tools/list', {});
      first[m] = performance.now() - t0;
    }
    result.warmIterations = n;
    const [p50, p99] = percentiles(full, n, [50, 99]);
    result.warmFullListP50Ms = round(p50!, 2);
    result.warmFullListP99Ms = round(p99!, 2);
    result.warmFirstPageP50Ms = round(percentiles(first, m, [50])[0]!, 2);
    result.warmCpuUsPerFullList = n > 0 ? round(cpuUs / n, 0) : null;
    result.gatewayRssMb = round(readMemory(pid).rss / (1024 * 1024), 1);
    await client.closeSession(session);
  } catch (err) {
    result.error = failureSummary(err);
  } finally {
    await client?.close();
    await gateway?.process.stop();
    await catalog?.stop();
  }
  return result;
}
