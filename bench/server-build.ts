/**
 * Builds the harness's own server-side programs (echo server, pass-through proxy, loopback
 * preload) to plain ESM in bench/.build/ with esbuild (already installed through tsx), so
 * they start as plain `node file.mjs`: a per-session stdio child must not pay the tsx
 * loader's start-up, and the pass-through floor must not carry a loader either.
 * Packages stay external and resolve from the project's node_modules.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
export const BUILD_DIR = path.join(BENCH_DIR, '.build');

export interface ServerPrograms {
  echoServer: string;
  passthroughProxy: string;
  loopbackPreload: string;
}

const ENTRIES = { echoServer: 'echo-server', passthroughProxy: 'passthrough-proxy', loopbackPreload: 'loopback-only' } as const;

export async function buildServerPrograms(): Promise<ServerPrograms> {
  mkdirSync(BUILD_DIR, { recursive: true });
  const out = {} as ServerPrograms;
  for (const [key, name] of Object.entries(ENTRIES) as Array<[keyof ServerPrograms, string]>) {
    const outfile = path.join(BUILD_DIR, `${name}.mjs`);
    await build({
      entryPoints: [path.join(BENCH_DIR, `${name}.ts`)],
      outfile,
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'warning',
    });
    out[key] = outfile;
  }
  return out;
}

/**
 * `--gatehouse bundle`: src/main.ts bundled to one plain-JS file (packages external), to
 * measure what running through the tsx loader costs. The bundle reads `../package.json` for
 * its version, so a copy holding only the version sits beside its folder.
 */
export async function buildGatehouseBundle(): Promise<string> {
  const outfile = path.join(BUILD_DIR, 'gatehouse', 'main.mjs');
  mkdirSync(path.dirname(outfile), { recursive: true });
  const { version } = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(path.join(BUILD_DIR, 'package.json'), `${JSON.stringify({ private: true, version })}\n`);
  await build({
    entryPoints: [path.join(REPO_ROOT, 'src/main.ts')],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  return outfile;
}
