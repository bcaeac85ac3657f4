/**
 * Command-line options of `npm run bench`, and the three profiles:
 *   --smoke  one short round, small scenarios; asserts only that every path answered (CI)
 *   --quick  2 rounds, tiny and 100 KiB results, under 3 minutes
 *   (none)   the full run: 5 rounds, three sizes, profile; under 30 minutes
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { EchoVariant } from './echo-server.ts';
import { PATH_IDS, type PathId } from './paths.ts';
import { BENCH_DIR } from './server-build.ts';

export type Mode = 'smoke' | 'quick' | 'full';

export interface BenchOptions {
  mode: Mode;
  rounds: number;
  concurrencies: number[];
  sizes: number[];
  sharedSessionConcurrency: number | undefined;
  warmupMs: number;
  measureMs: number;
  maxCalls: number;
  setupSamples: number;
  toolsList: { targets: number; toolsPerTarget: number; maxIterations: number; timeBudgetMs: number } | undefined;
  openStreams: { sessions: number; batch: number; timeBudgetMs: number } | undefined;
  profileSeconds: number | undefined;
  variant: EchoVariant;
  only: Set<PathId>;
  logSink: 'file' | 'devnull';
  /** `tsx`: bin/gatehouse.js as shipped; `bundle`: src/main.ts bundled to plain JS (no loader). */
  gatehouseRuntime: 'tsx' | 'bundle';
  /** Another checkout to measure (its bin/gatehouse.js), e.g. to compare before and after a change. */
  gatehouseDir: string | undefined;
  /** Parsed --gatehouse-config file: merged into every generated Gatehouse config. */
  gatehouseConfig: Record<string, unknown> | undefined;
  withPeers: boolean;
  pin: boolean;
  outDir: string;
  /** Also write bench/REPORT.md and bench/REPORT.svg (the committed copy of a full run). */
  publish: boolean;
}

export const USAGE = `npm run bench -- [--smoke | --quick] [options]
  --rounds N            rounds (default: smoke 1, quick 2, full 5)
  --warmup-ms N         warm-up per window
  --measure-ms N        measured window
  --sizes 100,1024,...  result sizes in bytes
  --concurrency 1,32    concurrency levels
  --paths a,b           only these paths (${PATH_IDS.join(', ')})
  --upstream V          echo server variant: sdk (default), sdk-stateless, raw
  --log-sink S          Gatehouse log: file (default) or devnull
  --gatehouse R         tsx (default: bin/gatehouse.js as shipped) or bundle (src/ bundled, no loader)
  --gatehouse-dir DIR   measure the Gatehouse checkout in DIR (its bin/gatehouse.js; needs node_modules)
  --gatehouse-config F  YAML/JSON merged into every Gatehouse config (turn on auth, audit, rate limits)
  --no-peers            skip mcp-proxy and supergateway
  --no-extras           skip the tools/list and open-streams scenarios
  --profile             add a --cpu-prof pass (on by default in the full run)
  --no-profile          no profile pass
  --no-pin              do not pin with taskset
  --out DIR             output dir (default bench/results)
  --publish             also write bench/REPORT.md + REPORT.svg (commit them after a quiet full run)`;

function profile(mode: Mode): BenchOptions {
  const base = {
    mode,
    concurrencies: [1, 32],
    sharedSessionConcurrency: 32,
    maxCalls: 2_000_000,
    variant: 'sdk' as EchoVariant,
    only: new Set<PathId>(PATH_IDS),
    logSink: 'file' as const,
    gatehouseRuntime: 'tsx' as const,
    gatehouseDir: undefined,
    gatehouseConfig: undefined,
    withPeers: true,
    pin: true,
    outDir: path.join(BENCH_DIR, 'results'),
    publish: false,
  };
  switch (mode) {
    case 'smoke':
      return {
        ...base, rounds: 1, sizes: [100, 102_400], warmupMs: 500, measureMs: 2_000, setupSamples: 2,
        toolsList: { targets: 5, toolsPerTarget: 40, maxIterations: 20, timeBudgetMs: 3_000 },
        openStreams: { sessions: 50, batch: 25, timeBudgetMs: 10_000 },
        profileSeconds: undefined,
      };
    case 'quick':
      return {
        ...base, rounds: 2, sizes: [100, 102_400], warmupMs: 250, measureMs: 800, setupSamples: 3,
        toolsList: { targets: 50, toolsPerTarget: 40, maxIterations: 200, timeBudgetMs: 3_000 },
        openStreams: { sessions: 1_000, batch: 50, timeBudgetMs: 30_000 },
        profileSeconds: undefined,
      };
    case 'full':
      return {
        ...base, rounds: 5, sizes: [100, 1_024, 102_400], warmupMs: 1_000, measureMs: 3_000, setupSamples: 5,
        toolsList: { targets: 50, toolsPerTarget: 40, maxIterations: 1_000, timeBudgetMs: 10_000 },
        openStreams: { sessions: 1_000, batch: 50, timeBudgetMs: 60_000 },
        profileSeconds: 8,
      };
  }
}

