/**
 * Reads CPU time and memory of benchmarked processes from /proc (Linux only).
 *
 * CPU of a process tree counts utime+stime+cutime+cstime of every live process in the tree:
 * a child that exits and is reaped inside the tree moves its time into its parent's c-times,
 * so the delta between two readings stays right while children come and go (supergateway
 * spawns one child per session).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on almost every Linux). */
export const CLOCK_TICKS = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number(out.stdout?.trim());
  return Number.isInteger(value) && value > 0 ? value : 100;
})();

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, µs. */
  ownUs: number;
  /** cutime + cstime (reaped children), µs. */
  childrenUs: number;
}

/** Parse /proc/<pid>/stat; undefined when the process is gone. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14 → index 11.
  const tick = 1e6 / CLOCK_TICKS;
  const n = (i: number): number => Number(fields[i]);
  return { pid, ppid: n(1), ownUs: (n(11) + n(12)) * tick, childrenUs: (n(13) + n(14)) * tick };
}

/** Every live process id and its parent, read once. */
export function processTable(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat === undefined) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(pid);
    else children.set(stat.ppid, [pid]);
  }
  return children;
}

/** The pid and all its live descendants (breadth first; bounded to 10,000 processes). */
export function processTree(root: number, table: Map<number, number[]> = processTable()): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0 && out.length < 10_000) {
    const pid = queue.shift()!;
    out.push(pid);
    for (const child of table.get(pid) ?? []) queue.push(child);
  }
  return out;
}

export interface CpuReading {
  /** µs of CPU of each root process alone (utime+stime). */
  own: Map<number, number>;
  /** µs of CPU of each root's tree (live processes, own + reaped children). */
  tree: Map<number, number>;
  /** Live processes in each root's tree. */
  treeSize: Map<number, number>;
}

/** One reading of CPU for several roots. */
export function readCpu(roots: readonly number[]): CpuReading {
  const reading: CpuReading = { own: new Map(), tree: new Map(), treeSize: new Map() };
  const table = processTable();
  for (const root of roots) {
    const stat = readStat(root);
    reading.own.set(root, stat?.ownUs ?? 0);
    let total = 0;
    const tree = processTree(root, table);
    for (const pid of tree) {
      const s = pid === root ? stat : readStat(pid);
      if (s) total += s.ownUs + s.childrenUs;
    }
    reading.tree.set(root, total);
    reading.treeSize.set(root, stat ? tree.length : 0);
  }
  return reading;
}

export interface MemoryReading {
  /** Current resident set, bytes. */
  rss: number;
  /** Peak resident set since the process started (VmHWM), bytes. */
  hwm: number;
}

/** VmRSS / VmHWM of one process; zeros when gone. */
export function readMemory(pid: number): MemoryReading {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rss: 0, hwm: 0 };
  }
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Sum of VmRSS over a process tree, bytes. */
export function treeRss(root: number): number {
  let total = 0;
  for (const pid of processTree(root)) total += readMemory(pid).rss;
  return total;
}

/**
 * Samples VmRSS of some processes on a timer and keeps the maximum: VmHWM is a peak over the
 * whole life, this is the peak inside one measurement window.
 */
export class RssSampler {
  private readonly pids: readonly number[];
  private readonly max = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(pids: readonly number[], intervalMs = 100) {
    this.pids = pids;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): Map<number, number> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return this.max;
  }

  private sample(): void {
    for (const pid of this.pids) {
      const rss = readMemory(pid).rss;
      if (rss > (this.max.get(pid) ?? 0)) this.max.set(pid, rss);
    }
  }
}
