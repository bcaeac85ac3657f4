// The official conformance suite in client mode against the gateway's UP side: for each
// scenario the suite starts a mock MCP server and runs a harness with its URL, which puts a
// real Gatehouse gateway in front of it, so the client under test is the gateway itself.
// Scenarios run one at a time (sse-retry measures timing, so it must not share two cores with
// the others). The suite runs under the `node@22` package from the npm registry; the harnesses
// run on this machine's Node (process.execPath).
//
// - client-harness.ts: the scenarios that need no authorization, driven by an agent.
// - auth-client-harness.ts: the auth/* scenarios. The mock is protected by the suite's mock
//   authorization server; the gateway's target carries the scenario's credentials (per-user
//   OAuth, client credentials, cross-app access) on an encrypted SQLite vault, and the harness
//   plays the operator (the first-authorization link), the user's browser (the gateway's
//   connect page, consent, the authorization server's redirect to the gateway's callback) and
//   the agent (tools/list, tools/call, consenting again on a step-up -32042).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';

interface ClientRun {
  scenario: string;
  /** `--spec-version` for 0.2.x, which runs a scenario at one wire era; 0.1.x has only one. Extensions take none. */
  specVersion?: '2025-03-26' | '2025-11-25' | '2026-07-28';
  /** auth/* scenarios: auth-client-harness.ts (operator, browser and agent around the gateway). */
  harness?: 'auth';
  /** Why this run is known to fail (reported, not counted as a failure). */
  knownFailure?: string;
}

/** The four scored 2025-11-25 client scenarios that need no authorization. */
const CORE = ['initialize', 'tools_call', 'elicitation-sep1034-client-defaults', 'sse-retry'];

/**
 * The 0.2.x client scenarios introduced with 2026-07-28 that need no authorization (see
 * modern-client-scenarios.ts). Not run: the auth/* ones introduced with 2026-07-28 (not scored
 * here yet, though auth-client-harness.ts accepts them) and the sep-2640 skills extension (the
 * gateway does not route skills/list).
 */
const MODERN_ONLY = [
  'request-metadata',
  'sep-2322-client-request-state',
  'http-standard-headers',
  'http-custom-headers',
  'http-invalid-tool-headers',
  'json-schema-ref-no-deref',
];

/** The auth/* scenarios scored for 2025-11-25 (both suite lines). */
const AUTH = [
  'auth/metadata-default', 'auth/metadata-var1', 'auth/metadata-var2', 'auth/metadata-var3', 'auth/basic-cimd',
  'auth/scope-from-www-authenticate', 'auth/scope-from-scopes-supported', 'auth/scope-omitted-when-undefined',
  'auth/scope-step-up', 'auth/scope-retry-limit',
  'auth/token-endpoint-auth-basic', 'auth/token-endpoint-auth-post', 'auth/token-endpoint-auth-none', 'auth/pre-registration',
];
/** Back-compat with 2025-03-26 servers (no protected resource metadata; no metadata at all). */
const AUTH_BACKCOMPAT = ['auth/2025-03-26-oauth-metadata-backcompat', 'auth/2025-03-26-oauth-endpoint-fallback'];
/** Extensions: client credentials (basic, private_key_jwt) and SEP-990 cross-app access (renamed in 0.2). */
const AUTH_EXTENSIONS_01 = ['auth/client-credentials-basic', 'auth/client-credentials-jwt', 'auth/cross-app-access-complete-flow'];
const AUTH_EXTENSIONS_02 = ['auth/client-credentials-basic', 'auth/client-credentials-jwt', 'auth/enterprise-managed-authorization'];
/**
 * 0.1.16's mock serves this scenario's authorization server metadata with an `issuer` that is
 * not the URL it is served from; the SDK refuses such metadata (RFC 8414 §3.3), as it should.
 * 0.2.x fixed the mock (`metadataIssuer`).
 */
const ISSUER_MOCK_BUG = '0.1.16 mock: metadata issuer differs from its URL (RFC 8414 §3.3); fixed in 0.2';
const auth = (scenario: string, specVersion?: ClientRun['specVersion'], knownFailure?: string): ClientRun => ({
  scenario, harness: 'auth', ...(specVersion === undefined ? {} : { specVersion }), ...(knownFailure === undefined ? {} : { knownFailure }),
});

