import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock, type TimerHandle } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { createStdioTransport, type StdioTransportOptions } from './stdio-transport.ts';
import { computeRestartDelay } from './restart-backoff.ts';
import type { TransportHandlers, UpstreamTransport } from './transport.ts';

// Child scripts are plain CommonJS run with `node -e`, so every test is self-contained.
const ECHO = `
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.method === 'crash') process.exit(3);
  if (m.method === 'flood') { process.stdout.write('x'.repeat(5000) + '\\n'); return; }
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { echo: m.params ?? null } }) + '\\n');
});
`;

/** A manual clock that remembers the delay of the last timer it scheduled. */
class RecordingClock extends ManualClock {
  lastDelay: number | undefined;
  override setTimeout(fn: () => void, ms: number): TimerHandle {
    this.lastDelay = ms;
    return super.setTimeout(fn, ms);
  }
}

interface Disconnect {
  error: Error;
  willRestart: boolean;
  /** The restart delay the transport scheduled just before reporting. */
  delay: number | undefined;
}

interface Recorder extends TransportHandlers {
  messages: JsonRpcMessage[];
  diagnostics: string[];
  disconnects: Disconnect[];
  connects: number;
}

function recorder(clock?: RecordingClock): Recorder {
  const rec: Recorder = {
    messages: [],
    diagnostics: [],
    disconnects: [],
    connects: 0,
    onMessage: (message) => rec.messages.push(message),
    onDisconnect: (error, willRestart) =>
      rec.disconnects.push({ error, willRestart, delay: willRestart ? clock?.lastDelay : undefined }),
    onConnect: () => {
      rec.connects++;
    },
    onDiagnostic: (line) => rec.diagnostics.push(line),
  };
  return rec;
}

const started: UpstreamTransport[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.close()));
});

function make(
  script: string,
  overrides: Partial<StdioTransportOptions> = {},
): { transport: UpstreamTransport; rec: Recorder } {
  const clock = overrides.clock instanceof RecordingClock ? overrides.clock : undefined;
  const transport = createStdioTransport({
    command: process.execPath,
    args: ['-e', script],
    env: {},
    maxLineBytes: 1024 * 1024,
    restart: { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0 },
    stopGraceMs: 2_000,
    ...overrides,
  });
  started.push(transport);
  return { transport, rec: recorder(clock) };
}

const waitFor = (check: () => void): Promise<void> => vi.waitFor(check, { timeout: 5_000, interval: 5 });

function request(id: number, method: string, params?: Record<string, unknown>): JsonRpcMessage {
  return params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
}

function codeOf(err: unknown): string | undefined {
  return err instanceof GatehouseError ? err.code : undefined;
}

async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !(err instanceof Error && 'code' in err && err.code === 'ESRCH');
  }
}

/**
 * True when the process no longer runs: gone, a zombie (reaping orphans is init's job, and some
 * container inits never do it), or already inside exit (Linux closes its files, which is what
 * ends our wait, a moment before it turns into a zombie).
 */
function isGone(pid: number): boolean {
  if (!exists(pid)) return true;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return !exists(pid);
  }
  // Fields after "pid (comm) ": state ppid pgrp session tty_nr tpgid flags ...
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const PF_EXITING = 0x4;
  return fields[0] === 'Z' || fields[0] === 'X' || (Number(fields[6]) & PF_EXITING) !== 0;
}

function pidFrom(lines: string[], label: string): number | undefined {
  for (const line of lines) {
    const m = new RegExp(`^${label} (\\d+)$`).exec(line);
    if (m?.[1] !== undefined) return Number(m[1]);
  }
  return undefined;
}

describe('computeRestartDelay', () => {
  const policy = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0 };

  it('is exactly exponential and capped without jitter', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => computeRestartDelay(policy, n, () => 0.9))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
    expect(computeRestartDelay(policy, 10_000, () => 0.5)).toBe(1_000);
  });

  it('only shortens the delay, by at most the jitter fraction', () => {
    const jittered = { ...policy, jitter: 0.5 };
    expect(computeRestartDelay(jittered, 1, () => 0)).toBe(200);
    expect(computeRestartDelay(jittered, 1, () => 0.5)).toBe(150);
    expect(computeRestartDelay(jittered, 20, () => 0.999_999)).toBe(500);
  });
});

