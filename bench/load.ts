/**
 * The closed-loop load generator: N workers, each sending its next tools/call as soon as the
 * previous answer is in. A warm-up phase runs first; the measured window is bounded by time
 * and by call count, and hooks run at its edges (where the harness reads /proc).
 */
import type { McpHttpClient, McpSession } from './mcp-client.ts';

export interface LoadOptions {
  client: McpHttpClient;
  /** One per worker; the same session repeated is the shared-session mode. */
  sessions: readonly McpSession[];
  size: number;
  warmupMs: number;
  measureMs: number;
  /** Upper bound on calls in the window (latency samples beyond are not kept). */
  maxCalls: number;
  onWindowStart(): void;
  onWindowEnd(): void;
}

export interface LoadResult {
  calls: number;
  errors: number;
  firstError: string | undefined;
  /** Latency of each call completed in the window, ms. */
  latencies: Float64Array;
  samples: number;
  windowMs: number;
  /** CPU of this (client) process in the window, µs. */
  clientCpuUs: number;
}

const ERROR_BACKOFF_MS = 20;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies = new Float64Array(Math.max(1, options.maxCalls));
  let phase: 'warmup' | 'window' | 'done' = 'warmup';
  let calls = 0;
  let errors = 0;
  let firstError: string | undefined;
  let windowStart = 0;
  let windowMs = 0;
  let cpuAtStart = process.cpuUsage();
  let clientCpuUs = 0;

  const closeWindow = (): void => {
    if (phase !== 'window') return;
    windowMs = performance.now() - windowStart;
    const cpu = process.cpuUsage(cpuAtStart);
    clientCpuUs = cpu.user + cpu.system;
    options.onWindowEnd();
    phase = 'done';
  };

  const worker = async (session: McpSession): Promise<void> => {
    while (phase !== 'done') {
      const started = performance.now();
      let ok = false;
      try {
        ok = await options.client.callEcho(session, options.size);
        if (!ok) firstError ??= 'tools/call answered without the expected result';
      } catch (err) {
        firstError ??= (err as Error).message;
      }
      if (phase === 'window') {
        if (ok) {
          if (calls < latencies.length) latencies[calls] = performance.now() - started;
          calls++;
          if (calls >= options.maxCalls) closeWindow();
        } else errors++;
      }
      if (!ok) await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
    }
  };

  const warmup = setTimeout(() => {
    phase = 'window';
    options.onWindowStart();
    cpuAtStart = process.cpuUsage();
    windowStart = performance.now();
  }, options.warmupMs);
  const end = setTimeout(closeWindow, options.warmupMs + options.measureMs);
  try {
    await Promise.all(options.sessions.map((s) => worker(s)));
  } finally {
    clearTimeout(warmup);
    clearTimeout(end);
  }
  return { calls, errors, firstError, latencies, samples: Math.min(calls, latencies.length), windowMs, clientCpuUs };
}
