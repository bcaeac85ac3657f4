/**
 * When a call needs a user's authorization at an upstream (the third auth tier), the agent is
 * handed a URL elicitation to the gateway's connect page, never the upstream's own
 * authorization URL (elicitation "Phishing": the connect page proves the user first).
 *
 * - 2025-11-25 agents: JSON-RPC error -32042 (`URLElicitationRequiredError`) with the
 *   elicitation in `data.elicitations`. Sent whatever the session declared: it is an error
 *   answer, not a request, and an agent unaware of it still shows the message, which says
 *   what the user must do.
 * - 2026-07-28 agents: an `InputRequiredResult` carrying `elicitation/create` in URL mode and a
 *   `requestState` naming the flow. The strict reading of mrtr: an input request the agent did
 *   not declare (`elicitation.url`) is never sent; that agent gets -32021 instead. The retry's
 *   `requestState` is checked against the flow's owner and target and then dropped, so the
 *   call runs again (and asks again if the user has not finished).
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext } from '../pipeline/call-context.ts';
import type { AuthorizationRequiredData } from '../upstream-auth/upstream-credential.ts';

/** The prefix of `requestState` values the gateway issues for consent (upstream states never start so). */
const CONSENT_STATE_PREFIX = 'ghc1.';
const INPUT_KEY = 'upstream-authorization';

export interface ConsentElicitation {
  readonly elicitationId: string;
  readonly url: string;
  readonly message: string;
}

/** The connect-page flows, as routing needs them. */
export interface ConsentElicitations {
  /**
   * A flow bound to the caller (tenant, user, agent) and the target; a live one is reused.
   * `session` (2025-11-25 sessions) hears `notifications/elicitation/complete` when it ends.
   */
  create(request: { tenant: string; user: string; agent: string; target: string; reason: AuthorizationRequiredData['reason']; scopes?: readonly string[] | undefined; session?: string | undefined }): ConsentElicitation;
  /** The owner and target of a live (or completed, not yet expired) flow. */
  owner(elicitationId: string): { tenant: string; user: string; agent: string; target: string } | undefined;
}

/** Turn `UPSTREAM_AUTHORIZATION_REQUIRED` from below into what the agent's era expects. */
export function authorizationRequired(ctx: CallContext, flows: ConsentElicitations | undefined, error: GatehouseError): JsonRpcResponse {
  const data = (error.details.data ?? {}) as Partial<AuthorizationRequiredData>;
  const target = typeof data.target === 'string' ? data.target : '';
  const reason = data.reason ?? 'not_authorized';
  // Without a connect page (no credential service) there is nothing to send the user to: an operator must act.
  if (flows === undefined) throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `no connect page for ${target}`, { id: ctx.request.id });
  if (ctx.session.era === 'modern') {
    const elicit = ctx.session.clientCapabilities['elicitation'];
    if (!isPlainObject(elicit) || !isPlainObject(elicit['url'])) {
      throw new GatehouseError('MISSING_CLIENT_CAPABILITY', `${target} needs the user's authorization, which takes a URL elicitation this agent did not declare`, {
        id: ctx.request.id,
        data: { requiredCapabilities: { elicitation: { url: {} } } },
      });
    }
  }
  const { principal } = ctx;
  // Only a session with a stream of its own can be told the flow ended; a 2026-07-28 agent retries instead.
  const session = ctx.session.era === 'legacy' ? ctx.session.id : undefined;
  const elicitation = flows.create({ tenant: principal.tenant, user: principal.user, agent: principal.agent, target, reason, scopes: data.scopes, session });
  const request = { mode: 'url', elicitationId: elicitation.elicitationId, url: elicitation.url, message: elicitation.message };
  if (ctx.session.era === 'modern') {
    return {
      jsonrpc: '2.0',
      id: ctx.request.id,
      result: {
        resultType: 'input_required',
        inputRequests: { [INPUT_KEY]: { method: 'elicitation/create', params: request } },
        requestState: `${CONSENT_STATE_PREFIX}${elicitation.elicitationId}`,
      },
    };
  }
  throw new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', elicitation.message, { id: ctx.request.id, data: { target, reason, elicitations: [request] } });
}

/**
 * A 2026-07-28 retry carrying a consent `requestState`: check it belongs to this caller and
 * target, and drop `requestState` / `inputResponses` (the gateway's, never the upstream's) from
 * the params to forward and from the call's own request (the MRTR bridge reads that one).
 * Undefined without one: the common case allocates nothing.
 */
export function consumeConsentState(
  ctx: CallContext,
  flows: ConsentElicitations | undefined,
  target: string,
  params: JsonObject | undefined,
): { ctx: CallContext; params: JsonObject | undefined } | undefined {
  const state = params?.['requestState'];
  if (typeof state !== 'string' || !state.startsWith(CONSENT_STATE_PREFIX)) return undefined;
  const owner = flows?.owner(state.slice(CONSENT_STATE_PREFIX.length));
  const { principal } = ctx;
  if (owner === undefined || owner.target !== target || owner.tenant !== principal.tenant || owner.user !== principal.user || owner.agent !== principal.agent) {
    throw new GatehouseError('INVALID_INPUT_RESPONSE', 'requestState is unknown, expired or belongs to another request', { id: ctx.request.id });
  }
  return { ctx: { ...ctx, request: { ...ctx.request, params: withoutInput(ctx.request.params) } }, params: withoutInput(params) };
}

function withoutInput(params: JsonObject | undefined): JsonObject | undefined {
  if (params === undefined) return undefined;
  const { requestState: _state, inputResponses: _responses, ...rest } = params;
  return rest;
}
