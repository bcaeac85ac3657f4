// The conformance client harness, driven in-process against a small mock upstream of our own
// (no Node 22, no suite download): it does what the suite's client-mode mocks do for the
// scenarios the harness knows, and records what the gateway's UP side sent it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runClientScenario } from './client-scenarios.ts';
import { acceptWithDefaults } from './scenario-agent.ts';

/** The suite's sse-retry value; its checks fail a reconnect earlier than retry - 50 ms or later than 2 × retry. */
const RETRY_MS = 500;
const SESSION = 'mock-session';

const SEP1034_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', default: 'John Doe' },
    age: { type: 'integer', default: 30 },
    score: { type: 'number', default: 95.5 },
    status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', default: true },
  },
  required: [],
};

const RICH_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: { address: { $anchor: 'addr', type: 'object', properties: { street: { type: 'string' } } } },
  properties: { home: { $ref: '#/$defs/address' }, kind: { anyOf: [{ const: 'a' }, { const: 'b' }] } },
  if: { required: ['kind'] },
  then: { required: ['home'] },
  additionalProperties: false,
};

const TOOLS = [
  { name: 'add_numbers', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } },
  { name: 'test_client_elicitation_defaults', inputSchema: { type: 'object' } },
  { name: 'test_reconnection', inputSchema: { type: 'object' } },
  { name: 'json_schema_2020_12_tool', inputSchema: RICH_SCHEMA },
  { name: 'json_schema_echo', inputSchema: { type: 'object', properties: { schema: { type: 'object' } } } },
];

type Json = Record<string, unknown>;

interface MockLog {
  initialize?: Json;
  calls: Json[];
  elicited?: Json;
  echoedSchema?: Json;
  resumeDelayMs?: number;
  lastEventId?: string;
}

interface Mock {
  url: string;
  log: MockLog;
  close(): Promise<void>;
}

function readBody(req: http.IncomingMessage): Promise<Json> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text === '' ? {} : (JSON.parse(text) as Json)));
    req.on('error', reject);
  });
}

const sseHead = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'mcp-session-id': SESSION };
const event = (message: Json, id?: string): string => `${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(message)}\n\n`;
const textResult = (id: unknown, text: string): Json => ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });

