// The embedded default's real npm servers (server-everything, server-memory) behind the
// gateway, reached by the SDK v1 client over Streamable HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';

describe('embedded default servers', () => {
  let gw: TestGateway;
  let client: Client;

  beforeAll(async () => {
    const example = parse(readFileSync(path.join(REPO_ROOT, 'examples/default.yaml'), 'utf8')) as { targets: Record<string, { cwd?: string }> };
    // The example's relative cwd resolves against examples/.
    for (const t of Object.values(example.targets)) t.cwd = path.join(REPO_ROOT, 'examples');
    gw = await startGateway({ targets: example.targets as never });
    client = new Client({ name: 'v1-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
  });

  it('aggregates the tools of both servers', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).toContain('create_entities');
    expect(gw.gateway.targets().map((t) => [t.name, t.state])).toEqual([
      ['everything', 'ready'],
      ['memory', 'ready'],
    ]);
  });

  it('routes a call to server-everything', async () => {
    const result = await client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: through the gateway' }]);
  });

  it('routes a call to server-memory', async () => {
    const result = await client.callTool({ name: 'read_graph', arguments: {} });
    expect(result.isError).not.toBe(true);
    expect(JSON.stringify(result.content)).toContain('entities');
  });

  it('writes one log line per message with the call facts', async () => {
    await client.callTool({ name: 'echo', arguments: { message: 'log me' } });
    const line = gw.logLines.filter((l) => l['kind'] === 'call' && l['name'] === 'echo').at(-1);
    expect(line).toMatchObject({ method: 'tools/call', target: 'everything', upstream_transport: 'stdio', transport: 'streamable-http', outcome: 'ok' });
    expect(line?.['bytes_in']).toBeGreaterThan(0);
    expect(line?.['bytes_out']).toBeGreaterThan(0);
    expect(typeof line?.['latency_ms']).toBe('number');
  });
});
