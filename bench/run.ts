/**
 * `npm run bench [-- --smoke | --quick]`: the benchmark harness of issue 3.
 *
 * Starts the echo upstream and every path under test on 127.0.0.1 (server side pinned to
 * core 0), pins itself (the load client) to core 1, runs the rounds, the tools/list and
 * open-streams scenarios and (full run) a profile pass, stops every process by PID, and
 * writes report-<mode>.md, results-<mode>.json and chart-<mode>.svg under bench/results/.
 * Exits non-zero when any path failed to answer (the --smoke contract for CI).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluateBudget } from './budget.ts';
import { renderChart } from './chart.ts';
import { describeMachine, projectVersions } from './environment.ts';
import { countLogLines, GATEHOUSE_ENTRY, gatehouseFeatures, type GatehouseLaunch } from './gatehouse.ts';
import { runMatrix } from './matrix.ts';
import { runOpenStreams, type OpenStreamsResult } from './open-streams.ts';
import { parseOptions, type BenchOptions } from './options.ts';
import { startFleet } from './paths.ts';
import { PEER_VERSIONS } from './peers.ts';
import { failureSummary, installCleanup, ProcessRegistry } from './processes.ts';
import { runProfile, type ProfileSummary } from './profile.ts';
import { renderReport, type RunReport } from './report.ts';
import { aggregate } from './results.ts';
import { BENCH_DIR, buildGatehouseBundle, buildServerPrograms, REPO_ROOT } from './server-build.ts';
import { runToolsList, type ToolsListResult } from './tools-list.ts';

/** Hard stop for the whole run: a hung step must not keep CI or a developer waiting. */
const HARD_LIMIT_MS = { smoke: 5 * 60_000, quick: 6 * 60_000, full: 45 * 60_000 } as const;

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/** Pin this process (all threads) to a core; the servers get the other one. */
function pinSelf(core: number): boolean {
  const result = spawnSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { encoding: 'utf8' });
  return result.status === 0;
}

