/**
 * Discovery of what a target advertises: list methods followed through every page.
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject } from '../protocol/jsonrpc.ts';
import type { UpstreamConnection } from './connection.ts';

/** A server that pages forever must not hang discovery. */
const MAX_PAGES = 200;

/** Call a list method through all its pages and return the concatenated items. */
export async function listAll(connection: UpstreamConnection, method: string, field: string): Promise<JsonObject[]> {
  const items: JsonObject[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await connection.request({ method, params: cursor === undefined ? undefined : { cursor } });
    if (!('result' in response)) {
      throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `${method} failed: ${response.error.message}`);
    }
    const list = response.result[field];
    if (Array.isArray(list)) for (const item of list) if (isPlainObject(item)) items.push(item);
    const next = response.result['nextCursor'];
    if (typeof next !== 'string' || next === '') return items;
    cursor = next;
  }
  throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `${method} returned more than ${MAX_PAGES} pages`);
}
