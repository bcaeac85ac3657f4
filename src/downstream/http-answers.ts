/**
 * Writing answers that are not streams: a JSON body, or an error from the one error table
 * with its HTTP status and a JSON-RPC error body (no id when none could be read).
 */
import type { ServerResponse } from 'node:http';
import type { GatehouseError } from '../protocol/errors.ts';
import { stringifyMessage } from '../protocol/raw-json.ts';

/**
 * Write a JSON body (a value, or text already serialized); returns the bytes written. Messages
 * and arrays of them (batch answers) keep upstream results as the text they came in.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, serialized?: string): number {
  if (res.headersSent || res.destroyed) return 0;
  const text = serialized ?? stringifyBody(body);
  const bytes = Buffer.byteLength(text);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(bytes) });
  res.end(text);
  return bytes;
}

/** Answer a failure at the HTTP level. Never includes a stack or a cause. */
export function sendHttpError(res: ServerResponse, error: GatehouseError): number {
  if (res.headersSent) {
    res.end();
    return 0;
  }
  const id = error.details.id ?? null;
  return sendJson(res, error.spec.http, { jsonrpc: '2.0', id, error: error.toRpcError() }, error.details.headers ?? {});
}

function stringifyBody(body: unknown): string {
  const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(body)) return stringifyMessage(body);
  if (Array.isArray(body) && body.every(isObject)) return `[${body.map((m) => stringifyMessage(m)).join(',')}]`;
  return JSON.stringify(body);
}