async function main(options: BenchOptions): Promise<number> {
  const started = Date.now();
  const machine = describeMachine();
  const canPin = options.pin && machine.cores >= 2 && pinSelf(1);
  const serverCpu = canPin ? 0 : undefined;
  const pinning = canPin ? 'Servers pinned to core 0, load client to core 1 (taskset)' : 'No core pinning (taskset unavailable, one core, or --no-pin)';
  log(`gatehouse bench: ${options.mode}, ${options.rounds} round(s); ${pinning}; load average ${machine.loadAverage.join(' ')}`);

  const registry = new ProcessRegistry();
  const removeCleanup = installCleanup(registry, log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
  // Also on SIGINT, where `finally` below never runs (logs can be large).
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  const watchdog = setTimeout(() => {
    log(`run exceeded ${HARD_LIMIT_MS[options.mode] / 60_000} min: stopping`);
    void registry.stopAll().finally(() => process.exit(2));
  }, HARD_LIMIT_MS[options.mode]);
  watchdog.unref();

  let toolsList: ToolsListResult | undefined;
  let openStreams: OpenStreamsResult | undefined;
  let profile: ProfileSummary[] | undefined;
  try {
    const programs = await buildServerPrograms();
    const gatehouse: GatehouseLaunch = {
      registry, dir, cpu: serverCpu, logSink: options.logSink, extraConfig: options.gatehouseConfig,
      entry: options.gatehouseDir !== undefined ? path.join(options.gatehouseDir, 'bin/gatehouse.js') : options.gatehouseRuntime === 'bundle' ? await buildGatehouseBundle() : GATEHOUSE_ENTRY,
    };
    const fleet = await startFleet({ registry, programs, gatehouse, dir, serverCpu, variant: options.variant, only: options.only, withPeers: options.withPeers, log });
    for (const s of fleet.skipped) log(`skipping ${s.id}: ${s.reason}`);
    const samples = await runMatrix({
      fleet, rounds: options.rounds, concurrencies: options.concurrencies, sizes: options.sizes, sharedSessionConcurrency: options.sharedSessionConcurrency,
      warmupMs: options.warmupMs, measureMs: options.measureMs, maxCalls: options.maxCalls, setupSamples: options.setupSamples, log,
    });
    const logLines: Record<string, number> = {};
    for (const p of fleet.paths) if (p.logFile !== undefined && p.logFile !== '/dev/null') logLines[p.id] = countLogLines(p.logFile);
    // The matrix paths stop before the extras so their idle processes do not share the core.
    for (const p of fleet.paths) await p.front?.stop();

    // A scenario that fails is recorded in the report; it never discards the matrix.
    if (options.toolsList) {
      log(`tools/list: ${options.toolsList.targets} targets × ${options.toolsList.toolsPerTarget} tools`);
      toolsList = await runToolsList({ gatehouse, programs, variant: options.variant, ...options.toolsList });
      log(`  start→ready ${toolsList.gatewayStartMs} ms, cold ${toolsList.coldFullListMs} ms, warm p50 ${toolsList.warmFullListP50Ms} ms${toolsList.error ? `, error: ${toolsList.error}` : ''}`);
    }
    if (options.openStreams) {
      log(`open streams: ${options.openStreams.sessions} sessions`);
      openStreams = await runOpenStreams({ gatehouse, upstreamUrl: fleet.upstreamUrl, ...options.openStreams }).catch((err: unknown) => ({
        sessionsWanted: options.openStreams!.sessions, sessionsOpened: 0, streamsOpen: 0, idleRssMb: null, openRssMb: null, hwmMb: null,
        afterCloseRssMb: null, kibPerSession: null, openMs: null, error: failureSummary(err),
      }));
      log(`  idle ${openStreams.idleRssMb} MiB, with streams ${openStreams.openRssMb} MiB${openStreams.error ? `, error: ${openStreams.error}` : ''}`);
    }
    if (options.profileSeconds !== undefined) {
      log(`profile: ${options.profileSeconds} s per size under --cpu-prof`);
      profile = await runProfile({
        gatehouse, outDir: path.join(options.outDir, 'profile'), upstreamUrl: fleet.upstreamUrl,
        seconds: options.profileSeconds, sizes: [...new Set([options.sizes[0]!, options.sizes[options.sizes.length - 1]!])],
      }).catch((err: unknown) => [{ file: '', sizeBytes: options.sizes[0]!, totalMs: 0, calls: 0, byArea: [], byFunction: [], inclusive: [], error: failureSummary(err) }]);
    }
    await registry.stopAll();

    const rows = aggregate(samples);
    const direct = rows.find((r) => r.path === 'direct' && r.concurrency === Math.max(...options.concurrencies) && r.sizeBytes === options.sizes[0]);
    const report: RunReport = {
      meta: {
        mode: options.mode,
        startedAt: new Date(started).toISOString(),
        durationS: (Date.now() - started) / 1000,
        rounds: options.rounds,
        warmupMs: options.warmupMs,
        measureMs: options.measureMs,
        concurrencies: options.concurrencies,
        sizes: options.sizes,
        sharedSessionConcurrency: options.sharedSessionConcurrency,
        pinning,
        upstream: `bench/echo-server.ts, variant \`${options.variant}\` (${options.variant === 'raw' ? 'hand-written JSON-RPC, no SDK' : `@modelcontextprotocol/sdk ${projectVersions()['@modelcontextprotocol/sdk']} McpServer + StreamableHTTPServerTransport, JSON responses, ${options.variant === 'sdk' ? 'stateful: one long-lived server per session' : 'stateless: a new server per request'}`}); its own CPU per call ${direct?.cpuUsPerCall.upstream ?? '?'} µs (direct, tiny, c=${Math.max(...options.concurrencies)}); stdio paths run the same server over stdio`,
        gatehouseFeatures: gatehouseFeatures(options.logSink === 'devnull' ? '/dev/null' : 'file', options.gatehouseRuntime, options.gatehouseConfig),
        machine,
        loadAverageEnd: os.loadavg().map((v) => Math.round(v * 100) / 100),
        versions: { ...projectVersions(), ...(options.gatehouseDir ? { 'gatehouse checkout': options.gatehouseDir } : {}) },
        peers: options.withPeers ? { ...PEER_VERSIONS } : {},
        nginx: fleet.nginxVersion,
        paths: fleet.paths.map((p) => ({ id: p.id, describe: p.describe })),
        skipped: fleet.skipped,
        logLines,
        commandLine: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      },
      budget: evaluateBudget({ rows, tiny: options.sizes[0]!, big: options.sizes.length > 1 ? options.sizes[options.sizes.length - 1] : undefined, highConcurrency: Math.max(...options.concurrencies), toolsList, openStreams }),
      results: rows,
      toolsList,
      openStreams,
      profile,
    };
    mkdirSync(options.outDir, { recursive: true });
    const chartFile = `chart-${options.mode}.svg`;
    const chart = renderChart(rows, fleet.paths.map((p) => p.id), options.concurrencies, options.sizes[0]!, `${machine.cpuModel}, Node ${machine.node}, ${options.rounds} round(s), ${options.mode}`);
    writeFileSync(path.join(options.outDir, chartFile), chart);
    writeFileSync(path.join(options.outDir, `results-${options.mode}.json`), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(path.join(options.outDir, `report-${options.mode}.md`), renderReport(report, chartFile));
    if (options.publish) {
      writeFileSync(path.join(BENCH_DIR, 'REPORT.svg'), chart);
      writeFileSync(path.join(BENCH_DIR, 'REPORT.md'), renderReport(report, 'REPORT.svg'));
      log('published bench/REPORT.md and bench/REPORT.svg');
    }
    log(`\nwrote ${path.relative(REPO_ROOT, options.outDir)}/: report-${options.mode}.md, results-${options.mode}.json, ${chartFile} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    for (const b of report.budget) log(`  ${b.met === undefined ? '  ?' : b.met ? ' ok' : 'MISS'}  ${b.goal}: ${b.measured}`);

    const failed = rows.filter((r) => r.errors > 0 || r.calls === 0);
    const extrasFailed = [toolsList?.error, openStreams?.error, ...(profile ?? []).map((p) => p.error)].filter((e): e is string => typeof e === 'string');
    if (failed.length > 0 || extrasFailed.length > 0 || fleet.skipped.some((s) => !s.optional)) {
      for (const r of failed) log(`FAILED ${r.path} c=${r.concurrency} ${r.sizeBytes} B ${r.mode}: ${r.errors} error(s), ${r.calls} calls; ${r.firstError ?? ''}`);
      for (const e of extrasFailed) log(`FAILED scenario: ${e}`);
      for (const s of fleet.skipped.filter((s) => !s.optional)) log(`FAILED to start ${s.id}: ${s.reason}`);
      return 1;
    }
    log(options.mode === 'smoke' ? `smoke: every path answered without errors (${rows.length} rows)` : 'done');
    return 0;
  } finally {
    clearTimeout(watchdog);
    await registry.stopAll();
    removeCleanup();
    process.off('exit', removeDir);
    removeDir();
  }
}

let options: BenchOptions;
try {
  options = parseOptions(process.argv.slice(2));
  options.sizes.sort((a, b) => a - b);
} catch (err) {
  log((err as Error).message);
  process.exit(2);
}
main(options).then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
