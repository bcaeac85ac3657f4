// `npm run conformance`: the official MCP conformance suite against the gateway, which fronts
// the project's own fixtures split over three targets: part a of the SDK v1 fixture over
// stdio, part b over Streamable HTTP, and the SDK v2 fixture (2026-07-28: input-required,
// tasks, x-mcp-header, stateless diagnostics) over Streamable HTTP. Then the suite's client
// scenarios with the gateway's upstream side as the client under test. The suite needs
// Node 22; it runs under the `node@22` package from the npm registry while the gateway runs
// on this machine's Node. Prints the suite's own `Total:` lines.
//
// The server suites run with authentication on (`auth.mode: oauth`, the authorization server
// wired as src/main.ts wires it): the harness gets a real client-credentials access token from
// the gateway's AS, and since the suite cannot send custom headers, a loopback credential proxy
// in front of the gateway adds `Authorization: Bearer <token>` to each request and forwards
// everything else unchanged (Host and Origin included: the gateway lists the proxy's authority
// as an allowed host, so the DNS-rebinding scenario still meets the gateway's own guard).
//
//   npm run conformance [-- <label prefix>]     e.g. -- "0.2.0-alpha.12 (2026"  or  -- client
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureStdioCommand, REPO_ROOT, startHttpFixture } from '../fixtures/fixture-process.ts';
import { startModernFixture } from '../fixtures/modern-process.ts';
import { composeAuthorizationServer } from '../../src/auth/compose-authorization-server.ts';
import { startCredentialProxy } from '../support/credential-proxy.ts';
import { INIT, post, startGateway } from '../support/gateway-harness.ts';
import { clientCredentialsTokens, suiteClient, SUITE_CLIENT_ID } from './suite-credential.ts';
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
  const client = suiteClient();
  // The proxy listens first: the gateway must accept its authority as a Host and an Origin.
  let gatewayOrigin = '';
  let credential: (() => Promise<string>) | undefined;
  const proxy = await startCredentialProxy({
    upstream: () => gatewayOrigin,
    credential: () => (credential === undefined ? Promise.reject(new Error('not ready')) : credential()),
  });
  let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
  let failed = 0;
  try {
    gw = await startGateway(
      {
        listener: {
          allowedHosts: [proxy.host, `localhost:${proxy.port}`],
          allowedOrigins: [proxy.origin, `http://localhost:${proxy.port}`],
        },
        auth: { mode: 'oauth', clients: client.clients },
        targets: {
          a: { transport: 'stdio', command: stdio.command, args: stdio.args, cwd: REPO_ROOT, era: 'legacy' },
          b: { transport: 'streamable-http', url: http.url },
          c: { transport: 'streamable-http', url: modern.url, era: 'modern' },
        },
      },
      { authorizationServer: composeAuthorizationServer(REPO_ROOT) },
    );
    gatewayOrigin = gw.base;
    credential = clientCredentialsTokens(`${gw.gateway.publicBase}/oauth`, gw.url, client.clients);
    await credential();
    // Authentication is really on: the gateway itself refuses a request without the token.
    const bare = await post(gw.url, INIT);
    if (bare.status !== 401) throw new Error(`expected 401 from the gateway without a credential, got ${bare.status}`);
    await bare.body?.cancel();
    const url = `${proxy.origin}${new URL(gw.url).pathname}`;
    for (const suite of suites) {
      process.stdout.write(`\n=== conformance ${suite.label} against ${url} -> ${gw.url} (auth.mode oauth, client-credentials token of ${SUITE_CLIENT_ID})\n`);
      const code = await run(['-y', '-p', 'node@22', '-p', suite.pkg, '--', 'conformance', 'server', '--url', url, ...suite.args, '-o', out], 600_000);
      if (code !== 0) failed++;
    }
    process.stdout.write(`\ncredential proxy forwarded ${proxy.forwarded} requests\n`);
  } finally {
    await gw?.stop();
    await proxy.stop();
    client.dispose();
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
