// `npm run conformance`: the official MCP conformance suite against the gateway, which fronts
// the project's own fixtures split over three targets: part a of the SDK v1 fixture over
// stdio, part b over Streamable HTTP, and the SDK v2 fixture (2026-07-28: input-required,
// tasks, x-mcp-header, stateless diagnostics) over Streamable HTTP. Then the suite's client
// scenarios with the gateway's upstream side as the client under test. The suite needs
// Node 22; it runs under the `node@22` package from the npm registry while the gateway runs
// on this machine's Node. Prints the suite's own `Total:` lines.
//
//   npm run conformance [-- <label prefix>]     e.g. -- "0.2.0-alpha.12 (2026"  or  -- client
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureStdioCommand, REPO_ROOT, startHttpFixture } from '../fixtures/fixture-process.ts';
import { startModernFixture } from '../fixtures/modern-process.ts';
import { startGateway } from '../support/gateway-harness.ts';
import { runClientScenarios } from './client-suite.ts';

const SUITES: Array<{ label: string; pkg: string; args: string[] }> = [
  { label: '0.1.16 --suite all (2025-11-25)', pkg: '@modelcontextprotocol/conformance@0.1.16', args: ['--suite', 'all'] },
  { label: '0.2.0-alpha.12 (2025-11-25)', pkg: '@modelcontextprotocol/conformance@0.2.0-alpha.12', args: ['--requirements', '2025-11-25'] },
  // A requirement set also runs the extension (tasks) and pending scenarios, reported as "not scored".
  { label: '0.2.0-alpha.12 (2026-07-28)', pkg: '@modelcontextprotocol/conformance@0.2.0-alpha.12', args: ['--requirements', '2026-07-28'] },
];
const CLIENT_PACKAGES = ['@modelcontextprotocol/conformance@0.1.16', '@modelcontextprotocol/conformance@0.2.0-alpha.12'];

function run(args: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    // Its own process group: on timeout the suite and everything npx started go too.
    const child = spawn('npx', args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? 1);
    });
  });
}

async function serverSuites(only: string | undefined, out: string): Promise<number> {
  const suites = SUITES.filter((s) => only === undefined || s.label.startsWith(only));
  if (suites.length === 0) return 0;
  const http = await startHttpFixture({ mode: 'http', part: 'b', name: 'conformance-b' });
  const modern = await startModernFixture({ name: 'conformance-c', withJsonSchemaTool: false });
  const stdio = fixtureStdioCommand('a');
  const gw = await startGateway({
    targets: {
      a: { transport: 'stdio', command: stdio.command, args: stdio.args, cwd: REPO_ROOT, era: 'legacy' },
      b: { transport: 'streamable-http', url: http.url },
      c: { transport: 'streamable-http', url: modern.url, era: 'modern' },
    },
  });
  let failed = 0;
  try {
    for (const suite of suites) {
      process.stdout.write(`\n=== conformance ${suite.label} against ${gw.url}\n`);
      const code = await run(['-y', '-p', 'node@22', '-p', suite.pkg, '--', 'conformance', 'server', '--url', gw.url, ...suite.args, '-o', out], 600_000);
      if (code !== 0) failed++;
    }
  } finally {
    await gw.stop();
    await Promise.all([http.stop(), modern.stop()]);
  }
  return failed;
}

async function main(): Promise<void> {
  const only = process.argv[2];
  const out = mkdtempSync(path.join(os.tmpdir(), 'gh-conformance-'));
  let failed = await serverSuites(only, out);
  if (only === undefined || only === 'client') {
    for (const pkg of CLIENT_PACKAGES) {
      process.stdout.write(`\n=== conformance client scenarios (${pkg}) with the gateway's upstream side as the client\n`);
      failed += await runClientScenarios(out, pkg);
    }
  }
  process.stdout.write(`\nresults: ${out}\n`);
  process.exit(failed === 0 ? 0 : 1);
}

void main();
