// The command the official conformance suite runs for its auth/* client scenarios. The suite
// starts a mock MCP server protected by its mock authorization server and runs this with the
// mock's URL; the harness puts a real Gatehouse gateway in front of it (auth-gateway-run.ts),
// so the client under test is the gateway's upstream OAuth client as deployed: the registry's
// per-user and service connections, the upstream auth runtime, the encrypted SQLite vault, the
// connect page and its callback, and URL elicitation (-32042) to the agent.
//
// Per scenario the gateway's one target carries the scenario's credentials
// (auth-scenario-config.ts), and the harness plays the parts around the gateway:
// - `user-oauth` (authorization code): the operator's first-authorization link, the user's
//   browser through the connect page to the mock's authorize endpoint and back to the
//   gateway's callback, then an agent that lists tools and calls `test-tool`, consenting again
//   on a step-up -32042 (at most 3 consents in all);
// - `client-credentials`: the agent alone;
// - `user-oauth` + `tokenExchange` (cross-app access, SEP-990): the suite's ID token is put
//   where the gateway's IdP login keeps a user's ID token (the vault), the operator's link
//   (which needs no consent there) opens the user's connection, and the agent lists and calls.
//
//   MCP_CONFORMANCE_SCENARIO=auth/metadata-default node --import tsx test/conformance/auth-client-harness.ts http://localhost:PORT/mcp
//
// Exit 0 on success; 1 on failure (what the harness did and the gateway's log on stderr, which
// the suite saves as stderr.txt); 2 on a usage error. SIGTERM/SIGINT (the suite's timeout)
// stop the gateway and remove its temp dir before exiting.
import { pathToFileURL } from 'node:url';
import { GatehouseError } from '../../src/protocol/errors.ts';
import { GatewayRunFailure, runThroughGateway } from './auth-gateway-run.ts';
import { AUTH_SCENARIOS, type Context } from './auth-scenario-config.ts';

export { AUTH_SCENARIOS } from './auth-scenario-config.ts';

/** Under the suite's own 30 s client timeout, so a hang ends here with the gateway log printed. */
const DEADLINE_MS = 25_000;

function contextOf(raw: string | undefined): Context {
  if (raw === undefined || raw === '') return {};
  const value: unknown = JSON.parse(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('MCP_CONFORMANCE_CONTEXT is not a JSON object');
  return value as Context;
}

async function main(signal: AbortSignal): Promise<number> {
  const url = process.argv[2];
  const scenario = process.env['MCP_CONFORMANCE_SCENARIO'] ?? '';
  if (url === undefined || !/^https?:\/\//.test(url) || !AUTH_SCENARIOS.includes(scenario)) {
    process.stderr.write(`usage: MCP_CONFORMANCE_SCENARIO=<${AUTH_SCENARIOS.join('|')}> auth-client-harness.ts <url>\n`);
    return 2;
  }
  const context = contextOf(process.env['MCP_CONFORMANCE_CONTEXT']);
  const protocolVersion = process.env['MCP_CONFORMANCE_PROTOCOL_VERSION'];
  const log: string[] = [];
  try {
    const run = await runThroughGateway(scenario, url, context, { protocolVersion, deadlineMs: DEADLINE_MS, signal, log });
    process.stdout.write(`scenario ${scenario}: ok through the gateway (${run.consents} consents, tools ${run.tools.join(', ')})\n`);
    return 0;
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error && err.cause.message !== err.message ? `\n${err.cause.stack ?? err.cause.message}` : '';
    process.stderr.write(`scenario ${scenario} failed: ${err instanceof GatehouseError ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(err)}${cause}\n`);
    for (const line of log) process.stderr.write(`${line}\n`);
    if (err instanceof GatewayRunFailure) for (const line of err.gatewayLog) process.stderr.write(`${JSON.stringify(line)}\n`);
    return 1;
  }
}

// A CLI only when run as one: importing this module (tests) starts nothing.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The suite kills the harness on its timeout: abort the run, so the gateway stops and the temp dir goes.
  const abort = new AbortController();
  for (const name of ['SIGTERM', 'SIGINT'] as const) {
    process.once(name, () => {
      abort.abort();
      // A run that does not watch the signal (the component run) or a stop that hangs: go anyway.
      setTimeout(() => process.exit(1), 8_000).unref();
    });
  }
  // Exit explicitly: a keep-alive socket to the mock must not hold the process open.
  main(abort.signal).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`harness error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
