// The agent a conformance client scenario drives the gateway with, and the shape of one
// scenario. The agent is the SDK v2 client (`@modelcontextprotocol/client`) over loopback
// HTTP: a 2025-11-25 session by default, or pinned to 2026-07-28 (per-request `_meta`,
// Mcp-Method / Mcp-Name / Mcp-Param-* headers, input_required rounds fulfilled in place).
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

export const MODERN_VERSION = '2026-07-28';

/** The era the agent speaks to the gateway. */
export type AgentEra = 'legacy' | 'modern';

/** What one scenario gets to work with. */
export interface ScenarioRun {
  client: Client;
  /** The gateway's MCP endpoint, for the raw requests a scenario makes itself. */
  url: string;
  /** The suite's MCP_CONFORMANCE_CONTEXT for this scenario (tool call arguments, …), if any. */
  context: Readonly<Record<string, unknown>>;
}

/** A listing of the target that the gateway's catalog holds. */
export type Listing = 'tools' | 'prompts' | 'resources';

/** What one scenario does through the gateway. */
export interface Scenario {
  /** Listings the gateway must hold for the target (non-empty) before the agent starts. */
  needs?: readonly Listing[];
  /** Set when the scenario exists only in 2026-07-28: the agent is then modern whatever the run's version. */
  era?: 'modern';
  run(agent: ScenarioRun): Promise<void>;
}

export function textOf(result: { content?: unknown }): string {
  const content = Array.isArray(result.content) ? (result.content as Array<{ type?: unknown; text?: unknown }>) : [];
  return content.map((c) => (c.type === 'text' && typeof c.text === 'string' ? c.text : '')).join('');
}

export function expectText(result: { content?: unknown; isError?: unknown }, wanted: RegExp): void {
  if (result.isError === true || !wanted.test(textOf(result))) throw new Error(`unexpected tool result: ${JSON.stringify(result)}`);
}

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

/**
 * An agent that accepts every form elicitation with its defaults. The same handler serves a
 * legacy session (a server→client request relayed by the gateway) and a modern one (an
 * `inputRequests` entry the SDK fulfils before retrying the call).
 */
export function createAgent(era: AgentEra): Client {
  const client = new Client(
    { name: 'gatehouse-conformance-agent', version: '1.0.0' },
    {
      capabilities: { elicitation: { form: {} } },
      ...(era === 'modern' ? { versionNegotiation: { mode: { pin: MODERN_VERSION } } } : {}),
    },
  );
  client.setRequestHandler('elicitation/create', async (request) => {
    const params = request.params as { requestedSchema?: unknown };
    return { action: 'accept', content: acceptWithDefaults(params.requestedSchema) };
  });
  return client;
}

export function connectAgent(client: Client, url: string): Promise<void> {
  return client.connect(new StreamableHTTPClientTransport(new URL(url)));
}