const numbers = (text: string): number[] => text.split(',').map((s) => Number(s.trim())).filter((v) => Number.isFinite(v) && v > 0);

export function parseOptions(argv: readonly string[]): BenchOptions {
  const mode: Mode = argv.includes('--smoke') ? 'smoke' : argv.includes('--quick') ? 'quick' : 'full';
  const o = profile(mode);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--smoke':
      case '--quick':
      case '--full':
        break;
      case '--rounds': o.rounds = Math.max(1, Math.min(50, Number(value()) || 1)); break;
      case '--warmup-ms': o.warmupMs = Math.max(0, Math.min(60_000, Number(value()) || 0)); break;
      case '--measure-ms': o.measureMs = Math.max(100, Math.min(600_000, Number(value()) || 100)); break;
      case '--sizes': o.sizes = numbers(value()); break;
      case '--concurrency': o.concurrencies = numbers(value()).map(Math.floor); break;
      case '--paths': {
        const ids = value().split(',').map((s) => s.trim());
        const bad = ids.filter((id) => !(PATH_IDS as readonly string[]).includes(id));
        if (bad.length > 0) throw new Error(`unknown path(s): ${bad.join(', ')}`);
        // direct is the reference for every ratio: always measured.
        o.only = new Set(['direct', ...ids] as PathId[]);
        break;
      }
      case '--upstream': {
        const v = value();
        if (v !== 'sdk' && v !== 'sdk-stateless' && v !== 'raw') throw new Error('--upstream is sdk, sdk-stateless or raw');
        o.variant = v;
        break;
      }
      case '--log-sink': {
        const v = value();
        if (v !== 'file' && v !== 'devnull') throw new Error('--log-sink is file or devnull');
        o.logSink = v;
        break;
      }
      case '--gatehouse': {
        const v = value();
        if (v !== 'tsx' && v !== 'bundle') throw new Error('--gatehouse is tsx or bundle');
        o.gatehouseRuntime = v;
        break;
      }
      case '--gatehouse-dir': o.gatehouseDir = path.resolve(value()); break;
      case '--gatehouse-config': {
        const file = path.resolve(value());
        const parsed = parseYaml(readFileSync(file, 'utf8')) as unknown;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: expected a mapping`);
        o.gatehouseConfig = parsed as Record<string, unknown>;
        break;
      }
      case '--no-peers': o.withPeers = false; break;
      case '--no-extras': o.toolsList = undefined; o.openStreams = undefined; break;
      case '--profile': o.profileSeconds ??= 5; break;
      case '--no-profile': o.profileSeconds = undefined; break;
      case '--no-pin': o.pin = false; break;
      case '--out': o.outDir = path.resolve(value()); break;
      case '--publish': o.publish = true; break;
      case '--help':
      case '-h':
        throw new Error(USAGE);
      default:
        throw new Error(`unknown option ${arg}\n${USAGE}`);
    }
  }
  if (o.sizes.length === 0 || o.concurrencies.length === 0) throw new Error('--sizes and --concurrency need at least one value');
  const hi = Math.max(...o.concurrencies);
  o.sharedSessionConcurrency = hi > 1 ? hi : undefined;
  return o;
}
