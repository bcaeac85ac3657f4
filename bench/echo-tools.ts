/**
 * What the upstream echo server answers: the `echo` tool (a text result of a requested size),
 * the synthetic catalog for the tools/list scenario, as an SDK McpServer and as a hand-written
 * JSON-RPC handler (the `raw` variant, with no SDK cost in the upstream).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/** Largest result the echo tool makes, so a typo cannot exhaust memory. */
export const MAX_RESULT_BYTES = 4 * 1024 * 1024;
export const ECHO_TOOL = 'echo';
export const SERVER_INFO = { name: 'gatehouse-bench-echo', version: '1.0.0' } as const;

const FILLER = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ';
const payloads = new Map<number, string>();

/** ASCII text of exactly `bytes` bytes (cached: the upstream should not pay to build it). */
export function payload(bytes: number): string {
  const size = Math.max(0, Math.min(MAX_RESULT_BYTES, Math.floor(bytes)));
  let text = payloads.get(size);
  if (text === undefined) {
    text = FILLER.repeat(Math.ceil(size / FILLER.length) + 1).slice(0, size);
    if (payloads.size < 32) payloads.set(size, text);
  }
  return text;
}

export function echoResult(size: unknown): CallToolResult {
  return { content: [{ type: 'text', text: payload(typeof size === 'number' ? size : 100) }] };
}

/** The synthetic catalog of one target in the tools/list scenario: `count` tools. */
export function catalogTools(target: number, count: number): Array<{ name: string; description: string }> {
  return Array.from({ length: count }, (_, j) => ({
    name: `t${target}_tool_${j}`,
    description: `Synthetic tool ${j} of target ${target}: looks a record up by id and returns it with its history.`,
  }));
}

const catalogInput = { id: z.string().describe('Record id'), limit: z.number().int().min(1).max(100).optional().describe('How many history entries') };

/** An SDK server: the echo tool, or a catalog endpoint's tools. */
export function createSdkServer(catalog: { target: number; count: number } | undefined): McpServer {
  const mcp = new McpServer(SERVER_INFO, { capabilities: { tools: {} } });
  if (catalog === undefined) {
    mcp.registerTool(
      ECHO_TOOL,
      { description: 'Returns a text result of `size` bytes', inputSchema: { size: z.number().int().min(0).max(MAX_RESULT_BYTES).optional() } },
      ({ size }) => echoResult(size),
    );
    return mcp;
  }
  for (const tool of catalogTools(catalog.target, catalog.count)) {
    mcp.registerTool(tool.name, { description: tool.description, inputSchema: catalogInput }, ({ id }) => ({ content: [{ type: 'text', text: id }] }));
  }
  return mcp;
}

type Json = Record<string, unknown>;

const RAW_CATALOG_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string', description: 'Record id' }, limit: { type: 'integer', minimum: 1, maximum: 100, description: 'How many history entries' } },
  required: ['id'],
};

/** JSON tool definitions for the raw variant. */
export function rawToolDefinitions(catalog: { target: number; count: number } | undefined): Json[] {
  if (catalog === undefined) {
    return [{ name: ECHO_TOOL, description: 'Returns a text result of `size` bytes', inputSchema: { type: 'object', properties: { size: { type: 'integer' } } } }];
  }
  return catalogTools(catalog.target, catalog.count).map((t) => ({ ...t, inputSchema: RAW_CATALOG_SCHEMA }));
}

/**
 * The raw variant: answers one parsed JSON-RPC message, or undefined for a notification or
 * response (HTTP 202). No validation beyond what the benchmark needs.
 */
export function rawAnswer(message: Json, tools: Json[]): Json | undefined {
  const id = message['id'];
  const method = message['method'];
  if (id === undefined || typeof method !== 'string') return undefined;
  const params = (message['params'] ?? {}) as Json;
  const ok = (result: unknown): Json => ({ jsonrpc: '2.0', id, result });
  switch (method) {
    case 'initialize':
      return ok({ protocolVersion: typeof params['protocolVersion'] === 'string' ? params['protocolVersion'] : '2025-11-25', capabilities: { tools: {} }, serverInfo: SERVER_INFO });
    case 'ping':
      return ok({});
    case 'tools/list':
      return ok({ tools });
    case 'tools/call': {
      const args = (params['arguments'] ?? {}) as Json;
      if (params['name'] === ECHO_TOOL) return ok(echoResult(args['size']));
      if (tools.some((t) => t['name'] === params['name'])) return ok({ content: [{ type: 'text', text: String(args['id']) }] });
      return { jsonrpc: '2.0', id, error: { code: -32602, message: `Unknown tool: ${String(params['name'])}` } };
    }
    default:
      return { jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${method}` } };
  }
}
