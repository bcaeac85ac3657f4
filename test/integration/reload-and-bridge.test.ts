// Config changes take effect without restart (and a bad one is refused), and the stdio
// bridge relays a stdio client to the gateway over Streamable HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { parseConfig } from '../../src/config/load.ts';
import { faultStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';

const fault = faultStdioCommand();
const target = { transport: 'stdio' as const, command: fault.command, args: fault.args, cwd: REPO_ROOT, env: { FAULT_MODE: 'ok' }, era: 'legacy' as const };

describe('reload and stdio bridge', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({ targets: { first: target } });
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('swaps the config atomically: new targets appear, removed ones go', async () => {
    const before = gw.gateway.snapshot;
    const next = parseConfig({ listener: { host: '127.0.0.1', port: 0 }, targets: { first: target, second: target } }, 'reload', { configDir: REPO_ROOT });
    await gw.gateway.reload(next);
    expect(gw.gateway.snapshot.version).toBe(before.version + 1);
    expect(Object.isFrozen(gw.gateway.snapshot.config)).toBe(true);
    await expect.poll(() => gw.gateway.catalog.all.tools.map((t) => t.exposedName).sort()).toEqual(['first__ping_tool', 'second__ping_tool']);
    const back = parseConfig({ listener: { host: '127.0.0.1', port: 0 }, targets: { first: target } }, 'reload', { configDir: REPO_ROOT });
    await gw.gateway.reload(back);
    await expect.poll(() => gw.gateway.catalog.all.tools.map((t) => t.exposedName)).toEqual(['ping_tool']);
    expect(gw.gateway.targets().map((t) => t.name)).toEqual(['first']);
  });

  it('relays a stdio client through `gatehouse connect`', async () => {
    const client = new Client({ name: 'stdio-only-desktop', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: ['--import', 'tsx', 'src/main.ts', 'connect', gw.url], cwd: REPO_ROOT, stderr: 'pipe' }),
    );
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('ping_tool');
    const result = await client.callTool({ name: 'ping_tool', arguments: {} });
    expect(result.content).toEqual([{ type: 'text', text: 'pong' }]);
    await client.close();
    expect(gw.records.some((r) => r.method === 'tools/call' && r.name === 'ping_tool')).toBe(true);
  });
});
