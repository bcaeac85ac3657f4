/**
 * `subscriptions/listen` (2026-07-28 basic/patterns/subscriptions): a long-lived response
 * stream carrying only the change notifications the agent opted in to, each tagged with the
 * subscription id (the listen request's id), acknowledged first, with keep-alive comments.
 */
import type { ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from '../clock.ts';
import { META_SUBSCRIPTION_ID } from '../protocol/eras.ts';
import { isPlainObject, type JsonObject, type JsonRpcRequest } from '../protocol/jsonrpc.ts';
import { LIST_CHANGED_METHOD, type ChangeBus } from './change-bus.ts';
import type { DownstreamSession } from './session.ts';
import { SseWriter } from './sse-writer.ts';

const KEEPALIVE_MS = 15_000;

export function openListenStream(res: ServerResponse, request: JsonRpcRequest, session: DownstreamSession, changes: ChangeBus, clock: Clock): void {
  const filter = isPlainObject(request.params?.['notifications']) ? (request.params['notifications'] as JsonObject) : {};
  const uris = new Set(Array.isArray(filter['resourceSubscriptions']) ? filter['resourceSubscriptions'].filter((u): u is string => typeof u === 'string') : []);
  const acknowledged: JsonObject = {};
  for (const key of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) if (filter[key] === true) acknowledged[key] = true;
  if (uris.size > 0) acknowledged['resourceSubscriptions'] = [...uris];
  const tag = { [META_SUBSCRIPTION_ID]: request.id };
  const writer = new SseWriter(res);
  const send = (method: string, params: JsonObject = {}): void => {
    writer.event(JSON.stringify({ jsonrpc: '2.0', method, params: { ...params, _meta: tag } }));
  };
  send('notifications/subscriptions/acknowledged', { notifications: acknowledged });
  const wanted = { tools: acknowledged['toolsListChanged'] === true, prompts: acknowledged['promptsListChanged'] === true, resources: acknowledged['resourcesListChanged'] === true };
  const unsubscribe = changes.subscribe((event) => {
    if (event.kind === 'list_changed') {
      if (wanted[event.list]) send(LIST_CHANGED_METHOD[event.list]);
    } else if (uris.has(event.uri)) {
      send('notifications/resources/updated', event.params);
    }
  });
  let timer: TimerHandle | undefined;
  const keepAlive = (): void => {
    timer = clock.setTimeout(() => {
      if (writer.comment()) keepAlive();
    }, KEEPALIVE_MS);
  };
  keepAlive();
  res.on('close', () => {
    unsubscribe();
    if (timer !== undefined) clock.clearTimeout(timer);
    session.close();
  });
}
