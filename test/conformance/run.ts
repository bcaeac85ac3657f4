// `npm run conformance`: the official MCP conformance suite against the gateway, which fronts
// the project's own fixture split over two targets (part a over stdio, part b over Streamable
// HTTP). The suite needs Node 22; it runs under the `node@22` package from the npm registry
// while the gateway runs on this machine's Node. Prints the suite's own `Total:` lines.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureStdioCommand, REPO_ROOT, startHttpFixture } from '../fixtures/fixture-process.ts';
import { startGateway } from '../support/gateway-harness.ts';

const SUITES: Array<{ label: string; pkg: string; args: string[] }> = [
  { label: '0.1.16 --suite all (2025-11-25)', pkg: '@modelcontextprotocol/conformance@0.1.16', args: ['--suite', 'all'] },
  { label: '0.2.0-alpha.12 (2025-11-25)', pkg: '@modelcontextprotocol/conformance@0.2.0-alpha.12', args: ['--requirements', '2025-11-25'] },
  { label: '0.2.0-alpha.12 (2026-07-28)', pkg: '@modelcontextprotocol/conformance@0.2.0-alpha.12', args: ['--requirements', '2026-07-28'] },
];

function run(args: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('npx', args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    // Bounded: a hung suite must not hang CI.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? 1);
    });
  });
}

async function main(): Promise<void> {
  const only = process.argv[2];
  const http = await startHttpFixture({ mode: 'http', part: 'b', name: 'conformance-b' });
  const stdio = fixtureStdioCommand('a');
  const gw = await startGateway({
    targets: {
      a: { transport: 'stdio', command: stdio.command, args: stdio.args, cwd: REPO_ROOT, era: 'legacy' },
      b: { transport: 'streamable-http', url: http.url },
    },
  });
  let failed = 0;
  try {
    const out = mkdtempSync(path.join(os.tmpdir(), 'gh-conformance-'));
    for (const suite of SUITES.filter((s) => only === undefined || s.label.startsWith(only))) {
      process.stdout.write(`\n=== conformance ${suite.label} against ${gw.url}\n`);
      const code = await run(['-y', '-p', 'node@22', '-p', suite.pkg, '--', 'conformance', 'server', '--url', gw.url, ...suite.args, '-o', out], 600_000);
      if (code !== 0) failed++;
    }
  } finally {
    await gw.stop();
    await http.stop();
  }
  process.exit(failed === 0 ? 0 : 1);
}

void main();
