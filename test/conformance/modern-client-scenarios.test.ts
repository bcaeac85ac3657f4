// The 2026-07-28 client scenarios of the harness, driven in-process against a small stateless
// mock upstream of our own (no Node 22, no suite download). It serves the tools, resources and
// prompts those scenarios use, answers the way the suite's mocks do, and records every POST
// the gateway's UP side sent it, headers included, so the assertions here are on the wire.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runClientScenario } from './client-scenarios.ts';

const MODERN = '2026-07-28';
/** Opaque to every client on the way: quotes, `+`, `/` and `=` must come back byte for byte. */
const REQUEST_STATE = '{"nonce":"a+b/c==","round":1}';

type Json = Record<string, unknown>;

interface Seen {
  headers: http.IncomingHttpHeaders;
  body: Json;
}

interface Mock {
  url: string;
  posts: Seen[];
  canaryFetches: number;
  close(): Promise<void>;
}

const noArgs = { type: 'object', properties: {} };
const param = (type: string, header?: string): Json => (header === undefined ? { type } : { type, 'x-mcp-header': header });

function toolsFor(base: string): Json[] {
  const tool = (name: string, inputSchema: Json = noArgs): Json => ({ name, inputSchema });
  return [
    tool('add_numbers', { type: 'object', properties: { a: param('number'), b: param('number') } }),
    ...['test_mrtr_echo_state', 'test_mrtr_no_state', 'test_mrtr_unrelated', 'test_mrtr_no_result_type', 'test_headers', 'my-hyphenated-tool'].map((n) => tool(n)),
    tool('test_custom_headers', {
      type: 'object',
      properties: {
        region: param('string', 'Region'), priority: param('integer', 'Priority'), verbose: param('boolean', 'Verbose'),
        non_ascii_val: param('string', 'NonAscii'), whitespace_val: param('string', 'Whitespace'),
        float_val: param('number'), query: param('string'),
      },
    }),
    tool('test_custom_headers_null', { type: 'object', properties: { region: param('string', 'Region'), verbose: param('boolean', 'Verbose'), query: param('string') } }),
    tool('valid_tool', { type: 'object', properties: { region: param('string', 'Region') } }),
    tool('invalid_empty_header', { type: 'object', properties: { value: param('string', '') } }),
    tool('invalid_number_header', { type: 'object', properties: { score: param('number', 'Score') } }),
    tool('invalid_duplicate_diff_case', { type: 'object', properties: { a: param('string', 'MyField'), b: param('string', 'myfield') } }),
    tool('lookup_user', {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { userId: { type: 'string' } },
      properties: { id: { $ref: '#/$defs/userId' }, profile: { $ref: `${base}/canary/profile-schema.json` } },
    }),
  ];
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

const text = (value: string): Json => ({ content: [{ type: 'text', text: value }] });
const complete = (result: Json): Json => ({ resultType: 'complete', ...result });
const listed = (result: Json): Json => ({ resultType: 'complete', ttlMs: 0, cacheScope: 'private', ...result });
const confirm = { confirm: { method: 'elicitation/create', params: { message: 'Confirm?', requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } } } } };

/** The result of one tools/call, the way the suite's mocks answer it. */
function callResult(params: Json): Json | undefined {
  const retry = params['inputResponses'] !== undefined;
  switch (params['name']) {
    case 'test_mrtr_echo_state':
      return retry ? complete(text('echo-state-ok')) : { resultType: 'input_required', inputRequests: confirm, requestState: REQUEST_STATE };
    case 'test_mrtr_no_state':
      return retry ? complete(text('no-state-ok')) : { resultType: 'input_required', inputRequests: confirm };
    case 'add_numbers':
      return complete(text(`The sum is ${Number((params['arguments'] as Json)['a']) + Number((params['arguments'] as Json)['b'])}`));
    case 'test_mrtr_unrelated':
      return complete(text('unrelated-ok'));
    case 'test_mrtr_no_result_type':
      // No resultType at all: a client must read it as complete.
      return text(retry ? 'unexpected-retry' : 'no-result-type-test-ok');
    case 'test_headers':
    case 'my-hyphenated-tool':
      return complete(text('Headers test completed'));
    case 'test_custom_headers':
    case 'test_custom_headers_null':
      return complete(text('Custom headers test completed'));
    default:
      return typeof params['name'] === 'string' && /^(valid_tool|invalid_)/.test(params['name']) ? complete(text('Tool call received')) : undefined;
  }
}

