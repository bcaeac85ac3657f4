// What an agent does, per conformance client scenario, when the suite's mock server sits behind
// a Gatehouse gateway as its only target. The suite's mock plays the upstream, so what these
// scenarios test is the gateway's UP side (its MCP client role). The agent (scenario-agent.ts)
// speaks 2025-11-25 unless the run is for 2026-07-28 or the scenario exists only there. No side
// effects at import: the CLI is client-harness.ts, and client-harness.test.ts drives this in-process.
import type { Client } from '@modelcontextprotocol/client';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { MODERN_SCENARIOS } from './modern-client-scenarios.ts';
import { connectAgent, createAgent, expectText, MODERN_VERSION, type Listing, type Scenario } from './scenario-agent.ts';

/** The target's name. Aggregation never prefixes, so the mock's tool names reach the agent verbatim. */
const TARGET = 'conformance';
/** Longest wait for the target's handshake and first listings. */
const READY_TIMEOUT_MS = 10_000;

/** Scenarios of every era (2025-11-25 ones also run at 2026-07-28 where the suite scores them). */
const SHARED_SCENARIOS: Readonly<Record<string, Scenario>> = {
  // The mock checks the gateway's own initialize (version, clientInfo); listing proves the path.
  initialize: {
    run: async ({ client }) => {
      await client.listTools();
    },
  },
  // Listing alone fails the scenario: the mock records whether add_numbers was called.
  tools_call: {
    needs: ['tools'],
    run: async ({ client }) => {
      expectText(await client.callTool({ name: 'add_numbers', arguments: { a: 2, b: 3 } }), /\b5\b/);
    },
  },
  // The mock elicits during the call; the agent's answer (every default applied) must reach it unchanged.
  'elicitation-sep1034-client-defaults': {
    needs: ['tools'],
    run: async ({ client }) => {
      expectText(await client.callTool({ name: 'test_client_elicitation_defaults', arguments: {} }), /^Elicitation completed/);
    },
  },
  // The mock ends the call's SSE stream after a priming event (retry 500 ms) and sends the result
  // only on the GET that resumes it: the gateway's upstream transport must wait, then reconnect.
  'sse-retry': {
    needs: ['tools'],
    run: async ({ client }) => {
      expectText(await client.callTool({ name: 'test_reconnection', arguments: {} }), /Reconnection test completed successfully/);
    },
  },
  // Added after 2025-11-25 was released (so not scored there): the rich inputSchema must pass
  // the gateway untouched, which the mock checks by having the agent echo it back.
  'json-schema-2020-12-preservation': {
    needs: ['tools'],
    run: async ({ client }) => {
      const focal = (await client.listTools()).tools.find((t) => t.name === 'json_schema_2020_12_tool');
      if (!focal) throw new Error('json_schema_2020_12_tool is not listed');
      expectText(await client.callTool({ name: 'json_schema_echo', arguments: { schema: focal.inputSchema } }), /echoed/);
    },
  },
};

const SCENARIOS: Readonly<Record<string, Scenario>> = { ...SHARED_SCENARIOS, ...MODERN_SCENARIOS };

/** The scenario names this harness can drive. */
export const CLIENT_SCENARIOS: readonly string[] = Object.keys(SCENARIOS);

/** Wait (bounded) until the target is ready and has listed what the scenario needs. */
async function targetReady(gw: TestGateway, needs: readonly Listing[]): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const health = gw.gateway.targets().find((t) => t.name === TARGET);
    if (health?.state === 'ready' && needs.every((listing) => health[listing] > 0)) return;
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

export interface ScenarioOptions {
  /** The run's protocol version (the suite's MCP_CONFORMANCE_PROTOCOL_VERSION); 2026-07-28 makes the agent modern. */
  protocolVersion?: string;
  /** The suite's MCP_CONFORMANCE_CONTEXT, parsed. */
  context?: Readonly<Record<string, unknown>>;
  /** Give up after this long. Default 25 s. */
  deadlineMs?: number;
}

/**
 * Start a gateway on 127.0.0.1 with `upstreamUrl` as its one Streamable HTTP target, run the
 * named scenario through it as an agent, and stop everything. Rejects with ScenarioFailure.
 */
export async function runClientScenario(name: string, upstreamUrl: string, options: ScenarioOptions = {}): Promise<void> {
  const scenario = SCENARIOS[name];
  if (scenario === undefined) throw new Error(`unknown scenario ${JSON.stringify(name)}; known: ${CLIENT_SCENARIOS.join(', ')}`);
  const era = scenario.era ?? (options.protocolVersion === MODERN_VERSION ? 'modern' : 'legacy');
  const deadlineMs = options.deadlineMs ?? 25_000;
  const gw = await startGateway({
    targets: { [TARGET]: { transport: 'streamable-http', url: upstreamUrl } },
    aggregation: { prefix: 'never' },
  });
  let client: Client | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    const work = (async () => {
      await targetReady(gw, scenario.needs ?? []);
      client = createAgent(era);
      await connectAgent(client, gw.url);
      await scenario.run({ client, url: gw.url, context: options.context ?? {} });
    })();
    const timeout = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error(`did not finish within ${deadlineMs} ms`)), deadlineMs);
    });
    await Promise.race([work, timeout]);
  } catch (err) {
    throw new ScenarioFailure(`scenario ${name} failed: ${err instanceof Error ? err.message : String(err)}`, gw.logLines, { cause: err });
  } finally {
    clearTimeout(deadline);
    await client?.close().catch(() => undefined);
    await gw.stop();
  }
}