/** A legacy (2025-11-25) Streamable HTTP server on 127.0.0.1 with one session. */
async function startMock(): Promise<Mock> {
  const log: MockLog = { calls: [] };
  let answerElicitation: ((content: Json) => void) | undefined;
  let closedAt = 0;
  let resumable: unknown;

  function json(res: http.ServerResponse, status: number, body: Json): void {
    res.writeHead(status, { 'content-type': 'application/json', 'mcp-session-id': SESSION }).end(JSON.stringify(body));
  }

  async function onPost(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const msg = await readBody(req);
    if (msg['method'] === 'initialize') {
      log.initialize = msg['params'] as Json;
      return json(res, 200, { jsonrpc: '2.0', id: msg['id'], result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'mock', version: '1.0.0' } } });
    }
    if (msg['id'] === undefined || msg['method'] === undefined) {
      // A notification, or the gateway's answer to our elicitation.
      if (msg['method'] === undefined) answerElicitation?.(msg['result'] as Json);
      res.writeHead(202).end();
      return;
    }
    if (msg['method'] === 'tools/list') return json(res, 200, { jsonrpc: '2.0', id: msg['id'], result: { tools: TOOLS } });
    if (msg['method'] !== 'tools/call') return json(res, 400, { jsonrpc: '2.0', id: msg['id'], error: { code: -32601, message: 'Method not found' } });
    const params = msg['params'] as Json;
    const args = (params['arguments'] ?? {}) as Json;
    log.calls.push(params);
    switch (params['name']) {
      case 'add_numbers':
        return json(res, 200, textResult(msg['id'], `The sum is ${Number(args['a']) + Number(args['b'])}`));
      case 'json_schema_echo':
        log.echoedSchema = args['schema'] as Json;
        return json(res, 200, textResult(msg['id'], 'echoed'));
      case 'test_client_elicitation_defaults': {
        res.writeHead(200, sseHead);
        const answered = new Promise<Json>((resolve) => (answerElicitation = resolve));
        res.write(event({ jsonrpc: '2.0', id: 'elicit-1', method: 'elicitation/create', params: { message: 'defaults please', requestedSchema: SEP1034_SCHEMA } }));
        const result = await answered;
        log.elicited = result['content'] as Json;
        res.end(event(textResult(msg['id'], `Elicitation completed: ${JSON.stringify(result['content'])}`)));
        return;
      }
      case 'test_reconnection':
        // Priming event with an id and a retry, then a graceful close before the result.
        res.writeHead(200, sseHead);
        res.write(`id: e1\nretry: ${RETRY_MS}\ndata: \n\n`);
        resumable = msg['id'];
        setTimeout(() => {
          closedAt = performance.now();
          res.end();
        }, 20);
        return;
      default:
        return json(res, 200, { jsonrpc: '2.0', id: msg['id'], error: { code: -32602, message: 'Unknown tool' } });
    }
  }

  function onGet(req: http.IncomingMessage, res: http.ServerResponse): void {
    const lastEventId = req.headers['last-event-id'];
    // No standalone stream here: only the resumption of the broken call stream is served.
    if (typeof lastEventId !== 'string' || resumable === undefined) {
      res.writeHead(405).end();
      return;
    }
    log.resumeDelayMs = performance.now() - closedAt;
    log.lastEventId = lastEventId;
    res.writeHead(200, sseHead);
    res.end(event(textResult(resumable, 'Reconnection test completed successfully'), 'e2'));
    resumable = undefined;
  }

  const server = http.createServer((req, res) => {
    if (req.method === 'POST') onPost(req, res).catch(() => res.destroy());
    else if (req.method === 'GET') onGet(req, res);
    else res.writeHead(req.method === 'DELETE' ? 200 : 405).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('conformance client harness against a local mock upstream', () => {
  let mock: Mock;

  beforeEach(async () => {
    mock = await startMock();
  });

  afterEach(async () => {
    await mock.close();
  });

  it('initialize: the gateway initializes upstream with 2025-11-25 and its clientInfo', async () => {
    await runClientScenario('initialize', mock.url);
    expect(mock.log.initialize).toMatchObject({ protocolVersion: '2025-11-25', clientInfo: { name: expect.any(String), version: expect.any(String) } });
    expect(mock.log.initialize?.['capabilities']).toHaveProperty('elicitation');
  });

  it('tools_call: add_numbers is called through the gateway', async () => {
    await runClientScenario('tools_call', mock.url);
    expect(mock.log.calls).toEqual([{ name: 'add_numbers', arguments: { a: 2, b: 3 } }]);
  });

  it('elicitation-sep1034-client-defaults: the agent accepts with every default, relayed unchanged', async () => {
    await runClientScenario('elicitation-sep1034-client-defaults', mock.url);
    expect(mock.log.elicited).toEqual({ name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true });
  });

  it('sse-retry: the call stream is resumed by GET with Last-Event-ID after the retry delay', async () => {
    await runClientScenario('sse-retry', mock.url);
    expect(mock.log.lastEventId).toBe('e1');
    expect(mock.log.resumeDelayMs).toBeGreaterThanOrEqual(RETRY_MS - 50);
    expect(mock.log.resumeDelayMs).toBeLessThanOrEqual(2 * RETRY_MS);
  });

  it('json-schema-2020-12-preservation: the inputSchema passes through verbatim', async () => {
    await runClientScenario('json-schema-2020-12-preservation', mock.url);
    expect(mock.log.echoedSchema).toEqual(RICH_SCHEMA);
  });

  it('fails fast, with the gateway log, when the upstream is unreachable', async () => {
    await mock.close();
    await expect(runClientScenario('tools_call', mock.url)).rejects.toMatchObject({ name: 'ScenarioFailure', gatewayLog: expect.any(Array) });
  });

  it('fills only the defaults a form declares', () => {
    expect(acceptWithDefaults({ properties: { a: { default: 'x' }, b: { type: 'string' }, c: { default: ['p', 'q'] }, d: { default: { no: 1 } } } })).toEqual({ a: 'x', c: ['p', 'q'] });
    expect(acceptWithDefaults(undefined)).toEqual({});
  });
});
