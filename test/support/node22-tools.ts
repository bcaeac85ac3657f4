// Node 22 client tools for interop tests: the MCP Inspector 2.x CLI needs Node >= 22.19 while
// the gateway runs on the project's Node 20, so both come from npm as pinned packages (`node`
// ships the real binary inside its registry package) into a gitignored cache in the repo.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';

/** Pinned: a bump is a new cache folder, so an old install is never half-reused. */
export const NODE22_VERSION = '22.23.3';
export const INSPECTOR_VERSION = '2.12.0';

/** Gitignored; one subfolder per pinned set. */
export const NODE22_TOOLS_ROOT = path.join(REPO_ROOT, '.cache/node22-tools');

const INSTALL_KEY = `node-${NODE22_VERSION}+inspector-${INSPECTOR_VERSION}`;
/** Written last, so a folder without it is never taken for a finished install. */
const READY_FILE = 'ready.json';
/** Measured ~20 s on a warm npm cache; the bound is for a slow registry, not a normal run. */
const DEFAULT_INSTALL_TIMEOUT_MS = 180_000;
const KILL_GRACE_MS = 2_000;
/** Temp folders older than this belong to an install that was killed; safe to sweep. */
const STALE_TMP_MS = 60 * 60 * 1000;
const OUTPUT_KEEP = 16 * 1024;

export interface Node22Tools {
  /** The install folder (holds node_modules/). */
  dir: string;
  /** node_modules/.bin: `node` (22.x) and `mcp-inspector`; put it first in PATH. */
  binDir: string;
  /** Absolute path of the Node 22 binary. */
  node: string;
  /** Absolute path of the `mcp-inspector` bin; its `#!/usr/bin/env node` shebang needs binDir first in PATH. */
  inspector: string;
  /** Milliseconds this call spent installing; 0 when the cache was already there. */
  installMs: number;
  /** An environment for the inspector: `base` with binDir prepended to its PATH. */
  env(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

let pending: Promise<Node22Tools> | undefined;

/**
 * Installs node@22 and the inspector once and returns how to run them. Idempotent, memoized per
 * process, and safe across processes (two vitest forks): each installs into its own temp folder
 * and renames it into place atomically; the loser of the race discards its copy.
 */
export function ensureNode22Tools(opts: { timeoutMs?: number } = {}): Promise<Node22Tools> {
  pending ??= install(opts.timeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS).catch((err: unknown) => {
    pending = undefined; // a failed attempt must not poison later callers
    throw err;
  });
  return pending;
}

async function install(timeoutMs: number): Promise<Node22Tools> {
  const dir = path.join(NODE22_TOOLS_ROOT, INSTALL_KEY);
  if (await isReady(dir)) return toolsAt(dir, 0);

  const started = performance.now();
  await mkdir(NODE22_TOOLS_ROOT, { recursive: true });
  await sweepStaleTemps();
  // A folder appears whole (rename), so one that existed before its marker was read and has
  // none was damaged by hand; it would make the rename below fail for good.
  if (existsSync(dir) && !(await isReady(dir))) await rm(dir, { recursive: true, force: true });
  // Same parent as the final folder, so rename() stays on one filesystem and is atomic.
  const tmp = await mkdtemp(path.join(NODE22_TOOLS_ROOT, '.tmp-'));
  try {
    await chmod(tmp, 0o755); // mkdtemp makes it private; the final folder need not be
    await writeFile(
      path.join(tmp, 'package.json'),
      `${JSON.stringify(
        {
          name: 'gatehouse-node22-tools',
          private: true,
          description: 'Test-only client tools; installed by test/support/node22-tools.ts',
          dependencies: { node: NODE22_VERSION, '@modelcontextprotocol/inspector': INSPECTOR_VERSION },
          // `node` unpacks its binary in preinstall; the inspector's postinstall is a no-op
          // when installed as a dependency, so it stays off.
          allowScripts: { node: true, '@modelcontextprotocol/inspector': false },
        },
        null,
        2,
      )}\n`,
    );
    await runBounded('npm', ['install', '--no-audit', '--no-fund', '--prefix', tmp], tmp, timeoutMs);
    const tools = toolsAt(tmp, 0);
    const version = (await runBounded(tools.node, ['--version'], tmp, 10_000)).trim();
    if (version !== `v${NODE22_VERSION}`) throw new Error(`node@${NODE22_VERSION} installed, but ${tools.node} reports ${version}`);
    await writeFile(path.join(tmp, READY_FILE), `${JSON.stringify({ node: version, inspector: INSPECTOR_VERSION })}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process finished first: its copy is as good as ours.
      if (!(await isReady(dir))) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return toolsAt(dir, Math.round(performance.now() - started));
}

function toolsAt(dir: string, installMs: number): Node22Tools {
  const binDir = path.join(dir, 'node_modules/.bin');
  return {
    dir,
    binDir,
    node: path.join(binDir, 'node'),
    inspector: path.join(binDir, 'mcp-inspector'),
    installMs,
    env: (base) => ({ ...base, PATH: [binDir, base['PATH']].filter(Boolean).join(path.delimiter) }),
  };
}

async function isReady(dir: string): Promise<boolean> {
  try {
    const marker = JSON.parse(await readFile(path.join(dir, READY_FILE), 'utf8')) as { node?: unknown };
    return marker.node === `v${NODE22_VERSION}` && existsSync(path.join(dir, 'node_modules/.bin/mcp-inspector'));
  } catch {
    return false;
  }
}

/**
 * Under `npm test` every npm setting is exported as npm_config_*, and npm 11.19+ refuses
 * allow-scripts from the environment in a project install (EALLOWSCRIPTS); the package.json
 * written above says what may run instead.
 */
function installEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.toLowerCase() === 'npm_config_allow_scripts') delete env[key];
  return env;
}

async function sweepStaleTemps(): Promise<void> {
  for (const name of await readdir(NODE22_TOOLS_ROOT)) {
    if (!name.startsWith('.tmp-')) continue;
    const full = path.join(NODE22_TOOLS_ROOT, name);
    const info = await stat(full).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_TMP_MS) await rm(full, { recursive: true, force: true });
  }
}

/**
 * Runs a command with a deadline and returns its stdout. It gets its own process group
 * (npm runs install scripts as grandchildren), and on timeout that group is killed by the
 * child's PID: TERM, then KILL after a grace period.
 */
function runBounded(command: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: installEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout = (stdout + c).slice(-OUTPUT_KEEP)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-OUTPUT_KEEP)));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const deadline = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(deadline);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      if (code === 0 && !timedOut) resolve(stdout);
      else {
        const why = timedOut ? `timed out after ${timeoutMs} ms` : `exited with code ${code} (signal ${signal})`;
        reject(new Error(`${command} ${args.join(' ')} ${why}\n--- stderr ---\n${stderr}`));
      }
    });
  });
}
