// The MCP Inspector CLI (2.12.0, under Node 22) as a real, independent client of the gateway,
// over each downstream transport: Streamable HTTP, legacy HTTP+SSE, and stdio through
// `gatehouse connect`. The gateway fronts the fixture split over a stdio target (part a) and a
// Streamable HTTP target (part b). Conformance notes §6 has the CLI's options and exit codes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallRecord } from '../../src/telemetry/call-record.ts';
import { STATIC_TEXT } from '../fixtures/everything-content.ts';
import { fixtureStdioCommand, startHttpFixture, REPO_ROOT, type HttpFixture } from '../fixtures/fixture-process.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { ensureNode22Tools, type Node22Tools } from '../support/node22-tools.ts';

/** The first run installs node@22 and the inspector (~20 s on a warm npm cache, more on a cold one). */
const SETUP_TIMEOUT_MS = 240_000;
/** One inspector run is ~0.5 s over HTTP and ~2 s over the bridge (tsx start-up); the rest is slack for a busy CI. */
const RUN_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 60_000;
const KILL_GRACE_MS = 2_000;

/** Inspector exit codes (conformance notes §6). */
const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_TOOL_PROBLEM = 5;

interface InspectorRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tools: Node22Tools;
let scratch: string;
let httpFixture: HttpFixture | undefined;
let gw: TestGateway | undefined;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  tools = await ensureNode22Tools();
  if (tools.installMs > 0) process.stderr.write(`node22-tools: installed node@22 + inspector in ${tools.installMs} ms\n`);
  // The inspector keeps a catalog and a storage folder under ~; both go here instead.
  scratch = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-inspector-'));
  httpFixture = await startHttpFixture({ mode: 'http', part: 'b', name: 'fixture-b' });
  const stdio = fixtureStdioCommand('a');
  gw = await startGateway({
    targets: {
      a: { transport: 'stdio', command: stdio.command, args: stdio.args, cwd: REPO_ROOT, era: 'legacy' },
      b: { transport: 'streamable-http', url: httpFixture.url },
    },
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  // A test that timed out may leave an inspector run behind; stop it (and its stdio server).
  await Promise.all([...running].map((child) => stopGroup(child)));
  await gw?.stop();
  await httpFixture?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** The gateway, known to be started once a test body runs. */
function gateway(): TestGateway {
  if (!gw) throw new Error('gateway not started');
  return gw;
}

interface Downstream {
  name: string;
  /** `downstreamTransport` the gateway records for calls made this way. */
  recordedAs: string;
  /** The inspector's connection options; anything after `--` is the stdio server's command line. */
  connect(): string[];
}

const downstreams: Downstream[] = [
  { name: 'Streamable HTTP (/mcp)', recordedAs: 'streamable-http', connect: () => ['--transport', 'http', '--server-url', gateway().url] },
  { name: 'legacy HTTP+SSE (/sse)', recordedAs: 'sse', connect: () => ['--transport', 'sse', '--server-url', `${gateway().base}/sse`] },
  {
    name: 'stdio via `gatehouse connect`',
    // The bridge itself reaches the gateway over Streamable HTTP.
    recordedAs: 'streamable-http',
    // `--` makes the inspector take everything after it as the server command verbatim, so the
    // bridge's own flags (`--import`, later `-H`) are never read as inspector options.
    connect: () => ['--transport', 'stdio', '--cwd', REPO_ROOT, '--', process.execPath, '--import', 'tsx', 'src/main.ts', 'connect', gateway().url],
  },
];

/**
 * Runs `mcp-inspector --cli` under Node 22. Method options go before the connection options,
 * because those may end with `-- <server command>`. The run gets its own process group so a
 * timeout stops the inspector and the stdio server it spawned, by the inspector's PID.
 */
function runInspector(downstream: Downstream, methodArgs: string[]): Promise<InspectorRun> {
  const args = ['--cli', ...methodArgs, ...downstream.connect()];
  const env = tools.env({
    PATH: process.env['PATH'],
    HOME: path.join(scratch, 'home'),
    MCP_CATALOG_PATH: path.join(scratch, 'catalog.json'),
    MCP_STORAGE_DIR: path.join(scratch, 'storage'),
    TMPDIR: os.tmpdir(),
    NO_COLOR: '1',
  });
  return new Promise((resolve, reject) => {
    const child = spawn(tools.inspector, args, { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      void stopGroup(child);
      reject(new Error(`mcp-inspector ${args.join(' ')} did not finish within ${RUN_TIMEOUT_MS} ms\n--- stderr ---\n${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** TERM the child's process group, KILL it after a grace period; resolves once the child is gone. */
async function stopGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), KILL_GRACE_MS);
  await gone;
  clearTimeout(timer);
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} is not JSON:\n${text}`);
  }
}

/**
 * The inspector's error report: its last `{"error":…}` line on stderr. A stdio server shares
 * that stderr and may write around it (the bridge does while it shuts down).
 */
function lastJsonLine(stderr: string): unknown {
  for (const line of stderr.trim().split('\n').reverse()) {
    if (!line.startsWith('{"error"')) continue;
    return parseJson(line, 'inspector error line');
  }
  throw new Error(`no {"error":…} line on inspector stderr:\n${stderr}`);
}

/** Succeeds with exit 0 and returns the parsed result; the failure message carries stderr. */
async function expectOk(downstream: Downstream, methodArgs: string[]): Promise<unknown> {
  const run = await runInspector(downstream, methodArgs);
  expect(run.code, `exit code; stderr:\n${run.stderr}`).toBe(EXIT_OK);
  return parseJson(run.stdout, 'inspector stdout');
}

/** Records the gateway emitted while `action` ran. */
async function recordsDuring(action: () => Promise<unknown>): Promise<CallRecord[]> {
  const from = gateway().records.length;
  await action();
  return gateway().records.slice(from);
}

describe.each(downstreams)('MCP Inspector CLI over $name', (downstream) => {
  it('lists the union of both targets with their schemas', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = (await expectOk(downstream, ['--method', 'tools/list'])) as { tools: Array<{ name: string; inputSchema: unknown }> };
    const names = result.tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['echo', 'add_numbers', 'test_simple_text', 'test_tool_with_logging', 'json_schema_2020_12_tool']));
    expect(names.some((n) => n.includes('__')), 'names are unique, so none is prefixed').toBe(false);
    expect(result.tools.find((t) => t.name === 'add_numbers')?.inputSchema).toMatchObject({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
      required: ['a', 'b'],
    });
  });

  it('calls tools on the stdio target with exact payloads', { timeout: TEST_TIMEOUT_MS }, async () => {
    const records = await recordsDuring(async () => {
      expect(await expectOk(downstream, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=hello-inspector'])).toEqual({
        content: [{ type: 'text', text: 'Echo: hello-inspector' }],
      });
      // key=value arguments are JSON-coerced by the inspector, so these arrive as numbers.
      expect(await expectOk(downstream, ['--method', 'tools/call', '--tool-name', 'add_numbers', '--tool-arg', 'a=2', 'b=40'])).toEqual({
        content: [{ type: 'text', text: '42' }],
      });
    });
    const calls = records.filter((r) => r.method === 'tools/call');
    expect(calls.map((r) => [r.name, r.target, r.outcome, r.downstreamTransport])).toEqual([
      ['echo', 'a', 'ok', downstream.recordedAs],
      ['add_numbers', 'a', 'ok', downstream.recordedAs],
    ]);
  });

  it('routes a call to the Streamable HTTP target', { timeout: TEST_TIMEOUT_MS }, async () => {
    const records = await recordsDuring(async () => {
      expect(await expectOk(downstream, ['--method', 'tools/call', '--tool-name', 'test_tool_with_logging'])).toEqual({
        content: [{ type: 'text', text: 'Tool with logging executed successfully' }],
      });
    });
    expect(records.find((r) => r.method === 'tools/call')).toMatchObject({ name: 'test_tool_with_logging', target: 'b', upstreamTransport: 'streamable-http' });
  });

  it('reads a resource', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect(await expectOk(downstream, ['--method', 'resources/read', '--uri', 'test://static-text'])).toEqual({
      contents: [{ uri: 'test://static-text', mimeType: 'text/plain', text: STATIC_TEXT }],
    });
  });

  it('gets a prompt with arguments', { timeout: TEST_TIMEOUT_MS }, async () => {
    const args = ['--method', 'prompts/get', '--prompt-name', 'test_prompt_with_arguments', '--prompt-args', 'arg1=alpha', 'arg2=beta'];
    expect(await expectOk(downstream, args)).toEqual({
      messages: [{ role: 'user', content: { type: 'text', text: "Prompt with arguments: arg1='alpha', arg2='beta'" } }],
    });
  });

  it('reports an unknown tool as exit 5 with a typed error, and the gateway keeps serving', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The inspector resolves the tool against tools/list before calling, so this checks what
    // the gateway lists; the gateway's own unknown-tool answer is covered in fan-in.test.ts.
    const unknown = await runInspector(downstream, ['--method', 'tools/call', '--tool-name', 'no_such_tool']);
    expect(unknown.code, unknown.stderr).toBe(EXIT_TOOL_PROBLEM);
    expect(lastJsonLine(unknown.stderr)).toEqual({
      error: { code: 'tool_not_found', message: "Tool 'no_such_tool' not found on server." },
    });
    expect(await expectOk(downstream, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=still-here'])).toEqual({
      content: [{ type: 'text', text: 'Echo: still-here' }],
    });
  });

  it('passes a tool-level error (isError) through as exit 5 with the tool content', { timeout: TEST_TIMEOUT_MS }, async () => {
    const run = await runInspector(downstream, ['--method', 'tools/call', '--tool-name', 'test_error_handling']);
    expect(run.code, run.stderr).toBe(EXIT_TOOL_PROBLEM);
    expect(parseJson(run.stdout, 'inspector stdout')).toEqual({
      content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }],
      isError: true,
    });
    expect(lastJsonLine(run.stderr)).toMatchObject({ error: { code: 'tool_is_error' } });
  });

  it("answers an unknown resource with the gateway's typed error", { timeout: TEST_TIMEOUT_MS }, async () => {
    let run: InspectorRun | undefined;
    const records = await recordsDuring(async () => {
      run = await runInspector(downstream, ['--method', 'resources/read', '--uri', 'test://no-such-resource']);
    });
    expect(run?.code, run?.stderr).toBe(EXIT_ERROR);
    expect(lastJsonLine(run?.stderr ?? '')).toEqual({ error: { code: 'error', message: 'Resource not found: test://no-such-resource' } });
    expect(records.find((r) => r.method === 'resources/read')).toMatchObject({ outcome: 'error', errorType: 'resource_not_found' });
  });

  it('passes an upstream JSON-RPC error through', { timeout: TEST_TIMEOUT_MS }, async () => {
    let run: InspectorRun | undefined;
    const records = await recordsDuring(async () => {
      // Both arguments missing: the stdio target refuses with -32602 and its own message.
      run = await runInspector(downstream, ['--method', 'prompts/get', '--prompt-name', 'test_prompt_with_arguments']);
    });
    expect(run?.code, run?.stderr).toBe(EXIT_ERROR);
    const body = lastJsonLine(run?.stderr ?? '') as { error: { message: string } };
    expect(body.error.message).toMatch(/^MCP error -32602: Invalid arguments for prompt test_prompt_with_arguments: .*arg1/);
    expect(records.find((r) => r.method === 'prompts/get')).toMatchObject({ target: 'a', outcome: 'upstream_error', errorType: 'rpc_-32602' });
  });
});

describe('stdio bridge lifecycle under the inspector', () => {
  const bridge = downstreams[2]!;

  // The bridge's close() once re-entered itself through the transports' onclose hooks and
  // printed a stack overflow on every disconnect.
  it('shuts down without an error on stderr when the client disconnects', { timeout: TEST_TIMEOUT_MS }, async () => {
    const run = await runInspector(bridge, ['--method', 'tools/list']);
    expect(run.code, run.stderr).toBe(EXIT_OK);
    expect(run.stderr).not.toMatch(/Maximum call stack size exceeded|Exception in PromiseRejectCallback/);
  });
});