/** A stateless 2026-07-28 server on 127.0.0.1; `refuseFirst` answers the first POST with -32022. */
async function startMock(options: { refuseFirst?: boolean } = {}): Promise<Mock> {
  const posts: Seen[] = [];
  const mock = { posts, canaryFetches: 0 };
  let base = '';

  function answer(res: http.ServerResponse, status: number, body: Json): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  async function onPost(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    posts.push({ headers: req.headers, body });
    const id = body['id'];
    if (id === undefined) return void res.writeHead(202).end();
    if (options.refuseFirst && posts.length === 1) {
      return answer(res, 400, { jsonrpc: '2.0', id, error: { code: -32022, message: 'Unsupported protocol version', data: { supported: [MODERN], requested: MODERN } } });
    }
    const params = (body['params'] ?? {}) as Json;
    const results: Record<string, () => Json | undefined> = {
      'server/discover': () => listed({ supportedVersions: [MODERN], capabilities: { tools: {}, resources: {}, prompts: {} }, _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'modern-mock', version: '1.0.0' } } }),
      'tools/list': () => listed({ tools: toolsFor(base) }),
      'resources/list': () => listed({ resources: [{ uri: 'file:///path/to/file%20name.txt', name: 'File with spaces' }] }),
      'resources/templates/list': () => listed({ resourceTemplates: [] }),
      'resources/read': () => listed({ contents: [] }),
      'prompts/list': () => listed({ prompts: [{ name: 'test_prompt' }] }),
      'prompts/get': () => complete({ messages: [] }),
      'tools/call': () => callResult(params),
    };
    const result = results[body['method'] as string]?.();
    if (result === undefined) return answer(res, 404, { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } });
    return answer(res, 200, { jsonrpc: '2.0', id, result });
  }

  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/mcp') onPost(req, res).catch(() => res.destroy());
    else if (req.url?.startsWith('/canary/')) {
      mock.canaryFetches++;
      answer(res, 200, { type: 'object' });
    } else res.writeHead(405).end(); // stateless: no GET stream, no DELETE
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(mock, {
    url: `${base}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const b64 = (value: string): string => `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;

describe('2026-07-28 conformance client scenarios against a local modern mock upstream', () => {
  let mock: Mock;
  const calls = (name: string): Seen[] => mock.posts.filter((p) => p.body['method'] === 'tools/call' && (p.body['params'] as Json)['name'] === name);

  afterEach(async () => {
    await mock.close();
  });

  describe('with a mock that refuses the first request', () => {
    beforeEach(async () => {
      mock = await startMock({ refuseFirst: true });
    });

    it('request-metadata: a -32022 refusal is retried at 2026-07-28, and every request carries matching version header and _meta', async () => {
      await runClientScenario('request-metadata', mock.url);
      expect(mock.posts.slice(0, 2).map((p) => p.body['method'])).toEqual(['server/discover', 'server/discover']);
      expect(mock.posts.some((p) => p.body['method'] === 'initialize')).toBe(false);
      for (const { headers, body } of mock.posts) {
        const meta = ((body['params'] ?? {}) as Json)['_meta'] as Json;
        expect(headers['mcp-protocol-version']).toBe(MODERN);
        expect(meta).toMatchObject({ 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: expect.any(String) } });
        expect(meta['io.modelcontextprotocol/clientCapabilities']).toEqual(expect.any(Object));
      }
    });
  });

  describe('with a mock that answers everything', () => {
    beforeEach(async () => {
      mock = await startMock();
    });

    it('tools_call at 2026-07-28: the agent is modern, and its own _meta reaches the upstream', async () => {
      await runClientScenario('tools_call', mock.url, { protocolVersion: MODERN });
      const meta = (calls('add_numbers')[0]?.body['params'] as Json)['_meta'];
      expect(meta).toMatchObject({ 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: 'gatehouse-conformance-agent' } });
    });

    it('sep-2322-client-request-state: requestState echoed verbatim on a new id, never invented or carried over', async () => {
      await runClientScenario('sep-2322-client-request-state', mock.url);
      const [first, retry] = calls('test_mrtr_echo_state');
      expect((retry?.body['params'] as Json)['requestState']).toBe(REQUEST_STATE);
      expect((retry?.body['params'] as Json)['inputResponses']).toEqual({ confirm: expect.objectContaining({ action: 'accept' }) });
      expect(retry?.body['id']).not.toEqual(first?.body['id']);
      const noState = calls('test_mrtr_no_state');
      expect(noState).toHaveLength(2);
      expect(noState[1]?.body['params']).not.toHaveProperty('requestState');
      for (const name of ['test_mrtr_unrelated', 'test_mrtr_no_result_type']) {
        expect(calls(name)).toHaveLength(1);
        expect(calls(name)[0]?.body['params']).not.toHaveProperty('requestState');
        expect(calls(name)[0]?.body['params']).not.toHaveProperty('inputResponses');
      }
    });

    it('http-standard-headers: Mcp-Method on every POST, Mcp-Name on tools/call, resources/read and prompts/get', async () => {
      await runClientScenario('http-standard-headers', mock.url);
      for (const { headers, body } of mock.posts) expect(headers['mcp-method']).toBe(body['method']);
      const named = mock.posts.filter((p) => ['tools/call', 'resources/read', 'prompts/get'].includes(p.body['method'] as string));
      expect(named.map((p) => p.headers['mcp-name'])).toEqual(['test_headers', 'my-hyphenated-tool', 'file:///path/to/file%20name.txt', 'test_prompt']);
    });

    it('http-custom-headers: the context calls reach upstream with Mcp-Param-* written from the body', async () => {
      const toolCalls = [
        { name: 'test_custom_headers', arguments: { region: 'us-west1', priority: 42, verbose: false, non_ascii_val: 'Hello, 世界', whitespace_val: ' padded ', float_val: 3.14159, query: 'SELECT 1' } },
        { name: 'test_custom_headers_null', arguments: { region: 'us-east1', verbose: null, query: 'SELECT 1' } },
      ];
      await runClientScenario('http-custom-headers', mock.url, { context: { toolCalls } });
      const full = calls('test_custom_headers')[0]?.headers;
      expect(full).toMatchObject({
        'mcp-param-region': 'us-west1', 'mcp-param-priority': '42', 'mcp-param-verbose': 'false',
        'mcp-param-nonascii': b64('Hello, 世界'), 'mcp-param-whitespace': b64(' padded '),
      });
      expect(full).not.toHaveProperty('mcp-param-floatval');
      expect(full).not.toHaveProperty('mcp-param-query');
      const nulled = calls('test_custom_headers_null')[0]?.headers;
      expect(nulled?.['mcp-param-region']).toBe('us-east1');
      expect(nulled).not.toHaveProperty('mcp-param-verbose');
    });

    it('http-custom-headers: refuses to guess the calls without the suite context', async () => {
      await expect(runClientScenario('http-custom-headers', mock.url)).rejects.toThrow(/toolCalls/);
    });

    it('http-invalid-tool-headers: only the valid tool is ever called upstream, even when agents name the others', async () => {
      await runClientScenario('http-invalid-tool-headers', mock.url);
      const called = mock.posts.filter((p) => p.body['method'] === 'tools/call').map((p) => (p.body['params'] as Json)['name']);
      expect(called).toEqual(['valid_tool']);
    });

    it('json-schema-ref-no-deref: the network $ref is listed verbatim and never fetched', async () => {
      await runClientScenario('json-schema-ref-no-deref', mock.url);
      expect(mock.canaryFetches).toBe(0);
    });
  });
});