describe('stdio transport', () => {
  it('round-trips messages and counts bytes', async () => {
    const { transport, rec } = make(ECHO);
    await transport.start(rec);
    expect(rec.connects).toBe(1);
    await transport.send(request(1, 'ping', { text: 'héllo\nworld' }));
    await waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.messages[0]).toEqual({ jsonrpc: '2.0', id: 1, result: { echo: { text: 'héllo\nworld' } } });
    expect(transport.kind).toBe('stdio');
    expect(transport.stats.bytesOut).toBeGreaterThan(40);
    expect(transport.stats.bytesIn).toBeGreaterThan(40);
  });

  it('skips and counts stdout lines that are not JSON-RPC while valid ones flow', async () => {
    const script = `
      const a = JSON.stringify({ jsonrpc: '2.0', method: 'a' });
      const b = JSON.stringify({ jsonrpc: '2.0', method: 'b' });
      process.stdout.write('banner v1\\n' + a + '\\n\\n  \\n[1,2]\\n' + 'z'.repeat(1000) + '\\n' + b + '\\r\\n');
      process.stdin.resume();
    `;
    const { transport, rec } = make(script);
    await transport.start(rec);
    await waitFor(() => expect(rec.messages).toHaveLength(2));
    expect(rec.messages.map((m) => ('method' in m ? m.method : ''))).toEqual(['a', 'b']);
    expect(transport.stats.skippedLines).toBe(3);
    const skipped = rec.diagnostics.filter((d) => d.startsWith('skipped stdout line'));
    expect(skipped).toHaveLength(3);
    expect(skipped[0]).toContain('banner v1');
    for (const d of skipped) expect(d.length).toBeLessThan(300);
    expect(rec.disconnects).toEqual([]);
  });

  it('drains stderr line by line into diagnostics, truncated, without ever blocking the child', async () => {
    const script = `
      process.stderr.write('hello stderr\\r\\n' + 'y'.repeat(5000) + '\\n' + 'w'.repeat(20000) + '\\n');
      // 2 MB of stderr: the child blocks forever unless the gateway keeps reading it.
      for (let i = 0; i < 2000; i++) process.stderr.write('log ' + 'q'.repeat(1000) + '\\n');
      process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'done' }) + '\\n');
      process.stdin.resume();
    `;
    const { transport, rec } = make(script);
    await transport.start(rec);
    await waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.diagnostics[0]).toBe('hello stderr');
    expect(rec.diagnostics[1]).toMatch(/^y{1999}…$/);
    expect(rec.diagnostics[2]).toMatch(/^w{1999}…$/);
    await waitFor(() => expect(rec.diagnostics.filter((d) => d.startsWith('log '))).toHaveLength(2000));
  });

  it('kills and restarts a child whose stdout line exceeds maxLineBytes', async () => {
    const clock = new RecordingClock();
    const { transport, rec } = make(ECHO, { clock, maxLineBytes: 1024 });
    await transport.start(rec);
    await transport.send(request(1, 'flood'));
    await waitFor(() => expect(rec.disconnects).toHaveLength(1));
    const [lost] = rec.disconnects;
    expect(codeOf(lost?.error)).toBe('UPSTREAM_PROTOCOL_ERROR');
    expect(lost?.willRestart).toBe(true);
    expect(lost?.delay).toBe(100);
    expect(rec.diagnostics.some((d) => d.includes('longer than 1024 bytes'))).toBe(true);
    expect(codeOf(await rejectionOf(transport.send(request(2, 'ping'))))).toBe('UPSTREAM_UNAVAILABLE');

    clock.advance(100);
    await waitFor(() => expect(rec.connects).toBe(2));
    expect(transport.stats.restarts).toBe(1);
    await transport.send(request(3, 'ping'));
    await waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.messages[0]).toMatchObject({ id: 3 });
  });

  it('restarts a crashing child with exponential backoff and stops after maxRestarts', async () => {
    const clock = new RecordingClock();
    const restart = { initialDelayMs: 100, maxDelayMs: 300, multiplier: 2, jitter: 0, maxRestarts: 4 };
    const { transport, rec } = make('process.exit(3)', { clock, restart });
    await transport.start(rec);
    for (let n = 1; n <= 4; n++) {
      await waitFor(() => expect(rec.disconnects).toHaveLength(n));
      const delay = rec.disconnects[n - 1]?.delay ?? -1;
      clock.advance(delay);
      await waitFor(() => expect(rec.connects).toBe(n + 1));
    }
    await waitFor(() => expect(rec.disconnects).toHaveLength(5));
    expect(rec.disconnects.map((d) => d.delay)).toEqual([100, 200, 300, 300, undefined]);
    expect(rec.disconnects.map((d) => d.willRestart)).toEqual([true, true, true, true, false]);
    expect(rec.disconnects[0]?.error.message).toContain('exited with code 3');
    expect(codeOf(rec.disconnects[0]?.error)).toBe('UPSTREAM_UNAVAILABLE');
    expect(transport.stats.restarts).toBe(4);
    expect(clock.pending).toBe(0);
    expect(codeOf(await rejectionOf(transport.send(request(1, 'ping'))))).toBe('UPSTREAM_UNAVAILABLE');
  });

  it('resets the backoff after the child stayed up for 30 s', async () => {
    const clock = new RecordingClock();
    const { transport, rec } = make(ECHO, { clock });
    await transport.start(rec);
    const crashAndRestart = async (n: number): Promise<number | undefined> => {
      await transport.send(request(n, 'crash'));
      await waitFor(() => expect(rec.disconnects).toHaveLength(n));
      const delay = rec.disconnects[n - 1]?.delay;
      clock.advance(delay ?? 0);
      await waitFor(() => expect(rec.connects).toBe(n + 1));
      return delay;
    };
    expect(await crashAndRestart(1)).toBe(100);
    expect(await crashAndRestart(2)).toBe(200);
    clock.advance(30_000);
    expect(await crashAndRestart(3)).toBe(100);
  });

  it('close() cancels a pending restart', async () => {
    const clock = new RecordingClock();
    const { transport, rec } = make('process.exit(1)', { clock });
    await transport.start(rec);
    await waitFor(() => expect(rec.disconnects).toHaveLength(1));
    expect(clock.pending).toBe(1);
    await transport.close();
    expect(clock.pending).toBe(0);
    clock.advance(10_000);
    expect(rec.connects).toBe(1);
  });

  it('close() escalates stdin close → SIGTERM → SIGKILL and kills the whole process group', async () => {
    const script = `
      const { spawn } = require('node:child_process');
      process.on('SIGTERM', () => process.stderr.write('got SIGTERM\\n'));
      process.stdin.on('end', () => process.stderr.write('stdin closed\\n'));
      process.stdin.resume();
      const grandchild = spawn('sleep', ['60'], { stdio: 'ignore' });
      process.stderr.write('child ' + process.pid + '\\ngrandchild ' + grandchild.pid + '\\n');
      setInterval(() => {}, 1000);
    `;
    const { transport, rec } = make(script, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, stopGraceMs: 200 });
    await transport.start(rec);
    await waitFor(() => expect(pidFrom(rec.diagnostics, 'grandchild')).toBeDefined());
    const child = pidFrom(rec.diagnostics, 'child') ?? 0;
    const grandchild = pidFrom(rec.diagnostics, 'grandchild') ?? 0;

    const t0 = performance.now();
    await transport.close();
    const elapsed = performance.now() - t0;

    expect(elapsed).toBeGreaterThanOrEqual(380);
    const stdinAt = rec.diagnostics.indexOf('stdin closed');
    const termAt = rec.diagnostics.indexOf('got SIGTERM');
    expect(stdinAt).toBeGreaterThanOrEqual(0);
    expect(termAt).toBeGreaterThan(stdinAt);
    expect(isGone(child)).toBe(true);
    await vi.waitFor(() => expect(isGone(grandchild)).toBe(true), { timeout: 1_000, interval: 10 });
    // A stop that close() asked for is not reported as a loss.
    expect(rec.disconnects).toEqual([]);
  });

  it('kills grandchildren that hold the pipes when the child crashes, and still reports the loss', async () => {
    const script = `
      const { spawn } = require('node:child_process');
      const grandchild = spawn('sleep', ['60'], { stdio: 'inherit' });
      process.stderr.write('grandchild ' + grandchild.pid + '\\n');
      setTimeout(() => process.exit(1), 100);
    `;
    const restart = { initialDelayMs: 100, maxDelayMs: 100, multiplier: 1, jitter: 0, maxRestarts: 0 };
    const { transport, rec } = make(script, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, restart });
    // The loss is reported once the pipes close, which the grandchild holds: it must be dead by then
    // (without the group kill it would live on and only the 1 s drain bound would end the wait).
    let goneAtDisconnect: boolean | undefined;
    const onDisconnect = rec.onDisconnect;
    rec.onDisconnect = (error, willRestart) => {
      goneAtDisconnect = isGone(pidFrom(rec.diagnostics, 'grandchild') ?? 0);
      onDisconnect(error, willRestart);
    };
    await transport.start(rec);
    await waitFor(() => expect(rec.disconnects).toHaveLength(1));
    expect(rec.disconnects[0]?.willRestart).toBe(false);
    expect(goneAtDisconnect).toBe(true);
  });

  it('close() is idempotent, and send/start after close reject', async () => {
    const { transport, rec } = make(ECHO);
    await transport.start(rec);
    const first = transport.close();
    expect(transport.close()).toBe(first);
    await first;
    await transport.close();
    expect(codeOf(await rejectionOf(transport.send(request(1, 'ping'))))).toBe('UPSTREAM_UNAVAILABLE');
    expect(codeOf(await rejectionOf(transport.start(rec)))).toBe('UPSTREAM_UNAVAILABLE');
    expect(rec.disconnects).toEqual([]);
  });

  it('close() during start stops the child and rejects the start', async () => {
    const { transport, rec } = make(ECHO);
    const starting = transport.start(rec);
    const closing = transport.close();
    expect(codeOf(await rejectionOf(starting))).toBe('UPSTREAM_UNAVAILABLE');
    await closing;
    expect(rec.connects).toBe(0);
    expect(rec.disconnects).toEqual([]);
  });

  it('survives a handler that throws', async () => {
    const { transport, rec } = make(ECHO);
    const onMessage = rec.onMessage;
    let calls = 0;
    rec.onMessage = (message, context) => {
      if (++calls === 1) throw new Error('handler bug');
      onMessage(message, context);
    };
    await transport.start(rec);
    await transport.send(request(1, 'ping'));
    await transport.send(request(2, 'ping'));
    await waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.messages[0]).toMatchObject({ id: 2 });
    expect(rec.diagnostics).toContain('transport handler threw: handler bug');
  });

  it('close() before start resolves at once', async () => {
    const { transport } = make(ECHO);
    await transport.close();
  });

  it('rejects start with UPSTREAM_UNAVAILABLE when the command does not exist, without scheduling restarts', async () => {
    const clock = new RecordingClock();
    const { transport, rec } = make('', { command: 'gatehouse-no-such-command-xyz', args: [], clock });
    const err = await rejectionOf(transport.start(rec));
    expect(codeOf(err)).toBe('UPSTREAM_UNAVAILABLE');
    expect(String(err)).toContain('ENOENT');
    expect(clock.pending).toBe(0);
    expect(rec.connects).toBe(0);
    expect(rec.disconnects).toEqual([]);
  });

  it('gives the child exactly the environment it was passed', async () => {
    const script = `
      process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'env', params: { keys: Object.keys(process.env).sort() } }) + '\\n');
      process.stdin.resume();
    `;
    const { transport, rec } = make(script, { env: { GATEHOUSE_ONE: '1', ZED: 'z' } });
    await transport.start(rec);
    await waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.messages[0]).toMatchObject({ params: { keys: ['GATEHOUSE_ONE', 'ZED'] } });
  });

  it('waits for stdin to drain before resolving a large send', async () => {
    // The child reads nothing for 300 ms, so a 1 MB frame cannot fit in the pipe.
    const script = `setTimeout(() => process.stdin.resume(), 300);`;
    const { transport, rec } = make(script);
    await transport.start(rec);
    let resolved = false;
    const sent = transport.send(request(1, 'big', { blob: 'b'.repeat(1024 * 1024) })).then(() => {
      resolved = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(resolved).toBe(false);
    await sent;
    expect(resolved).toBe(true);
  });

  it('rejects a send waiting for drain when the child dies', async () => {
    const script = `setTimeout(() => process.exit(0), 200);`;
    const restart = { initialDelayMs: 100, maxDelayMs: 100, multiplier: 1, jitter: 0, maxRestarts: 0 };
    const { transport, rec } = make(script, { restart });
    await transport.start(rec);
    const err = await rejectionOf(transport.send(request(1, 'big', { blob: 'b'.repeat(1024 * 1024) })));
    expect(codeOf(err)).toBe('UPSTREAM_UNAVAILABLE');
    await waitFor(() => expect(rec.disconnects).toHaveLength(1));
  });
});
