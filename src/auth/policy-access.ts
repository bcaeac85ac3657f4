/**
 * What one view key (tenant + effective roles + toolset endpoint) may see and call. Built once
 * per key and cached by the compiled policy; per catalog view it precomputes the narrowed view
 * and the grants that apply to each tool and prompt, so a call's decision is a map lookup, plus
 * scope and argument checks only for items whose grants carry them.
 */
import type { CatalogView, ExposedEntry, TemplateRoute } from '../catalog/catalog.ts';
import { narrowView } from '../catalog/narrow-view.ts';
import type { NameMatcher } from './policy-match.ts';
import type { ArgumentCheck, ArgumentViolation } from './policy-arguments.ts';

/** One grant of one role, compiled. */
export interface CompiledGrant {
  /** `role#index`, for reasons on the call record. */
  readonly label: string;
  readonly targets: NameMatcher;
  readonly tools: NameMatcher;
  readonly resources: NameMatcher;
  readonly prompts: NameMatcher;
  /** Endpoints the grant applies through; undefined = every endpoint, the main one included. */
  readonly toolsets: ReadonlySet<string> | undefined;
  readonly scopes: readonly string[];
  readonly checkArguments: ArgumentCheck | undefined;
}

/** The outcome of one check. `hidden`: the caller may not know the item exists. */
export type Verdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly kind: 'hidden'; readonly reason: string }
  | { readonly allowed: false; readonly kind: 'scope'; readonly reason: string; readonly scopes: readonly string[] }
  | { readonly allowed: false; readonly kind: 'arguments'; readonly reason: string; readonly violation: ArgumentViolation };

export const ALLOW: Verdict = Object.freeze({ allowed: true });

/** The grants that apply to one tool or prompt; `open` when one needs no scope and no argument check. */
interface ItemRule {
  readonly open: boolean;
  readonly grants: readonly CompiledGrant[];
}

interface PerView {
  readonly granted: CatalogView;
  readonly tenantOnly: CatalogView;
  readonly toolRules: ReadonlyMap<ExposedEntry, ItemRule>;
  readonly promptRules: ReadonlyMap<ExposedEntry, ItemRule>;
}

function hasScopes(held: readonly string[], needed: readonly string[]): boolean {
  for (const s of needed) if (!held.includes(s)) return false;
  return true;
}

export class Access {
  /** The view key: tenant, sorted known effective roles, toolset endpoint. */
  readonly key: string;
  readonly tenant: string;
  private readonly grants: readonly CompiledGrant[];
  private readonly tenantOf: (target: string) => string | undefined;
  /** Per catalog view; a rebuilt catalog is new views, so stale entries go with the old ones. */
  private readonly perView = new WeakMap<CatalogView, PerView>();

  constructor(key: string, tenant: string, grants: readonly CompiledGrant[], tenantOf: (target: string) => string | undefined) {
    this.key = key;
    this.tenant = tenant;
    this.grants = grants;
    this.tenantOf = tenantOf;
  }

  /** Whether `target` belongs to this principal's tenant (an unconfigured target belongs to none). */
  ownsTarget(target: string): boolean {
    return this.tenantOf(target) === this.tenant;
  }

  /** The catalog as this key may call it: tenant, grants and toolset applied. */
  grantedView(base: CatalogView): CatalogView {
    return this.forView(base).granted;
  }

  /** The catalog with only the tenant wall applied (the lists of observe-only mode). */
  tenantView(base: CatalogView): CatalogView {
    return this.forView(base).tenantOnly;
  }

  /** May this key call tool `entry` of `base` with `args`, holding `scopes`? */
  decideTool(base: CatalogView, entry: ExposedEntry, args: unknown, scopes: readonly string[]): Verdict {
    const rule = this.forView(base).toolRules.get(entry);
    const what = `tool ${entry.upstreamName} on target ${entry.target}`;
    if (rule === undefined) return this.hidden(entry.target, what);
    if (rule.open) return ALLOW;
    return decideConditional(rule.grants, what, args, scopes, true);
  }

  decidePrompt(base: CatalogView, entry: ExposedEntry, scopes: readonly string[]): Verdict {
    const rule = this.forView(base).promptRules.get(entry);
    const what = `prompt ${entry.upstreamName} on target ${entry.target}`;
    if (rule === undefined) return this.hidden(entry.target, what);
    if (rule.open) return ALLOW;
    return decideConditional(rule.grants, what, undefined, scopes, false);
  }

