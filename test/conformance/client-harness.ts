// The command the official conformance suite runs in client mode: it starts a mock MCP server
// and runs `<cmd> <mockServerUrl>` with MCP_CONFORMANCE_SCENARIO set. This puts a Gatehouse
// gateway in front of the mock and drives it as an agent (see client-scenarios.ts).
// Exit 0 on success; 1 on failure, with the gateway's log on stderr (the suite saves it as
// stderr.txt); 2 on a usage error.
//
//   MCP_CONFORMANCE_SCENARIO=tools_call node --import tsx test/conformance/client-harness.ts http://localhost:PORT/mcp
import { CLIENT_SCENARIOS, ScenarioFailure, runClientScenario } from './client-scenarios.ts';

/** Under the suite's own 30 s client timeout, so a hang ends here with the gateway log printed. */
const DEADLINE_MS = 25_000;

async function main(): Promise<number> {
  const url = process.argv[2];
  const name = process.env['MCP_CONFORMANCE_SCENARIO'] ?? '';
  if (url === undefined || !/^https?:\/\//.test(url) || !CLIENT_SCENARIOS.includes(name)) {
    process.stderr.write(`usage: MCP_CONFORMANCE_SCENARIO=<${CLIENT_SCENARIOS.join('|')}> client-harness.ts <url> (scenario ${JSON.stringify(name)})\n`);
    return 2;
  }
  try {
    await runClientScenario(name, url, DEADLINE_MS);
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
