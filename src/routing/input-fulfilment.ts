/**
 * The reverse of the MRTR bridge (input-required.ts). A 2026-07-28 upstream answers a call
 * with an `InputRequiredResult`, but the agent is on a 2025-era session, where a server asks
 * for input with server→client requests instead. So the gateway asks the agent itself, on the
 * call's own stream, once per `inputRequests` entry, and retries the upstream call with the
 * answers as `inputResponses` and the upstream's `requestState` echoed, until a complete
 * result (or an error) arrives.
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';

/** Rounds before the gateway gives up on an upstream that never stops asking. */
export const MAX_INPUT_ROUNDS = 16;

/** Send the call upstream again with these extra params; resolves with the upstream's answer. */
export type Retry = (extra: JsonObject) => Promise<JsonRpcResponse>;

function inputRequestsOf(result: JsonObject): Array<[string, { method: string; params: JsonObject | undefined }]> {
  const requests = result['inputRequests'];
  if (!isPlainObject(requests) || Object.keys(requests).length === 0) {
    throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream sent an input_required result without inputRequests');
  }
  return Object.entries(requests).map(([key, request]) => {
    if (!isPlainObject(request) || typeof request['method'] !== 'string') {
      throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `upstream input request ${key} has no method`);
    }
    const params = request['params'];
    return [key, { method: request['method'], params: isPlainObject(params) ? params : undefined }];
  });
}

/**
 * Drive `first` to completion for a legacy session. Returns the final upstream response; an
 * agent that answers one of the requests with an error ends the call with that error.
 */
export async function fulfilForLegacySession(ctx: CallContext, first: JsonRpcResponse, retry: Retry, signal: AbortSignal): Promise<JsonRpcResponse> {
  let response = first;
  for (let round = 0; round < MAX_INPUT_ROUNDS; round++) {
    if (!('result' in response) || response.result['resultType'] !== 'input_required') return response;
    const requests = inputRequestsOf(response.result);
    // The session's own capability checks apply inside sink.request: an undeclared
    // capability fails the call with -32021 rather than asking the agent.
    const answers = await Promise.all(requests.map(async ([key, request]) => [key, await ctx.sink.request(request.method, request.params, signal)] as const));
    const inputResponses: JsonObject = {};
    for (const [key, answer] of answers) {
      if ('error' in answer) return { jsonrpc: '2.0', id: ctx.request.id, error: answer.error };
      inputResponses[key] = answer.result;
    }
    const state = response.result['requestState'];
    response = await retry(typeof state === 'string' ? { inputResponses, requestState: state } : { inputResponses });
  }
  throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `upstream still asked for input after ${MAX_INPUT_ROUNDS} rounds`);
}
