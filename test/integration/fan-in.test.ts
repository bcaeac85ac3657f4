// The fixture split over two targets (part a over stdio, part b over Streamable HTTP) behind
// one gateway endpoint, driven by the SDK v1 client: routing, progress, logging, sampling,
// elicitation, resources, prompts, completion, cancellation and list_changed across the fan-in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { fixtureStdioCommand, startHttpFixture, REPO_ROOT, type HttpFixture } from '../fixtures/fixture-process.ts';
import { makeClient, waitFor } from '../fixtures/fixture-client.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';

describe('fan-in over stdio and Streamable HTTP targets', () => {
  let httpFixture: HttpFixture;
  let gw: TestGateway;
  const stdio = fixtureStdioCommand('a');

  beforeAll(async () => {
    httpFixture = await startHttpFixture({ mode: 'http', part: 'b', name: 'fixture-b' });
    gw = await startGateway({
      targets: {
        a: { transport: 'stdio', command: stdio.command, args: stdio.args, cwd: REPO_ROOT, era: 'legacy' },
        b: { transport: 'streamable-http', url: httpFixture.url },
      },
      toolsets: { math: { tools: ['a/add_numbers', 'echo'] } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await httpFixture?.stop();
  });

  async function connect(path = '') {
    const { client, rec } = makeClient();
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url + path)));
    return { client, rec };
  }

  it('lists the union of both targets, unprefixed when names are unique', async () => {
    const { client } = await connect();
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['test_simple_text', 'add_numbers', 'test_sampling', 'test_tool_with_progress']));
    expect(names.some((n) => n.includes('__'))).toBe(false);
    await client.close();
  });

  it('keeps inputSchema keywords verbatim (json-schema 2020-12)', async () => {
    const { client } = await connect();
    const tool = (await client.listTools()).tools.find((t) => t.name === 'json_schema_2020_12_tool');
    expect(tool?.inputSchema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', additionalProperties: false });
    await client.close();
  });

  it('routes calls to their owner on either transport', async () => {
    const { client } = await connect();
    expect((await client.callTool({ name: 'add_numbers', arguments: { a: 2, b: 40 } })).content).toEqual([{ type: 'text', text: '42' }]);
    expect((await client.callTool({ name: 'test_simple_text', arguments: {} })).content).toEqual([
      { type: 'text', text: 'This is a simple text response for testing.' },
    ]);
    await client.close();
  });

  it('restores the agent progress token on the way down', async () => {
    const { client } = await connect();
    const progress: number[] = [];
    await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect([...progress].sort((x, y) => x - y)).toEqual(progress);
    await client.close();
  });

  it('forwards log messages of a call to the session that made it', async () => {
    const { client, rec } = await connect();
    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'test_tool_with_logging', arguments: {} });
    await waitFor(() => rec.logs.length >= 3);
    expect(rec.logs.every((l) => typeof l.level === 'string')).toBe(true);
    await client.close();
  });

  it('relays sampling and elicitation to exactly the calling session', async () => {
    const one = await connect();
    const two = await connect();
    const result = await one.client.callTool({ name: 'test_sampling', arguments: { prompt: 'hello from one' } });
    expect(JSON.stringify(result.content)).toContain('echo:hello from one');
    expect(one.rec.sampling).toHaveLength(1);
    expect(two.rec.sampling).toHaveLength(0);
    const elicited = await two.client.callTool({ name: 'test_elicitation', arguments: { message: 'who are you?' } });
    expect(JSON.stringify(elicited.content)).toContain('alice');
    expect(two.rec.elicitations).toHaveLength(1);
    expect(one.rec.elicitations).toHaveLength(0);
    await one.client.close();
    await two.client.close();
  });

  it('reads resources and templates, gets prompts and completes arguments', async () => {
    const { client } = await connect();
    const text = await client.readResource({ uri: 'test://static-text' });
    expect(text.contents[0]).toMatchObject({ uri: 'test://static-text', mimeType: 'text/plain' });
    const templated = await client.readResource({ uri: 'test://template/123/data' });
    expect(JSON.stringify(templated.contents)).toContain('123');
    const prompt = await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'x1', arg2: 'y2' } });
    expect(JSON.stringify(prompt.messages)).toContain('x1');
    expect(JSON.stringify(prompt.messages)).toContain('y2');
    const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value: '' } });
    expect(Array.isArray(completion.completion.values)).toBe(true);
    expect(await client.subscribeResource({ uri: 'test://watched-resource' })).toEqual({});
    expect(await client.unsubscribeResource({ uri: 'test://watched-resource' })).toEqual({});
    await client.close();
  });

  it('answers an unknown tool with a typed error and keeps serving', async () => {
    const { client } = await connect();
    await expect(client.callTool({ name: 'no_such_tool', arguments: {} })).rejects.toThrow(/Unknown tool/);
    expect((await client.callTool({ name: 'echo', arguments: { message: 'still here' } })).content).toEqual([{ type: 'text', text: 'Echo: still here' }]);
    await client.close();
  });

  it('serves a toolset as its own endpoint, hiding everything else', async () => {
    const { client } = await connect('/math');
    const names = (await client.listTools()).tools.map((t) => t.name).sort();
    expect(names).toEqual(['add_numbers', 'echo']);
    await expect(client.callTool({ name: 'test_simple_text', arguments: {} })).rejects.toThrow(/Unknown tool/);
    await client.close();
  });

  it('cancels upstream when the agent cancels', async () => {
    const { client } = await connect();
    const count = async (): Promise<number> => {
      const result = await client.callTool({ name: 'cancelled_count', arguments: {} });
      return Number((result.content as Array<{ text: string }>)[0]?.text);
    };
    const before = await count();
    const controller = new AbortController();
    const call = client.callTool({ name: 'slow', arguments: { ms: 20_000 } }, undefined, { signal: controller.signal });
    await waitFor(() => gw.gateway.targets().find((t) => t.name === 'a')!.inFlight === 1);
    controller.abort();
    await expect(call).rejects.toThrow();
    await waitFor(async () => (await count()) === before + 1);
    await client.close();
  });

  it('fans list_changed in from a target to connected sessions', async () => {
    const { client, rec } = await connect();
    await client.listTools();
    // The GET stream must be open before the change, or the notification has nowhere to go.
    await waitFor(() => [...(gw.gateway as unknown as { sessions: { all(): Iterable<{ standalone?: unknown }> } }).sessions.all()].some((e) => e.standalone !== undefined));
    await client.callTool({ name: 'add_tool', arguments: { name: 'brand_new_tool' } });
    await waitFor(() => rec.toolListChanged > 0);
    await waitFor(async () => (await client.listTools()).tools.some((t) => t.name === 'brand_new_tool'));
    await client.close();
  });

  it('serves legacy HTTP+SSE clients', async () => {
    const { client } = makeClient();
    await client.connect(new SSEClientTransport(new URL(`${gw.base}/sse`)));
    const result = await client.callTool({ name: 'echo', arguments: { message: 'via sse' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: via sse' }]);
    await client.close();
  });
});
