/**
 * The peer gateways measured beside Gatehouse: `mcp-proxy` and `supergateway`, both
 * stdio→Streamable HTTP bridges from npm. Pinned versions are installed on demand into
 * bench/.peers/ (gitignored) with `npm install --prefix`, never into the project. Install
 * scripts are skipped: the bridges need none (one transitive dependency of mcp-proxy has one).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BENCH_DIR } from './server-build.ts';

export const PEERS_DIR = path.join(BENCH_DIR, '.peers');

/** Pinned peer versions (bump deliberately; the report prints them). */
export const PEER_VERSIONS = { 'mcp-proxy': '6.7.19', supergateway: '4.0.0' } as const;
export type PeerName = keyof typeof PEER_VERSIONS;

/** Entry scripts run with `node` directly, so the PID we hold is the bridge itself. */
const ENTRY: Record<PeerName, string> = {
  'mcp-proxy': 'node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs',
  supergateway: 'node_modules/supergateway/dist/index.js',
};

function installedVersion(name: PeerName): string | undefined {
  const file = path.join(PEERS_DIR, 'node_modules', name, 'package.json');
  if (!existsSync(file)) return undefined;
  return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version;
}

/** Install the pinned peers when missing; returns the peers that are usable and why others are not. */
export function ensurePeers(log: (msg: string) => void): { ready: PeerName[]; problems: string[] } {
  const names = Object.keys(PEER_VERSIONS) as PeerName[];
  const missing = names.filter((n) => installedVersion(n) !== PEER_VERSIONS[n]);
  const problems: string[] = [];
  if (missing.length > 0) {
    mkdirSync(PEERS_DIR, { recursive: true });
    // A package.json of its own keeps npm from walking up to the project's.
    const manifest = path.join(PEERS_DIR, 'package.json');
    if (!existsSync(manifest)) writeFileSync(manifest, `${JSON.stringify({ name: 'gatehouse-bench-peers', private: true }, null, 2)}\n`);
    const specs = missing.map((n) => `${n}@${PEER_VERSIONS[n]}`);
    log(`installing peers into bench/.peers: ${specs.join(' ')}`);
    const started = Date.now();
    const result = spawnSync('npm', ['install', '--prefix', PEERS_DIR, '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', '--save-exact', ...specs], {
      encoding: 'utf8',
      timeout: 240_000,
    });
    if (result.status !== 0) problems.push(`npm install ${specs.join(' ')} failed: ${(result.stderr || String(result.error)).trim().slice(-400)}`);
    else log(`  installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const ready = names.filter((n) => installedVersion(n) === PEER_VERSIONS[n]);
  return { ready, problems };
}

export interface PeerCommand {
  command: string;
  args: string[];
}

/**
 * How each peer is started in front of a stdio command (`node echo-server.mjs --stdio`).
 * mcp-proxy: its default stream endpoint, one shared stdio child for all sessions.
 * supergateway: `--stateful` (its stateless mode spawns a child per POST), one child per session.
 */
export function peerCommand(name: PeerName, port: number, stdio: { command: string; args: string[] }, loopbackPreload: string): PeerCommand {
  const entry = path.join(PEERS_DIR, ENTRY[name]);
  if (name === 'mcp-proxy') {
    return {
      command: process.execPath,
      args: [entry, '--host', '127.0.0.1', '--port', String(port), '--server', 'stream', '--', stdio.command, ...stdio.args],
    };
  }
  // supergateway has no bind-address option: the preload forces 127.0.0.1.
  const shellCommand = [stdio.command, ...stdio.args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return {
    command: process.execPath,
    args: ['--import', loopbackPreload, entry, '--stdio', shellCommand, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none'],
  };
}
