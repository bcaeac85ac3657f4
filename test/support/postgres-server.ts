// A throwaway PostgreSQL server for tests: initdb into a temp folder, `pg_ctl start` on
// 127.0.0.1 with a free port and a Unix socket folder inside the temp folder, one database
// created; `stop()` runs `pg_ctl stop -m fast`, falls back to signals by PID, and removes the
// folder. One server per test file is the intended use (start in beforeAll, stop in afterAll).
//
// PostgreSQL refuses to run as root. When the tests run as root (this machine and CI do), the
// binaries run as the `postgres` system user that Debian's package creates (`nobody` as a
// fallback), through spawn's uid/gid, and the temp folder is handed to that user. As any other
// user they run as that user.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/<database>`; trust authentication, no password. */
  readonly url: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** The Unix socket folder (inside the temp folder). */
  readonly socketDir: string;
  /** The postmaster's PID. */
  readonly pid: number;
  /** Milliseconds spent in initdb, in pg_ctl start, and creating the database. */
  readonly timings: { initdbMs: number; startMs: number; createDbMs: number };
  /** Another empty database on the same server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stop the server and remove its folder. Idempotent. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** The database to create (default `gatehouse_test`). */
  database?: string;
  /** Extra `-c name=value` server settings. `fsync=off` is the default: throwaway data. */
  settings?: Record<string, string>;
}

const SUPERUSER = 'postgres';
const STEP_TIMEOUT_MS = 60_000;

/** The folder holding initdb, pg_ctl and postgres: GATEHOUSE_PG_BINDIR, PATH, or Debian's. */
export function findPostgresBinDir(): string {
  const fromEnv = process.env['GATEHOUSE_PG_BINDIR'];
  if (fromEnv && existsSync(path.join(fromEnv, 'initdb'))) return fromEnv;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    // /usr/local/bin/initdb may be a symlink; pg_ctl must run from the folder `postgres` is in.
    if (dir && existsSync(path.join(dir, 'initdb'))) return path.dirname(realpathSync(path.join(dir, 'initdb')));
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => existsSync(path.join(debian, v, 'bin', 'initdb')));
    versions.sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return path.join(debian, versions[0], 'bin');
  }
  throw new Error('PostgreSQL server binaries not found: install the Debian package `postgresql` or set GATEHOUSE_PG_BINDIR');
}

interface RunAs {
  uid: number;
  gid: number;
}

/** Root cannot run PostgreSQL: pick an unprivileged system user to run it as. */
function unprivilegedUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of [SUPERUSER, 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (uid > 0) return { uid, gid };
    } catch {
      // no such user; try the next
    }
  }
  throw new Error('running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as');
}

function run(bin: string, args: string[], cwd: string, runAs: RunAs | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd,
      ...runAs,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', HOME: cwd },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'exit', not 'close': the daemonized postmaster must not keep this waiting.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed (${signal ?? code}):\n${output.slice(-2000)}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A daemonized postmaster is re-parented; if nothing reaps it, it lingers as a zombie.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return true;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

/** Servers still running; a test process that exits without stop() still kills them. */
const live = new Map<number, string>();
let exitHookInstalled = false;
function killLiveOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [pid, dir] of live) {
      try {
        process.kill(pid, 'SIGQUIT'); // immediate shutdown; the backends follow the postmaster
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const binDir = findPostgresBinDir();
  const runAs = unprivilegedUser();
  const root = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pg-'));
  const dataDir = path.join(root, 'data');
  const socketDir = path.join(root, 'sock');
  const logFile = path.join(root, 'server.log');
  mkdirSync(socketDir, { mode: 0o700 });
  if (runAs) {
    chownSync(root, runAs.uid, runAs.gid);
    chownSync(socketDir, runAs.uid, runAs.gid);
  }
  const database = options.database ?? 'gatehouse_test';
  let pid = 0;
  try {
    let t = performance.now();
    await run(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], root, runAs);
    const initdbMs = performance.now() - t;

    const settings = { fsync: 'off', ...options.settings };
    let port = 0;
    t = performance.now();
    // A port picked free can be taken before the server binds it; try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const serverOptions = [
        "-c listen_addresses='127.0.0.1'",
        `-p ${port}`,
        `-k '${socketDir}'`,
        ...Object.entries(settings).map(([k, v]) => `-c ${k}='${v}'`),
      ].join(' ');
      try {
        await run(path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start'], root, runAs);
        break;
      } catch (err) {
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
        if (attempt >= 3 || !/could not bind|already in use/i.test(log)) throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`);
      }
    }
    const startMs = performance.now() - t;
    pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    live.set(pid, root);
    killLiveOnExit();

    const urlOf = (db: string): string => `postgres://${SUPERUSER}@127.0.0.1:${port}/${db}`;
    const createDatabase = async (name: string): Promise<string> => {
      const client = new pg.Client({ connectionString: urlOf('postgres') });
      await client.connect();
      try {
        await client.query(`create database ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return urlOf(name);
    };
    t = performance.now();
    await createDatabase(database);
    const createDbMs = performance.now() - t;

    let stopping: Promise<void> | undefined;
    const serverPid = pid;
    return {
      url: urlOf(database),
      host: '127.0.0.1',
      port,
      database,
      user: SUPERUSER,
      socketDir,
      pid: serverPid,
      timings: { initdbMs, startMs, createDbMs },
      createDatabase,
      stop: () => {
        stopping ??= stopServer(binDir, dataDir, root, serverPid, runAs);
        return stopping;
      },
    };
  } catch (err) {
    if (pid > 0) await stopServer(binDir, dataDir, root, pid, runAs);
    else rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

async function stopServer(binDir: string, dataDir: string, root: string, pid: number, runAs: RunAs | undefined): Promise<void> {
  try {
    await run(path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', '-t', '20', 'stop'], root, runAs);
  } catch {
    // fall through to signals
  }
  // By PID: SIGQUIT is PostgreSQL's immediate shutdown; SIGKILL if even that does not end it.
  if (!(await waitGone(pid, 2_000))) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // gone meanwhile
    }
    if (!(await waitGone(pid, 5_000))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await waitGone(pid, 5_000);
    }
  }
  live.delete(pid);
  rmSync(root, { recursive: true, force: true });
}
