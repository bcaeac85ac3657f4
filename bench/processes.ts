/**
 * Every process the harness starts goes through here: spawned (pinned to a core with
 * taskset when asked), awaited until it prints its ready line, and stopped by its PID, with
 * the descendants it had, on success, on error and on SIGINT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { processTree } from './proc-stats.ts';

export interface StartOptions {
  /** Label in messages and the report. */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Core to pin the process to (taskset -c); undefined: no pinning. */
  cpu?: number | undefined;
  /** Printed on stdout or stderr once the process serves; group 1 is kept as `ready`. */
  readyLine?: RegExp;
  readyTimeoutMs?: number;
  /** Send stdout to this file instead of a pipe (the Gatehouse log sink). */
  stdoutFile?: string;
  /** Grace between SIGTERM and SIGKILL. */
  stopGraceMs?: number;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Group 1 of the ready line (a URL), or the whole line. */
  readonly ready: string;
  /** The last 8 KiB of stdout and stderr, for error messages. */
  tail(): string;
  readonly exited: boolean;
  stop(): Promise<void>;
}

const TAIL_BYTES = 8 * 1024;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Owns every process started by the run. */
export class ProcessRegistry {
  private readonly live = new Set<ManagedProcess>();
  private readonly handles = new Map<ManagedProcess, ChildProcess>();

  /** Start and wait for the ready line; the process is stopped if it never comes. */
  async start(options: StartOptions): Promise<ManagedProcess> {
    const pinned = options.cpu !== undefined;
    const command = pinned ? 'taskset' : options.command;
    const args = pinned ? ['-c', String(options.cpu), options.command, ...options.args] : [...options.args];
    const stdoutFd = options.stdoutFile ? openSync(options.stdoutFile, 'a') : undefined;
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
    });
    if (stdoutFd !== undefined) closeSync(stdoutFd);
    if (child.pid === undefined) {
      await new Promise((resolve) => child.once('error', resolve));
      throw new Error(`${options.name}: could not start ${command}`);
    }
    const pid = child.pid;
    let tail = '';
    let exited = false;
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exit = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        resolve();
      });
    });
    let stopping: Promise<void> | undefined;
    let ready = '';
    const managed: ManagedProcess = {
      name: options.name,
      pid,
      get ready() {
        return ready;
      },
      tail: () => tail,
      get exited() {
        return exited;
      },
      stop: () => {
        stopping ??= this.stopTree(pid, exit, options.stopGraceMs ?? 3_000).finally(() => {
          this.live.delete(managed);
          this.handles.delete(managed);
        });
        return stopping;
      },
    };
    this.live.add(managed);
    this.handles.set(managed, child);
    if (options.readyLine === undefined) return managed;
    try {
      ready = await this.waitReady(options.name, child, options.readyLine, options.readyTimeoutMs ?? 30_000, () => tail, exit);
    } catch (err) {
      await managed.stop();
      throw err;
    }
    return managed;
  }

  /** Stop everything still running (reverse start order). */
  async stopAll(): Promise<void> {
    const all = [...this.live].reverse();
    await Promise.allSettled(all.map((p) => p.stop()));
  }

  /** Last resort at process exit: SIGKILL by PID, synchronously. */
  killAllNow(): void {
    for (const p of this.live) signal(p.pid, 'SIGKILL');
  }

  get count(): number {
    return this.live.size;
  }

  private waitReady(name: string, child: ChildProcess, line: RegExp, timeoutMs: number, tail: () => string, exit: Promise<void>): Promise<string> {
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => finish(new Error(`${name}: not ready within ${timeoutMs} ms\n${tail()}`)), timeoutMs);
      const onData = (chunk: Buffer): void => {
        seen = (seen + chunk.toString('utf8')).slice(-TAIL_BYTES);
        const m = line.exec(seen);
        if (m) finish(undefined, m[1] ?? m[0]);
      };
      const finish = (err: Error | undefined, value = ''): void => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        if (err) reject(err);
        else resolve(value);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      void exit.then(() => finish(new Error(`${name}: exited before it was ready\n${tail()}`)));
    });
  }

  /** SIGTERM the root, wait, then SIGKILL it and any descendant it had that is still alive. */
  private async stopTree(pid: number, exit: Promise<void>, graceMs: number): Promise<void> {
    const tree = processTree(pid);
    signal(pid, 'SIGTERM');
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([exit, timeout]);
    if (isAlive(pid)) {
      signal(pid, 'SIGKILL');
      await Promise.race([exit, new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref())]);
    }
    // Children the root did not take down (a shell wrapper's child, a per-session server).
    const leftovers = tree.filter((p) => p !== pid && isAlive(p));
    for (const p of leftovers) signal(p, 'SIGTERM');
    if (leftovers.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 300).unref());
      for (const p of leftovers) if (isAlive(p)) signal(p, 'SIGKILL');
    }
  }
}

/**
 * Stop every process on SIGINT/SIGTERM and on a crash; the exit hook kills by PID whatever an
 * async stop could not reach. Returns a function that removes the handlers.
 */
export function installCleanup(registry: ProcessRegistry, log: (msg: string) => void): () => void {
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${sig}: stopping ${registry.count} process(es)…`);
    const force = setTimeout(() => {
      registry.killAllNow();
      process.exit(130);
    }, 8_000);
    void registry.stopAll().finally(() => {
      clearTimeout(force);
      process.exit(130);
    });
  };
  const onExit = (): void => registry.killAllNow();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  };
}

/** One line for a report: the error's first line, plus the first `…Error…` line of a process's output tail. */
export function failureSummary(err: unknown): string {
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const cause = lines.slice(1).find((l) => /Error\b/.test(l));
  return [lines[0] ?? 'unknown failure', cause].filter((l) => l !== undefined).join(': ').slice(0, 400);
}
