/** The machine and versions a run measured, for the report's header. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './server-build.ts';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  loadAverage: number[];
}

export function describeMachine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // keep os.cpus()
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** Installed version of a package in the project's node_modules (or the root manifest). */
export function packageVersion(name: string): string {
  try {
    const file = name === 'gatehouse' ? path.join(REPO_ROOT, 'package.json') : path.join(REPO_ROOT, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    return 'not installed';
  }
}

export function projectVersions(): Record<string, string> {
  return Object.fromEntries(['gatehouse', '@modelcontextprotocol/sdk', 'undici', 'pino', 'tsx', 'esbuild'].map((n) => [n, packageVersion(n)]));
}
