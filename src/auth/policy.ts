/**
 * Authorization policy, compiled once per config snapshot: roles to grants with compiled
 * matchers, bindings indexed by (tenant, user) and (tenant, agent), and a bounded cache of
 * `Access` objects per view key, so the hot path does map lookups only.
 *
 * Effective roles = the principal's own roles ∪ the roles bound to its user or agent in its
 * tenant. Role `*` (the anonymous principal of `auth.mode: none`) grants everything; unknown
 * role names grant nothing. Tenancy is a wall under every grant: a target of another tenant is
 * never visible, whatever the roles say, and not even in observe-only mode.
 */
import type { GatehouseConfig } from '../config/schema.ts';
import type { GrantConfig } from '../config/auth-schema.ts';
import type { Principal } from './principal.ts';
import { compileNameMatcher, MATCH_ALL } from './policy-match.ts';
import { compileArgumentConstraints } from './policy-arguments.ts';
import { Access, type CompiledGrant } from './policy-access.ts';

export { Access, type Verdict } from './policy-access.ts';

/** The role of the anonymous principal: every grant. */
export const ALL_ROLES = '*';

/** The decision written on the call record. */
export type PolicyDecision = 'allow' | 'deny' | 'would_deny';

export interface CompiledPolicy {
  /** Decide and record, but never deny (rollout): see the authorize stage. */
  readonly observeOnly: boolean;
  /** The access of `principal` through endpoint `toolset` (undefined: the main endpoint). */
  accessFor(principal: Principal, toolset: string | undefined): Access;
}

/** Access objects kept per policy; a key is tenant × role set × endpoint, so few exist in practice. */
const MAX_ACCESS_KEYS = 1_024;

const STAR_GRANT: CompiledGrant = Object.freeze({
  label: '*',
  targets: MATCH_ALL,
  tools: MATCH_ALL,
  resources: MATCH_ALL,
  prompts: MATCH_ALL,
  toolsets: undefined,
  scopes: [],
  checkArguments: undefined,
});

function compileGrant(role: string, index: number, grant: GrantConfig): CompiledGrant {
  const label = `${role}#${index}`;
  return Object.freeze({
    label,
    targets: compileNameMatcher(grant.targets),
    tools: compileNameMatcher(grant.tools),
    resources: compileNameMatcher(grant.resources),
    prompts: compileNameMatcher(grant.prompts),
    toolsets: grant.toolsets === undefined ? undefined : new Set(grant.toolsets),
    scopes: Object.freeze([...grant.scopes]),
    checkArguments: compileArgumentConstraints(grant.arguments, `policy.roles.${role}.grants[${index}]`),
  });
}

const bindingKey = (tenant: string, name: string): string => `${tenant}\u0000${name}`;

function addAll(index: Map<string, string[]>, key: string, roles: readonly string[]): void {
  const list = index.get(key);
  if (list === undefined) index.set(key, [...roles]);
  else list.push(...roles);
}

/**
 * Compile the `policy` section (and the targets' tenants) of `config`. Throws CONFIG_INVALID
 * for an unsafe or invalid argument pattern, so such a snapshot is refused at load.
 */
export function compilePolicy(config: Pick<GatehouseConfig, 'policy' | 'targets'>): CompiledPolicy {
  const { policy } = config;
  const roles = new Map<string, readonly CompiledGrant[]>();
  for (const [role, def] of Object.entries(policy.roles)) roles.set(role, Object.freeze(def.grants.map((g, i) => compileGrant(role, i, g))));
  const userRoles = new Map<string, string[]>();
  const agentRoles = new Map<string, string[]>();
  for (const b of policy.bindings) {
    for (const user of b.users) addAll(userRoles, bindingKey(b.tenant, user), b.roles);
    for (const agent of b.agents) addAll(agentRoles, bindingKey(b.tenant, agent), b.roles);
  }
  const tenants = new Map(Object.entries(config.targets).map(([name, t]) => [name, t.tenant]));
  const tenantOf = (target: string): string | undefined => tenants.get(target);

  const byKey = new Map<string, Access>();
  // One slot per principal object: a session (or a cached credential) asks again and again.
  const byPrincipal = new WeakMap<Principal, { toolset: string | undefined; access: Access }>();

  const build = (principal: Principal, toolset: string | undefined): Access => {
    const effective = new Set<string>();
    const collect = (names: readonly string[] | undefined): void => {
      // Unknown role names grant nothing: they are left out of the key, so they share views.
      for (const r of names ?? []) if (r === ALL_ROLES || roles.has(r)) effective.add(r);
    };
    collect(principal.roles);
    collect(userRoles.get(bindingKey(principal.tenant, principal.user)));
    collect(agentRoles.get(bindingKey(principal.tenant, principal.agent)));
    const all = effective.has(ALL_ROLES);
    const sorted = all ? [ALL_ROLES] : [...effective].sort();
    const key = `${principal.tenant}\u0000${sorted.join(',')}\u0000${toolset ?? ''}`;
    const existing = byKey.get(key);
    if (existing !== undefined) return existing;
    const grants = all
      ? [STAR_GRANT]
      : sorted.flatMap((r) => roles.get(r) ?? []).filter((g) => g.toolsets === undefined || (toolset !== undefined && g.toolsets.has(toolset)));
    const access = new Access(key, principal.tenant, grants, tenantOf);
    if (byKey.size >= MAX_ACCESS_KEYS) {
      // Oldest first: a bounded cache, not a leak, if role sets churn.
      const oldest = byKey.keys().next().value;
      if (oldest !== undefined) byKey.delete(oldest);
    }
    byKey.set(key, access);
    return access;
  };

  return Object.freeze({
    observeOnly: policy.observeOnly,
    accessFor(principal: Principal, toolset: string | undefined): Access {
      const slot = byPrincipal.get(principal);
      if (slot !== undefined && slot.toolset === toolset) return slot.access;
      const access = build(principal, toolset);
      byPrincipal.set(principal, { toolset, access });
      return access;
    },
  });
}

/**
 * Whether `principal` may use toolset endpoint `toolset` at all: it exists and belongs to the
 * principal's tenant. The HTTP layer answers 404 otherwise, as for a toolset that does not
 * exist, so another tenant's endpoint names are not disclosed.
 */
export function isToolsetVisible(snapshot: { readonly config: Pick<GatehouseConfig, 'toolsets'> }, principal: Pick<Principal, 'tenant'>, toolset: string): boolean {
  const def = Object.hasOwn(snapshot.config.toolsets, toolset) ? snapshot.config.toolsets[toolset] : undefined;
  return def !== undefined && def.tenant === principal.tenant;
}
