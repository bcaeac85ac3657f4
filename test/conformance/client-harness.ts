// The command the official conformance suite runs in client mode: it starts a mock MCP server
// and runs `<cmd> <mockServerUrl>` with MCP_CONFORMANCE_SCENARIO set (0.2.x also sets
// MCP_CONFORMANCE_PROTOCOL_VERSION, and MCP_CONFORMANCE_CONTEXT for scenarios that hand the
// client data, such as the tool calls of http-custom-headers). This puts a Gatehouse
// gateway in front of the mock and drives it as an agent (see client-scenarios.ts).
// Exit 0 on success; 1 on failure, with the gateway's log on stderr (the suite saves it as
// stderr.txt); 2 on a usage error.
//
//   MCP_CONFORMANCE_SCENARIO=tools_call node --import tsx test/conformance/client-harness.ts http://localhost:PORT/mcp
import { CLIENT_SCENARIOS, ScenarioFailure, runClientScenario } from './client-scenarios.ts';

/** Under the suite's own 30 s client timeout, so a hang ends here with the gateway log printed. */
const DEADLINE_MS = 25_000;

/** MCP_CONFORMANCE_CONTEXT as an object; undefined when unset, an error when it is not a JSON object. */
function contextOf(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value: unknown = JSON.parse(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('MCP_CONFORMANCE_CONTEXT is not a JSON object');
  return value as Record<string, unknown>;
}

async function main(): Promise<number> {
  const url = process.argv[2];
  const name = process.env['MCP_CONFORMANCE_SCENARIO'] ?? '';
  if (url === undefined || !/^https?:\/\//.test(url) || !CLIENT_SCENARIOS.includes(name)) {
    process.stderr.write(`usage: MCP_CONFORMANCE_SCENARIO=<${CLIENT_SCENARIOS.join('|')}> client-harness.ts <url> (scenario ${JSON.stringify(name)})\n`);
    return 2;
  }
  try {
    await runClientScenario(name, url, {
      protocolVersion: process.env['MCP_CONFORMANCE_PROTOCOL_VERSION'],
      context: contextOf(process.env['MCP_CONFORMANCE_CONTEXT']),
      deadlineMs: DEADLINE_MS,
    });
    process.stdout.write(`scenario ${name}: ok\n`);
    return 0;
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.stack ?? err.cause.message}` : '';
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}${cause}\n`);
    if (err instanceof ScenarioFailure) for (const line of err.gatewayLog) process.stderr.write(`${JSON.stringify(line)}\n`);
    return 1;
  }
}

// Exit explicitly: a keep-alive socket of the agent or the mock must not hold the process open.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`harness error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
