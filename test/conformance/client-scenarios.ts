// What an agent does, per conformance client scenario, when the suite's mock server sits behind
// a Gatehouse gateway as its only target. The suite's mock plays the upstream, so what these
// scenarios test is the gateway's UP side (its MCP client role). The agent is the SDK v2 client
// (`@modelcontextprotocol/client`, default 2025-11-25 era) over loopback HTTP. No side effects
// at import: the CLI is client-harness.ts, and client-harness.test.ts drives this in-process.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';

/** What one scenario does through the gateway, and the upstream tool it needs listed first. */
interface Scenario {
  tool?: string;
  run(client: Client): Promise<void>;
}

/** The target's name. Aggregation never prefixes, so the mock's tool names reach the agent verbatim. */
const TARGET = 'conformance';
/** Longest wait for the target's handshake and first tool listing. */
const READY_TIMEOUT_MS = 10_000;

function textOf(result: { content?: unknown }): string {
  const content = Array.isArray(result.content) ? (result.content as Array<{ type?: unknown; text?: unknown }>) : [];
  return content.map((c) => (c.type === 'text' && typeof c.text === 'string' ? c.text : '')).join('');
}

function expectText(result: { content?: unknown; isError?: unknown }, wanted: RegExp): void {
  if (result.isError === true || !wanted.test(textOf(result))) throw new Error(`unexpected tool result: ${JSON.stringify(result)}`);
}

const SCENARIOS: Readonly<Record<string, Scenario>> = {
  // The mock checks the gateway's own initialize (version, clientInfo); listing proves the path.
  initialize: {
    run: async (client) => {
      await client.listTools();
    },
  },
  // Listing alone fails the scenario: the mock records whether add_numbers was called.
  tools_call: {
    tool: 'add_numbers',
    run: async (client) => {
      expectText(await client.callTool({ name: 'add_numbers', arguments: { a: 2, b: 3 } }), /\b5\b/);
    },
  },
  // The mock elicits during the call; the agent's answer (every default applied) must reach it unchanged.
  'elicitation-sep1034-client-defaults': {
    tool: 'test_client_elicitation_defaults',
    run: async (client) => {
      expectText(await client.callTool({ name: 'test_client_elicitation_defaults', arguments: {} }), /^Elicitation completed/);
    },
  },
  // The mock ends the call's SSE stream after a priming event (retry 500 ms) and sends the result
  // only on the GET that resumes it: the gateway's upstream transport must wait, then reconnect.
  'sse-retry': {
    tool: 'test_reconnection',
    run: async (client) => {
      expectText(await client.callTool({ name: 'test_reconnection', arguments: {} }), /Reconnection test completed successfully/);
    },
  },
  // 0.2.0-alpha only (not scored for 2025-11-25): the rich inputSchema must pass the gateway
  // untouched, which the mock checks by having the agent echo it back.
  'json-schema-2020-12-preservation': {
    tool: 'json_schema_echo',
    run: async (client) => {
      const focal = (await client.listTools()).tools.find((t) => t.name === 'json_schema_2020_12_tool');
      if (!focal) throw new Error('json_schema_2020_12_tool is not listed');
      expectText(await client.callTool({ name: 'json_schema_echo', arguments: { schema: focal.inputSchema } }), /echoed/);
    },
  },
};

/** The scenario names this harness can drive. */
export const CLIENT_SCENARIOS: readonly string[] = Object.keys(SCENARIOS);

type FormValue = string | number | boolean | string[];

/**
 * The agent's side of SEP-1034: accept, with every field the form declares a default for set
 * to that default. The SDK v2 client validates the answer but does not fill defaults itself.
 */
export function acceptWithDefaults(requestedSchema: unknown): Record<string, FormValue> {
  const content: Record<string, FormValue> = {};
  const properties = (requestedSchema as { properties?: Record<string, { default?: unknown }> } | undefined)?.properties ?? {};
  for (const [name, property] of Object.entries(properties)) {
    const value = property.default;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') content[name] = value;
    else if (Array.isArray(value) && value.every((v): v is string => typeof v === 'string')) content[name] = value;
  }
  return content;
}

function createAgent(): Client {
  const client = new Client({ name: 'gatehouse-conformance-agent', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
  client.setRequestHandler('elicitation/create', async (request) => {
    const params = request.params as { requestedSchema?: unknown };
    return { action: 'accept', content: acceptWithDefaults(params.requestedSchema) };
  });
  return client;
}

/** Wait (bounded) until the target is ready and, if the scenario calls a tool, its tools are listed. */
async function targetReady(gw: TestGateway, needsTools: boolean): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const health = gw.gateway.targets().find((t) => t.name === TARGET);
    if (health?.state === 'ready' && (!needsTools || health.tools > 0)) return;
    // A target that failed to start is not retried: say so now rather than at the deadline.
    if (health?.state === 'failed') throw new Error(`target failed: ${health.lastError ?? 'unknown error'}`);
    if (Date.now() > until) throw new Error(`target not ready: ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A failed scenario, carrying the gateway's log lines for diagnosis. */
export class ScenarioFailure extends Error {
  constructor(message: string, readonly gatewayLog: ReadonlyArray<Record<string, unknown>>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScenarioFailure';
  }
}

/**
 * Start a gateway on 127.0.0.1 with `upstreamUrl` as its one Streamable HTTP target, run the
 * named scenario through it as an agent, and stop everything. Rejects with ScenarioFailure.
 */
export async function runClientScenario(name: string, upstreamUrl: string, deadlineMs = 25_000): Promise<void> {
  const scenario = SCENARIOS[name];
  if (scenario === undefined) throw new Error(`unknown scenario ${JSON.stringify(name)}; known: ${CLIENT_SCENARIOS.join(', ')}`);
  const gw = await startGateway({
    targets: { [TARGET]: { transport: 'streamable-http', url: upstreamUrl } },
    aggregation: { prefix: 'never' },
  });
  const client = createAgent();
  let deadline: NodeJS.Timeout | undefined;
  try {
    const work = (async () => {
      await targetReady(gw, scenario.tool !== undefined);
      await client.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
      await scenario.run(client);
    })();
    const timeout = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error(`did not finish within ${deadlineMs} ms`)), deadlineMs);
    });
    await Promise.race([work, timeout]);
  } catch (err) {
    throw new ScenarioFailure(`scenario ${name} failed: ${err instanceof Error ? err.message : String(err)}`, gw.logLines, { cause: err });
  } finally {
    clearTimeout(deadline);
    await client.close().catch(() => undefined);
    await gw.stop();
  }
}