/** Scenarios per suite line, keyed by the version's `major.minor`. */
const RUNS: Readonly<Record<string, readonly ClientRun[]>> = {
  '0.1': [
    ...CORE.map((scenario) => ({ scenario })),
    ...AUTH.map((scenario) => auth(scenario)),
    ...AUTH_BACKCOMPAT.map((scenario) => auth(scenario, undefined, scenario === 'auth/2025-03-26-oauth-metadata-backcompat' ? ISSUER_MOCK_BUG : undefined)),
    ...AUTH_EXTENSIONS_01.map((scenario) => auth(scenario)),
  ],
  '0.2': [
    ...CORE.map((scenario) => ({ scenario, specVersion: '2025-11-25' as const })),
    // Not scored for 2025-11-25 (added after release), but a gateway must pass schemas through untouched.
    { scenario: 'json-schema-2020-12-preservation', specVersion: '2025-11-25' },
    // The same mocks in the stateless 2026-07-28 era: the gateway's modern upstream path,
    // driven by an agent pinned to 2026-07-28.
    { scenario: 'tools_call', specVersion: '2026-07-28' },
    { scenario: 'json-schema-2020-12-preservation', specVersion: '2026-07-28' },
    ...MODERN_ONLY.map((scenario) => ({ scenario, specVersion: '2026-07-28' as const })),
    ...AUTH.map((scenario) => auth(scenario, '2025-11-25')),
    ...AUTH_BACKCOMPAT.map((scenario) => auth(scenario, '2025-03-26')),
    ...AUTH_EXTENSIONS_02.map((scenario) => auth(scenario)),
  ],
};

const HARNESS = path.join(REPO_ROOT, 'test/conformance/client-harness.ts');
const AUTH_HARNESS = path.join(REPO_ROOT, 'test/conformance/auth-client-harness.ts');
/** Per run: the first npx download of a package takes about 20 s, a scenario a few seconds. */
const RUN_TIMEOUT_MS = 120_000;
/** The suite's own bound on the harness process. */
const CLIENT_TIMEOUT_MS = 30_000;
const OUTPUT_KEEP_CHARS = 64 * 1024;

function runsFor(pkg: string): readonly ClientRun[] {
  const version = pkg.slice(pkg.lastIndexOf('@') + 1);
  const line = /^(\d+\.\d+)\./.exec(version)?.[1];
  return (line !== undefined ? RUNS[line] : undefined) ?? CORE.map((scenario) => ({ scenario }));
}

/** Run one scenario; resolves with the exit code (null on timeout) and the combined output. */
function runOne(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    // Its own process group, so a timeout kills npx, the suite and the harness under it together.
    const child = spawn('npx', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    // Bounded: a hung suite must not hang CI.
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is already gone; make sure npx is
      }
    }, RUN_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? null : code, output });
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 1, output: `${output}\n${err.message}` });
    });
  });
}

/**
 * The suite's own summary for one scenario: from its `Test Results:` line on (pass counts,
 * failed and warning checks, overall verdict). Everything else, when that line is missing.
 */
function summaryOf(output: string): string {
  const lines = output.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('npm warn'));
  const start = lines.findIndex((line) => line.startsWith('Test Results:'));
  return (start === -1 ? lines : lines.slice(start + 1)).join('\n');
}

/**
 * Run the client scenarios that apply to `pkg` (an `@modelcontextprotocol/conformance@x`
 * spec), writing results under `outDir`, and print the suite's summary for each. Returns how
 * many runs failed (non-zero exit or timeout).
 */
export async function runClientScenarios(outDir: string, pkg: string): Promise<number> {
  // The suite splits --command on spaces, so neither path may contain one.
  if (/\s/.test(process.execPath) || /\s/.test(REPO_ROOT)) throw new Error('node and the harness must live at paths without spaces');
  let failed = 0;
  const checks = { passed: 0, failed: 0, warnings: 0 };
  for (const run of runsFor(pkg)) {
    const era = run.specVersion === undefined ? [] : ['--spec-version', run.specVersion];
    const command = `${process.execPath} --import tsx ${run.harness === 'auth' ? AUTH_HARNESS : HARNESS}`;
    process.stdout.write(`\n=== conformance client ${run.scenario}${run.specVersion ? ` (${run.specVersion})` : ''} with ${pkg}\n`);
    const { code, output } = await runOne([
      '-y', '-p', 'node@22', '-p', pkg, '--', 'conformance', 'client',
      '--command', command, '--scenario', run.scenario, ...era, '--timeout', String(CLIENT_TIMEOUT_MS), '-o', outDir,
    ]);
    process.stdout.write(`${summaryOf(output)}\n`);
    const counts = /Passed: (\d+)\/\d+, (\d+) failed, (\d+) warnings/.exec(output);
    if (counts) {
      checks.passed += Number(counts[1]);
      checks.failed += Number(counts[2]);
      checks.warnings += Number(counts[3]);
    }
    if (code === null) process.stdout.write(`timed out after ${RUN_TIMEOUT_MS} ms; killed\n`);
    if (code !== 0 && run.knownFailure !== undefined) process.stdout.write(`known failure, not counted: ${run.knownFailure}\n`);
    else if (code !== 0) failed++;
    // Say so loudly, so the entry goes: a stale known failure would hide the next regression.
    else if (run.knownFailure !== undefined) process.stdout.write(`known failure PASSED: remove its entry in client-suite.ts (${run.knownFailure})\n`);
  }
  // Summed from the per-scenario lines above, in the suite's own `Total:` format.
  process.stdout.write(`\nclient scenarios with ${pkg}: Total: ${checks.passed} passed, ${checks.failed} failed, ${checks.warnings} warnings (${failed} of ${runsFor(pkg).length} runs failed; results in ${outDir})\n`);
  return failed;
}
