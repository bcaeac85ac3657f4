/**
 * The stdio upstream transport: one supervised child process per target, speaking
 * newline-delimited JSON-RPC on stdin/stdout (MCP basic/transports, "stdio").
 *
 * Lifecycle of the transport (the child under it comes and goes):
 *
 *   idle ──start()──▶ starting ──spawned──▶ running ──child lost──▶ backoff ──timer──▶ starting
 *                        │                                   └──────(max reached)──▶ stopped
 *                        └──spawn failed (first start)──▶ idle
 *   any ──close()──▶ closed
 *
 * The child runs in its own process group (`detached`), so stopping it also stops whatever it
 * spawned; nothing is ever run through a shell.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { parseMessage, type JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { LineSplitter } from './line-splitter.ts';
import { computeRestartDelay, STABLE_UPTIME_MS, type StdioRestartPolicy } from './restart-backoff.ts';
import { callHandler, type TransportHandlers, type TransportStats, type UpstreamTransport } from './transport.ts';

/** Options of `createStdioTransport`. */
export interface StdioTransportOptions {
  /** Executable, resolved on the PATH of `env` by spawn; never run through a shell. */
  command: string;
  args: string[];
  cwd?: string;
  /** The complete environment of the child (already filtered by the caller); not merged. */
  env: Record<string, string>;
  /** A stdout line longer than this kills and restarts the child. */
  maxLineBytes: number;
  restart: StdioRestartPolicy;
  /** After stdin is closed, wait this long before SIGTERM, then as long again before SIGKILL. */
  stopGraceMs: number;
  clock?: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;
  /** Source of jitter, in [0, 1). */
  random?: () => number;
}

/** How long to wait, after the child exited, for its stdout/stderr pipes to close. */
const EXIT_DRAIN_MS = 1_000;
const STDERR_MAX_CHARS = 2_000;
// 4 bytes per character at most in UTF-8, so 2,000 characters always fit.
const STDERR_MAX_LINE_BYTES = 4 * STDERR_MAX_CHARS;
const PREVIEW_MAX_CHARS = 200;

/** Start a stdio upstream: spawn, frame, supervise. */
export function createStdioTransport(options: StdioTransportOptions): UpstreamTransport {
  return new StdioTransport(options);
}

type State = 'idle' | 'starting' | 'running' | 'backoff' | 'stopped' | 'closed';
type Child = ChildProcessByStdio<Writable, Readable, Readable>;

/** A one-shot event that can be awaited and also checked synchronously. */
class Latch {
  done = false;
  private release!: () => void;
  readonly promise = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  open(): void {
    this.done = true;
    this.release();
  }
}

/** One spawned child process and what the transport knows about it. */
interface ChildRun {
  readonly proc: Child;
  readonly pid: number;
  startedAt: number;
  /** Set when the transport killed the child for misbehaving; reported instead of the exit. */
  failure: GatehouseError | undefined;
  /** How the process exited, once it has. */
  exit: GatehouseError | undefined;
  /** The process has exited (and was reaped by Node). */
  readonly exited: Latch;
  /** The process has exited and its stdout/stderr are closed: nothing more will arrive. */
  readonly ended: Latch;
  drainTimer: TimerHandle | undefined;
  /** Shared by every send that waits for stdin to drain. */
  drainWaiter: Promise<void> | undefined;
}

class StdioTransport implements UpstreamTransport {
  readonly kind = 'stdio' as const;
  readonly stats: TransportStats = { skippedLines: 0, restarts: 0, bytesIn: 0, bytesOut: 0 };

  private readonly options: StdioTransportOptions;
  private readonly clock: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;
  private readonly random: () => number;
  private state: State = 'idle';
  private handlers: TransportHandlers | undefined;
  private current: ChildRun | undefined;
  private restartTimer: TimerHandle | undefined;
  /** Restarts since the last stable run; indexes the backoff. */
  private attempt = 0;
  private closing: Promise<void> | undefined;