  /**
   * Resources are decided per URI (templates name unbounded families, so there is nothing to
   * precompute per item); the loop runs over this key's few grants and allocates nothing when
   * the answer is yes.
   */
  decideResource(target: string, uri: string, scopes: readonly string[]): Verdict {
    const what = `resource ${uri} on target ${target}`;
    if (!this.ownsTarget(target)) return this.hidden(target, what);
    let scoped: CompiledGrant | undefined;
    for (const g of this.grants) {
      if (!g.targets.matches(target) || !g.resources.matches(uri)) continue;
      if (hasScopes(scopes, g.scopes)) return ALLOW;
      if (scoped === undefined || g.scopes.length < scoped.scopes.length) scoped = g;
    }
    if (scoped === undefined) return this.hidden(target, what);
    return { allowed: false, kind: 'scope', reason: `missing scope for ${what}`, scopes: scoped.scopes };
  }

  private hidden(target: string, what: string): Verdict {
    const reason = this.ownsTarget(target) ? `no grant for ${what}` : `target ${target} is not in tenant ${this.tenant}`;
    return { allowed: false, kind: 'hidden', reason };
  }

  private forView(base: CatalogView): PerView {
    let cached = this.perView.get(base);
    if (cached === undefined) {
      cached = this.build(base);
      this.perView.set(base, cached);
    }
    return cached;
  }

  private build(base: CatalogView): PerView {
    const owned = new Map<string, boolean>();
    const owns = (target: string): boolean => {
      let yes = owned.get(target);
      if (yes === undefined) owned.set(target, (yes = this.ownsTarget(target)));
      return yes;
    };
    const rules = (entries: readonly ExposedEntry[], names: (g: CompiledGrant) => NameMatcher, withArguments: boolean): Map<ExposedEntry, ItemRule> => {
      const out = new Map<ExposedEntry, ItemRule>();
      for (const e of entries) {
        if (!owns(e.target)) continue;
        const grants = this.grants.filter((g) => g.targets.matches(e.target) && names(g).matches(e.upstreamName));
        if (grants.length === 0) continue;
        // Argument constraints bind tool calls only (the schema: "an argument of a granted tool").
        out.set(e, { open: grants.some((g) => g.scopes.length === 0 && (!withArguments || g.checkArguments === undefined)), grants });
      }
      return out;
    };
    const toolRules = rules(base.tools, (g) => g.tools, true);
    const promptRules = rules(base.prompts, (g) => g.prompts, false);
    const resourceNamed = (target: string, name: string): boolean => owns(target) && this.grants.some((g) => g.targets.matches(target) && g.resources.matches(name));
    const granted = narrowView(base, {
      tool: (e) => toolRules.has(e),
      prompt: (e) => promptRules.has(e),
      // Listed when some grant names it, whatever scope it needs: an agent must see what it
      // can step up to (a missing scope is a 403 challenge, not an unknown name).
      resource: resourceNamed,
      // A template is listed when a grant's pattern matches its text (`test://docs/*` covers
      // `test://docs/{id}`); each URI read through it is decided on its own.
      template: (t: TemplateRoute) => typeof t.definition['uriTemplate'] === 'string' && resourceNamed(t.target, t.definition['uriTemplate']),
    });
    const tenantOnly = narrowView(base, {
      tool: (e) => owns(e.target),
      prompt: (e) => owns(e.target),
      resource: (target) => owns(target),
      template: (t) => owns(t.target),
    });
    return { granted, tenantOnly, toolRules, promptRules };
  }
}

/**
 * Among the grants naming the item: allowed when one passes both its argument check and its
 * scopes. Otherwise a missing scope wins over an argument violation, since stepping up is
 * something the agent can do; the scopes asked for are those of the least demanding grant.
 */
function decideConditional(grants: readonly CompiledGrant[], what: string, args: unknown, scopes: readonly string[], withArguments: boolean): Verdict {
  let scoped: CompiledGrant | undefined;
  let violation: ArgumentViolation | undefined;
  for (const g of grants) {
    const broken = withArguments ? g.checkArguments?.(args) : undefined;
    if (broken !== undefined) {
      violation ??= broken;
      continue;
    }
    if (hasScopes(scopes, g.scopes)) return ALLOW;
    if (scoped === undefined || g.scopes.length < scoped.scopes.length) scoped = g;
  }
  if (scoped !== undefined) return { allowed: false, kind: 'scope', reason: `missing scope for ${what}`, scopes: scoped.scopes };
  const v = violation ?? { argument: 'arguments', constraint: 'arguments' as const };
  return { allowed: false, kind: 'arguments', reason: `argument ${v.argument} outside the grant (${v.constraint}) for ${what}`, violation: v };
}
