/**
 * Many idle sessions: a fresh Gatehouse (HTTP→HTTP) takes N sessions, each holding its
 * standalone GET stream open, and we read its memory: idle before, with every stream open,
 * and after they all close. Sessions open in bounded batches; everything is bounded in time.
 */
import { startGatehouse, type GatehouseLaunch } from './gatehouse.ts';
import { McpHttpClient, type McpSession } from './mcp-client.ts';
import { readMemory } from './proc-stats.ts';
import { round } from './stats.ts';

export interface OpenStreamsResult {
  sessionsWanted: number;
  sessionsOpened: number;
  streamsOpen: number;
  /** MiB: 1 s after start (no traffic yet); with every stream open; peak; 1 s after closing. */
  idleRssMb: number | null;
  openRssMb: number | null;
  hwmMb: number | null;
  afterCloseRssMb: number | null;
  /** Per open session and stream, KiB above idle. */
  kibPerSession: number | null;
  openMs: number | null;
  error: string | null;
}

export interface OpenStreamsOptions {
  gatehouse: GatehouseLaunch;
  upstreamUrl: string;
  sessions: number;
  batch: number;
  timeBudgetMs: number;
}

const MB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runOpenStreams(opts: OpenStreamsOptions): Promise<OpenStreamsResult> {
  const result: OpenStreamsResult = {
    sessionsWanted: opts.sessions, sessionsOpened: 0, streamsOpen: 0, idleRssMb: null, openRssMb: null, hwmMb: null, afterCloseRssMb: null, kibPerSession: null, openMs: null, error: null,
  };
  const gateway = await startGatehouse(opts.gatehouse, 'gatehouse-streams', { echo: { transport: 'streamable-http', url: opts.upstreamUrl } });
  const pid = gateway.process.pid;
  const posts = new McpHttpClient(gateway.url, Math.min(64, opts.batch), gateway.headers);
  const streams = new McpHttpClient(gateway.url, opts.sessions + 8, gateway.headers);
  const sessions: McpSession[] = [];
  const closers: Array<() => void> = [];
  try {
    await sleep(1_000);
    const idle = readMemory(pid).rss;
    result.idleRssMb = round(idle / MB, 1);
    const started = performance.now();
    const deadline = Date.now() + opts.timeBudgetMs;
    while (sessions.length < opts.sessions && Date.now() < deadline) {
      const n = Math.min(opts.batch, opts.sessions - sessions.length);
      const opened = await Promise.all(Array.from({ length: n }, () => posts.openSession()));
      sessions.push(...opened);
      const open = await Promise.all(opened.map((s) => streams.openStream(s)));
      for (const o of open) {
        closers.push(o.close);
        if (o.status === 200) result.streamsOpen++;
      }
    }
    result.openMs = round(performance.now() - started, 0);
    result.sessionsOpened = sessions.length;
    await sleep(1_000);
    const open = readMemory(pid);
    result.openRssMb = round(open.rss / MB, 1);
    result.hwmMb = round(open.hwm / MB, 1);
    result.kibPerSession = sessions.length > 0 ? round((open.rss - idle) / 1024 / sessions.length, 1) : null;
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    for (const close of closers) close();
    for (let i = 0; i < sessions.length; i += opts.batch) await Promise.all(sessions.slice(i, i + opts.batch).map((s) => posts.closeSession(s)));
    await sleep(1_000);
    result.afterCloseRssMb = round(readMemory(pid).rss / MB, 1);
    await posts.close();
    await streams.close();
    await gateway.process.stop();
  }
  return result;
}
