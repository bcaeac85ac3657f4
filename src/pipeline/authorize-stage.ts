/**
 * Authorization: may this principal make this call? Runs for the methods that name a tool,
 * prompt or resource (`tools/call`, `prompts/get`, `resources/read`, `resources/subscribe`,
 * `completion/complete`); every other method passes through. Task methods are checked where
 * task ids are parsed (routing/tasks.ts), since the tasks extension fixes the order of their
 * errors (capability first, then the id).
 *
 * It may short-circuit with:
 * - the exact "unknown" answer (TOOL_NOT_FOUND, PROMPT_NOT_FOUND, RESOURCE_NOT_FOUND) when the
 *   caller may not see the item: a denied name looks exactly like one that does not exist;
 * - INSUFFICIENT_SCOPE (`data.scope`: the scopes needed) when a grant would allow the call with
 *   more scopes: the HTTP layer turns it into 403 + `WWW-Authenticate` for step-up;
 * - ARGUMENT_NOT_PERMITTED when the tool is visible to the caller but the arguments are outside
 *   every grant naming it. Answering "unknown tool" here would leak less, but the caller can
 *   already list the tool, so there is nothing left to hide, and an agent told "unknown tool"
 *   about a tool it just listed cannot correct itself. The error names the argument and the
 *   kind of constraint, never the value or the pattern.
 *
 * In observe-only mode nothing is denied (except across tenants, which is a wall, not a
 * grant): the decision goes on the call record as `would_deny` with its reason. The decision
 * and reason are on the record in every mode; the per-message log line carries them (the audit
 * row carries the outcome: a denial is an error row, a would-be denial an ok one).
 */
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject } from '../protocol/jsonrpc.ts';
import type { CompiledPolicy, Verdict } from '../auth/policy.ts';
import { completionResourceTarget, endpointView, resourceTarget, type Catalog, type CatalogView } from '../catalog/catalog.ts';
import { unknownPrompt, unknownResource, unknownTool } from '../catalog/unknown-names.ts';
import type { Access } from '../auth/policy-access.ts';
import type { CallContext } from './call-context.ts';
import type { Stage } from './stage.ts';

export interface AuthorizeDeps {
  policy: CompiledPolicy;
  catalog(): Catalog;
}

/**
 * A method's check: the verdict, or undefined when the item does not exist for anyone in this
 * tenant (dispatch then answers "unknown" itself, and no policy decision is recorded).
 */
type Check = (ctx: CallContext, access: Access, base: CatalogView, routing: CatalogView) => Verdict | undefined;

const TENANT_WALL: Verdict = Object.freeze({ allowed: false, kind: 'hidden', reason: 'not in the caller\'s tenant' });

function stringParam(ctx: CallContext, key: string): string | undefined {
  const value = ctx.request.params?.[key];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

const checkTool: Check = (ctx, access, base, routing) => {
  const name = stringParam(ctx, 'name');
  if (name === undefined) return undefined;
  ctx.record.name = name;
  const entry = routing.toolByName.get(name);
  if (entry === undefined) return base.toolByName.has(name) ? TENANT_WALL : undefined;
  return access.decideTool(base, entry, ctx.request.params?.['arguments'], ctx.principal.scopes);
};

function promptVerdict(ctx: CallContext, access: Access, base: CatalogView, routing: CatalogView, name: string): Verdict | undefined {
  const entry = routing.promptByName.get(name);
  if (entry === undefined) return base.promptByName.has(name) ? TENANT_WALL : undefined;
  return access.decidePrompt(base, entry, ctx.principal.scopes);
}

function resourceVerdict(ctx: CallContext, access: Access, base: CatalogView, target: string | undefined, uri: string): Verdict | undefined {
  // Routing ignores grants (who owns a URI is not a policy question); the grant is decided on
  // the URI itself, so the target that was authorized is the target dispatch calls.
  if (target === undefined) return resourceTarget(base, uri) === undefined ? undefined : TENANT_WALL;
  return access.decideResource(target, uri, ctx.principal.scopes);
}

const checkPrompt: Check = (ctx, access, base, routing) => {
  const name = stringParam(ctx, 'name');
  if (name === undefined) return undefined;
  ctx.record.name = name;
  return promptVerdict(ctx, access, base, routing, name);
};

const checkResource: Check = (ctx, access, base, routing) => {
  const uri = stringParam(ctx, 'uri');
  if (uri === undefined) return undefined;
  ctx.record.name = uri;
  return resourceVerdict(ctx, access, base, resourceTarget(routing, uri), uri);
};

const checkCompletion: Check = (ctx, access, base, routing) => {
  const ref = ctx.request.params?.['ref'];
  if (!isPlainObject(ref)) return undefined;
  if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') return promptVerdict(ctx, access, base, routing, ref['name']);
  if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
    return resourceVerdict(ctx, access, base, completionResourceTarget(routing, ref['uri']), ref['uri']);
  }
  return undefined;
};

const CHECKS: Readonly<Record<string, Check>> = {
  'tools/call': checkTool,
  'prompts/get': checkPrompt,
  'resources/read': checkResource,
  'resources/subscribe': checkResource,
  'completion/complete': checkCompletion,
};

/** The answer for a hidden item: built from the request exactly as dispatch builds "unknown". */
function hiddenError(ctx: CallContext): GatehouseError {
  const id = ctx.request.id;
  const params = ctx.request.params;
  switch (ctx.request.method) {
    case 'tools/call':
      return unknownTool(String(params?.['name']), id);
    case 'prompts/get':
      return unknownPrompt(String(params?.['name']), id);
    case 'completion/complete': {
      const ref = params?.['ref'] as Record<string, unknown>;
      return ref['type'] === 'ref/prompt' ? unknownPrompt(String(ref['name']), id) : unknownResource(String(ref['uri']), id);
    }
    default:
      return unknownResource(String(params?.['uri']), id);
  }
}

function denial(ctx: CallContext, verdict: Exclude<Verdict, { allowed: true }>): GatehouseError {
  switch (verdict.kind) {
    case 'hidden':
      return hiddenError(ctx);
    case 'scope': {
      const scope = verdict.scopes.join(' ');
      return new GatehouseError('INSUFFICIENT_SCOPE', `this call needs the scope ${scope}`, { id: ctx.request.id, data: { scope } });
    }
    case 'arguments': {
      const { argument, constraint } = verdict.violation;
      const tool = String(ctx.request.params?.['name']);
      return new GatehouseError('ARGUMENT_NOT_PERMITTED', `Argument ${argument} of tool ${tool} is outside what the caller may pass (${constraint})`, {
        id: ctx.request.id,
        data: { argument, constraint },
      });
    }
  }
}

/** Build the authorize stage for one snapshot's compiled policy. */
export function authorizeStage(deps: AuthorizeDeps): Stage {
  const { policy } = deps;
  return {
    name: 'authorize',
    async run(ctx, next) {
      const check = CHECKS[ctx.request.method];
      if (check === undefined) return next();
      const base = endpointView(deps.catalog(), ctx.session.toolset);
      if (base === undefined) return next();
      const access = policy.accessFor(ctx.principal, ctx.session.toolset);
      const verdict = check(ctx, access, base, access.tenantView(base));
      if (verdict === undefined) return next();
      if (verdict.allowed) {
        ctx.record.policyDecision = 'allow';
        return next();
      }
      ctx.record.policyReason = verdict.reason;
      if (policy.observeOnly && verdict !== TENANT_WALL) {
        ctx.record.policyDecision = 'would_deny';
        return next();
      }
      ctx.record.policyDecision = 'deny';
      throw denial(ctx, verdict);
    },
  };
}