  constructor(options: StdioTransportOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.state === 'closed') throw unavailable('stdio transport is closed');
    if (this.state !== 'idle') throw new GatehouseError('INTERNAL', 'stdio transport already started');
    this.handlers = handlers;
    this.state = 'starting';
    try {
      await this.launch();
    } catch (err) {
      // A failed first spawn is a configuration or installation problem: report it, do not retry.
      if (this.state === 'starting') this.state = 'idle';
      throw err;
    }
    this.attempt = 0;
    this.state = 'running';
    callHandler(handlers, (h) => h.onConnect());
  }

  async send(message: JsonRpcMessage): Promise<void> {
    const run = this.current;
    if (this.state !== 'running' || run === undefined || run.exited.done || run.failure !== undefined) {
      throw unavailable('stdio server is not running');
    }
    const stdin = run.proc.stdin;
    if (!stdin.writable) throw unavailable('stdio server stdin is closed');
    // JSON.stringify escapes every newline inside strings, so the frame is exactly one line.
    const frame = JSON.stringify(message) + '\n';
    this.stats.bytesOut += Buffer.byteLength(frame);
    if (!stdin.write(frame)) await this.drained(run);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    if (this.restartTimer !== undefined) {
      this.clock.clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    const run = this.current;
    if (run === undefined) return;
    try {
      await this.stopChild(run);
    } finally {
      this.current = undefined;
    }
  }

  /** MCP's stdio shutdown order: close stdin, then SIGTERM, then SIGKILL, each after a grace. */
  private async stopChild(run: ChildRun): Promise<void> {
    run.proc.stdin.end();
    const grace = this.options.stopGraceMs;
    if (!(await this.within(run.exited.promise, grace))) {
      this.killGroup(run, 'SIGTERM');
      if (!(await this.within(run.exited.promise, grace))) this.killGroup(run, 'SIGKILL');
    }
    // Always wait for the exit itself, so the child is reaped and its pipes are closed.
    await run.ended.promise;
  }

  /** Spawn one child; resolves once it runs, rejects (UPSTREAM_UNAVAILABLE) if it cannot. */
  private launch(): Promise<void> {
    const { command, args, cwd, env } = this.options;
    let proc: Child;
    try {
      proc = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true, windowsHide: true });
    } catch (err) {
      return Promise.reject(unavailable(`cannot start stdio server "${command}": ${errorText(err)}`, err));
    }
    const pid = proc.pid;
    if (pid === undefined) {
      // Spawn failed (ENOENT, EACCES, ...); Node reports why with an 'error' event.
      return new Promise((_resolve, reject) => {
        proc.once('error', (err) => reject(unavailable(`cannot start stdio server "${command}": ${err.message}`, err)));
      });
    }
    // Tracked before it is known to run, so that a close() during start can stop it.
    const run = this.track(proc, pid);
    return new Promise((resolve, reject) => {
      const onSpawn = (): void => {
        proc.off('error', onError);
        run.startedAt = this.clock.now();
        if (this.state === 'closed') reject(unavailable('stdio transport closed while starting'));
        else resolve();
      };
      const onError = (err: Error): void => {
        proc.off('spawn', onSpawn);
        this.killGroup(run, 'SIGKILL');
        // It never ran: nothing to wait for and nothing to report as a loss.
        run.exited.open();
        run.ended.open();
        if (this.current === run) this.current = undefined;
        reject(unavailable(`cannot start stdio server "${command}": ${err.message}`, err));
      };
      proc.once('spawn', onSpawn);
      proc.once('error', onError);
    });
  }

  /** Wire a spawned child's pipes and events to the transport. */
  private track(proc: Child, pid: number): ChildRun {
    const run: ChildRun = {
      proc,
      pid,
      startedAt: this.clock.now(),
      failure: undefined,
      exit: undefined,
      exited: new Latch(),
      ended: new Latch(),
      drainTimer: undefined,
      drainWaiter: undefined,
    };
    this.current = run;

    const stdout = new LineSplitter({
      maxLineBytes: this.options.maxLineBytes,
      onLine: (line) => this.onStdoutLine(run, line),
      onOverflow: () => this.onStdoutOverflow(run),
    });
    const stderr = new LineSplitter({
      maxLineBytes: STDERR_MAX_LINE_BYTES,
      onLine: (line) => this.onStderrLine(line),
      onOverflow: (head) => this.onStderrLine(head),
    });
    proc.stdout.on('data', (chunk: Buffer) => {
      this.stats.bytesIn += chunk.length;
      // After an overflow the child is being killed; what it still writes is not trusted.
      if (run.failure === undefined) stdout.push(chunk);
    });
    proc.stdout.on('end', () => {
      if (run.failure === undefined) stdout.end();
    });
    // stderr is always read, even when nobody listens, so the child never blocks on it.
    proc.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    proc.stderr.on('end', () => stderr.end());
    proc.stdin.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE only means the child is gone; its exit is reported on its own.
      if (err.code !== 'EPIPE') this.diagnostic(`stdin error: ${err.message}`);
    });
    proc.on('error', (err) => this.diagnostic(`child process error: ${err.message}`));
    proc.once('exit', (code, signal) => this.onExit(run, code, signal));
    proc.once('close', () => this.onEnded(run));
    return run;
  }

  private onStdoutLine(run: ChildRun, line: Buffer): void {
    if (this.state === 'closed' || this.current !== run || run.failure !== undefined) return;
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let message: JsonRpcMessage;
    try {
      const decoded = parseMessage(text);
      if (Array.isArray(decoded)) throw new GatehouseError('INVALID_REQUEST', 'A JSON-RPC message must be an object');
      message = decoded;
    } catch (err) {
      // MCP forbids non-messages on stdout, but servers do print banners; skip, never crash.
      this.stats.skippedLines++;
      this.diagnostic(`skipped stdout line (${errorText(err)}): ${truncate(text, PREVIEW_MAX_CHARS)}`);
      return;
    }
    if (this.handlers !== undefined) callHandler(this.handlers, (h) => h.onMessage(message, {}));
  }

  private onStdoutOverflow(run: ChildRun): void {
    if (run.failure !== undefined) return;
    run.failure = new GatehouseError(
      'UPSTREAM_PROTOCOL_ERROR',
      `stdio server wrote a stdout line longer than ${this.options.maxLineBytes} bytes`,
    );
    this.diagnostic(`${run.failure.message}; killing it`);
    this.killGroup(run, 'SIGKILL');
  }

  private onStderrLine(line: Buffer): void {
    const text = line.toString('utf8');
    if (text.trim() !== '') this.diagnostic(truncate(text, STDERR_MAX_CHARS));
  }

  private onExit(run: ChildRun, code: number | null, signal: NodeJS.Signals | null): void {
    if (run.ended.done) return;
    const how = signal !== null ? `on signal ${signal}` : `with code ${String(code)}`;
    run.exit = new GatehouseError('UPSTREAM_UNAVAILABLE', `stdio server "${this.options.command}" exited ${how}`);
    run.exited.open();
    // Whatever the child spawned into its group must not outlive it; such grandchildren may
    // also hold the stdout/stderr pipes open, which would delay 'close' indefinitely.
    this.killGroup(run, 'SIGKILL');
    // A process that left the group (setsid) may still hold the pipes: stop waiting for them.
    run.drainTimer = this.clock.setTimeout(() => {
      run.drainTimer = undefined;
      run.proc.stdout.destroy();
      run.proc.stderr.destroy();
    }, EXIT_DRAIN_MS);
  }

  /** The child exited and its pipes closed: report the loss and plan the restart. */
  private onEnded(run: ChildRun): void {
    if (run.ended.done) return;
    if (run.drainTimer !== undefined) {
      this.clock.clearTimeout(run.drainTimer);
      run.drainTimer = undefined;
    }
    run.proc.stdin.destroy();
    run.ended.open();
    if (this.current !== run) return;
    this.current = undefined;
    // A stop that close() asked for is not a loss; close() is awaiting `ended`.
    if (this.state === 'closed') return;
    if (this.clock.now() - run.startedAt >= STABLE_UPTIME_MS) this.attempt = 0;
    this.lost(run.failure ?? run.exit ?? unavailable('stdio server exited'));
  }

  /** Report a lost (or never regained) child and schedule the next attempt if allowed. */
  private lost(error: Error): void {
    const max = this.options.restart.maxRestarts;
    const willRestart = max === undefined || this.attempt < max;
    if (willRestart) {
      const delay = computeRestartDelay(this.options.restart, this.attempt, this.random);
      this.attempt++;
      this.state = 'backoff';
      // Scheduled before onDisconnect runs, so a close() from inside the handler cancels it.
      this.restartTimer = this.clock.setTimeout(() => void this.restart(), delay);
    } else {
      this.state = 'stopped';
    }
    if (this.handlers !== undefined) callHandler(this.handlers, (h) => h.onDisconnect(error, willRestart));
  }

  private async restart(): Promise<void> {
    this.restartTimer = undefined;
    if (this.state !== 'backoff') return;
    this.state = 'starting';
    try {
      await this.launch();
    } catch (err) {
      if (this.state !== 'starting') return;
      // The caller hears of every failed attempt, so it learns when restarts are given up.
      this.diagnostic(`restart failed: ${errorText(err)}`);
      this.lost(err instanceof Error ? err : unavailable(errorText(err)));
      return;
    }
    if (this.state !== 'starting') return;
    this.state = 'running';
    this.stats.restarts++;
    if (this.handlers !== undefined) callHandler(this.handlers, (h) => h.onConnect());
  }

  /** Resolves when stdin has drained; rejects if the pipe closes first. */
  private drained(run: ChildRun): Promise<void> {
    run.drainWaiter ??= new Promise<void>((resolve, reject) => {
      const stdin = run.proc.stdin;
      const settle = (err?: Error): void => {
        stdin.off('drain', onDrain);
        stdin.off('close', onClose);
        run.drainWaiter = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
      const onDrain = (): void => settle();
      const onClose = (): void => settle(unavailable('stdio server stdin closed before the message was written'));
      stdin.on('drain', onDrain);
      stdin.on('close', onClose);
    });
    return run.drainWaiter;
  }

  /** Signal the child's whole process group; a group already gone is not an error. */
  private killGroup(run: ChildRun, signal: NodeJS.Signals): void {
    try {
      // Windows has no process groups; the leader is the best that can be done there.
      if (process.platform === 'win32') run.proc.kill(signal);
      else process.kill(-run.pid, signal);
    } catch (err) {
      if (isErrno(err) && err.code === 'ESRCH') return;
      this.diagnostic(`cannot send ${signal} to stdio server: ${errorText(err)}`);
    }
  }

  /** Waits for `promise` at most `ms`; true when it settled in time. Leaves no timer behind. */
  private async within(promise: Promise<void>, ms: number): Promise<boolean> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([promise.then(() => true), timeout]);
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
    }
  }

  private diagnostic(line: string): void {
    try {
      this.handlers?.onDiagnostic?.(line);
    } catch {
      // A failing log sink must not take the transport down.
    }
  }
}

function unavailable(message: string, cause?: unknown): GatehouseError {
  return new GatehouseError('UPSTREAM_UNAVAILABLE', message, cause === undefined ? {} : { cause });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}


/** Cut to at most `max` characters, marking the cut and never splitting a surrogate pair. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return text.slice(0, end) + '…';
}
