// The conformance client scenarios that exist only in protocol revision 2026-07-28 and need
// no authorization. The suite's mock is the gateway's only target, so each checks what the
// gateway's UP side sends: per-request `_meta` and version retry (SEP-2575), requestState
// echo across input_required rounds (SEP-2322), the standard and `Mcp-Param-*` headers and
// the exclusion of tools with invalid `x-mcp-header` annotations (SEP-2243), and that no
// network `$ref` is dereferenced (SEP-2106). The agent is pinned to 2026-07-28.
import { expectText, MODERN_VERSION, type Scenario, type ScenarioRun } from './scenario-agent.ts';

type Json = Record<string, unknown>;

/** The http-invalid-tool-headers mock's tools whose `x-mcp-header` is invalid: never to be called upstream. */
const INVALID_HEADER_TOOLS = [
  'invalid_empty_header', 'invalid_object_header', 'invalid_array_header', 'invalid_null_header', 'invalid_number_header',
  'invalid_duplicate_same_case', 'invalid_duplicate_diff_case', 'invalid_space_in_name', 'invalid_colon_in_name',
  'invalid_non_ascii_name', 'invalid_control_char_name',
];

/**
 * One raw 2026-07-28 request to the gateway, for what the SDK client would hide: it drops
 * tools with invalid annotations from its own listing, and will not call a tool it does not
 * know. Names here are plain ASCII, so Mcp-Name needs no encoding.
 */
async function rawModern(run: ScenarioRun, method: string, params: Json = {}): Promise<Json> {
  const name = params['name'];
  const res = await fetch(run.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'gatehouse-conformance-agent', version: '1.0.0' },
        },
      },
    }),
  });
  const text = await res.text();
  // The gateway answers a single request as JSON unless it streams; take the last SSE data line then.
  const body = res.headers.get('content-type')?.startsWith('text/event-stream') ? (text.match(/^data: (.*)$/gm)?.at(-1)?.slice(6) ?? '') : text;
  return JSON.parse(body) as Json;
}

/** The tool calls the suite wants made, from MCP_CONFORMANCE_CONTEXT `toolCalls`. */
function toolCallsOf(context: Readonly<Json>): Array<{ name: string; arguments: Json }> {
  const calls = context['toolCalls'];
  if (!Array.isArray(calls) || calls.length === 0) throw new Error('MCP_CONFORMANCE_CONTEXT carries no toolCalls');
  return calls.map((call: unknown) => {
    const { name, arguments: args } = (call ?? {}) as Json;
    if (typeof name !== 'string' || typeof args !== 'object' || args === null) throw new Error(`malformed tool call in context: ${JSON.stringify(call)}`);
    return { name, arguments: args as Json };
  });
}

export const MODERN_SCENARIOS: Readonly<Record<string, Scenario>> = {
  // The mock refuses the first request with -32022 and judges the `_meta` and
  // MCP-Protocol-Version of every request after: all of them come from the gateway itself
  // (its discovery and listings), so listing through it is all the agent does.
  'request-metadata': {
    era: 'modern',
    run: async ({ client }) => {
      await client.listTools();
    },
  },
  // The mock answers input_required (with and without requestState); the agent fulfils each
  // round and retries through the gateway, which must pass the state through byte for byte
  // on a fresh upstream id, and keep a call made meanwhile free of another call's state.
  'sep-2322-client-request-state': {
    era: 'modern',
    needs: ['tools'],
    run: async ({ client }) => {
      const [echoed, unrelated] = await Promise.all([
        client.callTool({ name: 'test_mrtr_echo_state', arguments: {} }),
        client.callTool({ name: 'test_mrtr_unrelated', arguments: {} }),
      ]);
      expectText(echoed, /^echo-state-ok$/);
      expectText(unrelated, /^unrelated-ok$/);
      expectText(await client.callTool({ name: 'test_mrtr_no_state', arguments: {} }), /^no-state-ok$/);
      // No resultType means complete: a retry would come back as "unexpected-retry".
      expectText(await client.callTool({ name: 'test_mrtr_no_result_type', arguments: {} }), /^no-result-type-test-ok$/);
    },
  },
  // Mcp-Method on every upstream POST, Mcp-Name on tools/call, resources/read, prompts/get:
  // one of each method, with a hyphenated tool name and a percent-encoded resource URI.
  'http-standard-headers': {
    era: 'modern',
    needs: ['tools', 'resources', 'prompts'],
    run: async ({ client }) => {
      await client.listTools();
      expectText(await client.callTool({ name: 'test_headers', arguments: {} }), /Headers test completed/);
      expectText(await client.callTool({ name: 'my-hyphenated-tool', arguments: {} }), /Headers test completed/);
      const { resources } = await client.listResources();
      if (resources.length === 0) throw new Error('no resources listed');
      for (const resource of resources) await client.readResource({ uri: resource.uri });
      await client.listPrompts();
      await client.getPrompt({ name: 'test_prompt' });
    },
  },
  // The calls the suite names in its context, made by an agent that mirrors `x-mcp-header`
  // parameters itself (the gateway checks them); the gateway must write them afresh upstream.
  'http-custom-headers': {
    era: 'modern',
    needs: ['tools'],
    run: async ({ client, context }) => {
      const calls = toolCallsOf(context);
      // The SDK mirrors Mcp-Param-* from the definitions it listed.
      await client.listTools();
      for (const call of calls) expectText(await client.callTool(call), /Custom headers test completed/);
    },
  },
  // The gateway must leave the invalid tools out of its catalog and refuse them even when an
  // agent names them; the valid one next to them must still work.
  'http-invalid-tool-headers': {
    era: 'modern',
    needs: ['tools'],
    run: async (run) => {
      const listed = (((await rawModern(run, 'tools/list'))['result'] as Json | undefined)?.['tools'] ?? []) as Json[];
      const names = listed.map((t) => t['name']);
      if (!names.includes('valid_tool')) throw new Error(`valid_tool is not listed: ${JSON.stringify(names)}`);
      const leaked = names.filter((n) => INVALID_HEADER_TOOLS.includes(n as string));
      if (leaked.length > 0) throw new Error(`tools with invalid x-mcp-header are listed: ${leaked.join(', ')}`);
      expectText(await run.client.callTool({ name: 'valid_tool', arguments: { region: 'us-west1' } }), /Tool call received/);
      for (const name of INVALID_HEADER_TOOLS) {
        const answer = await rawModern(run, 'tools/call', { name, arguments: {} });
        if (!('error' in answer)) throw new Error(`the gateway routed ${name}: ${JSON.stringify(answer)}`);
      }
    },
  },
  // The listing must reach the agent with the network `$ref` verbatim, and nobody on the way
  // (gateway or agent) may fetch it: the mock counts requests to its canary URL.
  'json-schema-ref-no-deref': {
    era: 'modern',
    needs: ['tools'],
    run: async ({ client }) => {
      const tool = (await client.listTools()).tools.find((t) => t.name === 'lookup_user');
      const ref = (tool?.inputSchema as { properties?: { profile?: { $ref?: unknown } } } | undefined)?.properties?.profile?.$ref;
      if (typeof ref !== 'string' || !/^https?:\/\//.test(ref)) throw new Error(`lookup_user's network $ref did not arrive verbatim: ${JSON.stringify(tool)}`);
    },
  },
};
