/**
 * Writing answers that are not streams: a JSON body, or an error from the one error table
 * with its HTTP status and a JSON-RPC error body (no id when none could be read).
 */
import type { ServerResponse } from 'node:http';
import type { GatehouseError } from '../protocol/errors.ts';

/** Write a JSON body (a value, or text already serialized); returns the bytes written. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, serialized?: string): number {
  if (res.headersSent || res.destroyed) return 0;
  const text = serialized ?? JSON.stringify(body);
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
