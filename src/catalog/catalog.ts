/**
 * The aggregated catalog: what every target advertises, merged into the names agents see,
 * with the routes back to the owning target. Rebuilt whenever discovery or config changes,
 * never per call; list requests read its precomputed arrays.
 */
import type { GatehouseConfig } from '../config/schema.ts';
import type { JsonObject } from '../protocol/jsonrpc.ts';
import { exposedName, selectorMatches } from '../protocol/tool-names.ts';
import { paramHeadersOf, type ParamHeader } from '../protocol/param-headers.ts';
import { compileUriTemplate } from '../protocol/uri-template.ts';

/** What discovery found on one target. */
export interface TargetListing {
  target: string;
  tools: readonly JsonObject[];
  prompts: readonly JsonObject[];
  resources: readonly JsonObject[];
  templates: readonly JsonObject[];
}

/** A tool or prompt as agents see it, with its route. */
export interface ExposedEntry {
  readonly exposedName: string;
  readonly target: string;
  readonly upstreamName: string;
  /** The definition with `name` rewritten to the exposed name; everything else untouched. */
  readonly definition: JsonObject;
  /** Tools: the `x-mcp-header` parameters, checked downstream and mirrored upstream. */
  readonly paramHeaders: readonly ParamHeader[];
}

/** A definition the catalog left out, and why; logged on every rebuild. */
export interface RejectedDefinition {
  readonly target: string;
  readonly name: string;
  readonly reason: string;
}

export interface TemplateRoute {
  readonly target: string;
  readonly definition: JsonObject;
  readonly matches: (uri: string) => boolean;
}

/**
 * One endpoint's view: all of it for `/mcp`, a selection for `/mcp/<toolset>`. The view of
 * `/mcp` spans every tenant, and exposed names are unique per tenant only (see expose), so its
 * `toolByName` and `promptByName` may hold one of several same-named entries: route through a
 * tenant's narrowed view, where every name is one entry.
 */
export interface CatalogView {
  readonly tools: readonly ExposedEntry[];
  readonly toolByName: ReadonlyMap<string, ExposedEntry>;
  readonly prompts: readonly ExposedEntry[];
  readonly promptByName: ReadonlyMap<string, ExposedEntry>;
  readonly resources: readonly JsonObject[];
  /** The target that lists `resources[i]`. */
  readonly resourceTargets: readonly string[];
  /** URI → owning target; in the whole view one of several tenants' owners (route through a tenant's view). */
  readonly resourceOwner: ReadonlyMap<string, string>;
  readonly templates: readonly TemplateRoute[];
  /** The list results, precomputed so a list request copies nothing. */
  readonly toolDefinitions: readonly JsonObject[];
  readonly promptDefinitions: readonly JsonObject[];
  readonly templateDefinitions: readonly JsonObject[];
  /** Targets that contribute anything to this view, in catalog order. */
  readonly targets: readonly string[];
}

export interface Catalog {
  readonly all: CatalogView;
  readonly toolsets: ReadonlyMap<string, CatalogView>;
  /** Bumped on every rebuild; list cursors carry it so a stale cursor is detected. */
  readonly revision: number;
  readonly rejected: readonly RejectedDefinition[];
}

/**
 * Tools whose `x-mcp-header` annotations break the rules are left out (streamable-http
 * "Custom Headers": a client MUST exclude them), so one bad definition cannot make the
 * aggregated list unusable for every agent.
 */
function validTools(listings: readonly TargetListing[], rejected: RejectedDefinition[]): { listings: TargetListing[]; headers: Map<JsonObject, readonly ParamHeader[]> } {
  const headers = new Map<JsonObject, readonly ParamHeader[]>();
  const kept = listings.map((listing) => {
    const tools = listing.tools.filter((tool) => {
      const parsed = paramHeadersOf(tool['inputSchema']);
      if (parsed.ok) {
        if (parsed.headers.length > 0) headers.set(tool, parsed.headers);
        return true;
      }
      rejected.push({ target: listing.target, name: String(tool['name']), reason: parsed.reason });
      return false;
    });
    return tools.length === listing.tools.length ? listing : { ...listing, tools };
  });
  return { listings: kept, headers };
}

/**
 * The tenant a target belongs to, as a key that keeps tenants' names apart. A listed target no
 * longer in the config (a reload in flight) gets a key of its own that no tenant name can be
 * (tenant names never contain \u0000): it belongs to no tenant and no principal sees it.
 */
function tenantKey(config: GatehouseConfig, target: string): string {
  return Object.hasOwn(config.targets, target) ? config.targets[target]!.tenant : `\u0000${target}`;
}

/**
 * Exposed names are decided per tenant: a collision prefix (`target__tool`) is added only when
 * two targets of the same tenant offer the name. Computed over every target, the prefix would
 * tell a tenant that another tenant's target has the same tool. So an exposed name is unique
 * within a tenant only; two tenants may each have a `search` of their own, and the catalog's
 * whole view can hold both. Routing therefore always goes through a tenant's view (the
 * authorization policy's tenantView/grantedView), never the whole one.
 */
function expose(
  listings: readonly TargetListing[],
  pick: (l: TargetListing) => readonly JsonObject[],
  config: GatehouseConfig,
  headers: ReadonlyMap<JsonObject, readonly ParamHeader[]> = new Map(),
): ExposedEntry[] {
  const { prefix, separator } = config.aggregation;
  const inTenant = (target: string, name: string): string => `${tenantKey(config, target)}\u0000${name}`;
  const owners = new Map<string, number>();
  for (const listing of listings) {
    const seen = new Set<string>();
    for (const def of pick(listing)) {
      const name = def['name'];
      if (typeof name !== 'string' || seen.has(name)) continue;
      seen.add(name);
      const key = inTenant(listing.target, name);
      owners.set(key, (owners.get(key) ?? 0) + 1);
    }
  }
  const out: ExposedEntry[] = [];
  const taken = new Set<string>();
  for (const listing of listings) {
    for (const def of pick(listing)) {
      const name = def['name'];
      if (typeof name !== 'string') continue;
      const exposed = exposedName(listing.target, name, (owners.get(inTenant(listing.target, name)) ?? 0) > 1, prefix, separator);
      // With prefixing off, the first target of the tenant (in catalog order) wins a collision.
      const key = inTenant(listing.target, exposed);
      if (taken.has(key)) continue;
      taken.add(key);
      out.push({
        exposedName: exposed,
        target: listing.target,
        upstreamName: name,
        definition: exposed === name ? def : { ...def, name: exposed },
        paramHeaders: headers.get(def) ?? [],
      });
    }
  }
  return out;
}

/**
 * Resources are deduplicated by URI per tenant, like exposed names: two tenants running the same
 * server each keep their own `file:///README`, and neither learns the other has one.
 */
function buildView(listings: readonly TargetListing[], tools: ExposedEntry[], prompts: ExposedEntry[], tenantOf: (target: string) => string): CatalogView {
  const resources: JsonObject[] = [];
  const resourceTargets: string[] = [];
  const resourceOwner = new Map<string, string>();
  const seen = new Set<string>();
  const templates: TemplateRoute[] = [];
  for (const listing of listings) {
    for (const res of listing.resources) {
      const uri = res['uri'];
      if (typeof uri !== 'string') continue;
      const key = `${tenantOf(listing.target)}\u0000${uri}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (!resourceOwner.has(uri)) resourceOwner.set(uri, listing.target);
      resources.push(res);
      resourceTargets.push(listing.target);
    }
    for (const tpl of listing.templates) {
      const uriTemplate = tpl['uriTemplate'];
      const matches = typeof uriTemplate === 'string' ? compileUriTemplate(uriTemplate) : undefined;
      if (matches) templates.push({ target: listing.target, definition: tpl, matches });
    }
  }
  return assembleView(tools, prompts, resources, resourceTargets, resourceOwner, templates, listings.map((l) => l.target));
}

let revisionCounter = 0;


/**
 * A view over chosen entries, with its lookup maps; `targetOrder` lists targets in their
 * catalog order, of which the view keeps those that contribute something.
 */
export function assembleView(
  tools: ExposedEntry[],
  prompts: ExposedEntry[],
  resources: CatalogView['resources'],
  resourceTargets: CatalogView['resourceTargets'],
  resourceOwner: CatalogView['resourceOwner'],
  templates: TemplateRoute[],
  targetOrder: readonly string[],
): CatalogView {
  const contributing = new Set<string>();
  for (const e of tools) contributing.add(e.target);
  for (const e of prompts) contributing.add(e.target);
  for (const t of resourceTargets) contributing.add(t);
  for (const t of templates) contributing.add(t.target);
  return {
    tools,
    toolByName: new Map(tools.map((e) => [e.exposedName, e])),
    prompts,
    promptByName: new Map(prompts.map((e) => [e.exposedName, e])),
    resources,
    resourceTargets,
    resourceOwner,
    templates,
    toolDefinitions: tools.map((e) => e.definition),
    promptDefinitions: prompts.map((e) => e.definition),
    templateDefinitions: templates.map((t) => t.definition),
    targets: targetOrder.filter((t) => contributing.has(t)),
  };
}

/** Build the catalog from discovery listings (in target order) and the config. */
export function buildCatalog(discovered: readonly TargetListing[], config: GatehouseConfig): Catalog {
  const rejected: RejectedDefinition[] = [];
  const { listings, headers } = validTools(discovered, rejected);
  const tools = expose(listings, (l) => l.tools, config, headers);
  const prompts = expose(listings, (l) => l.prompts, config);
  const tenantOf = (target: string): string => tenantKey(config, target);
  const all = buildView(listings, tools, prompts, tenantOf);
  const toolsets = new Map<string, CatalogView>();
  for (const [name, toolset] of Object.entries(config.toolsets)) {
    // A toolset belongs to one tenant: it selects among that tenant's tools only, so its names
    // (unique within the tenant) resolve to one entry each.
    const selected = tools.filter(
      (e) => tenantKey(config, e.target) === toolset.tenant && toolset.tools.some((s) => selectorMatches(s, e.target, e.upstreamName, e.exposedName)),
    );
    const targets = new Set(selected.map((e) => e.target));
    // A toolset is a virtual server over its selected tools; prompts and resources of the
    // targets it draws tools from come along, so a tool's companion resources still resolve.
    const scoped = listings.filter((l) => targets.has(l.target));
    toolsets.set(name, buildView(scoped, selected, prompts.filter((e) => targets.has(e.target)), tenantOf));
  }
  return { all, toolsets, revision: ++revisionCounter, rejected };
}

/** An endpoint's whole view (the main endpoint, or a toolset); undefined for an unknown toolset. */
export function endpointView(catalog: Catalog, toolset: string | undefined): CatalogView | undefined {
  return toolset === undefined ? catalog.all : catalog.toolsets.get(toolset);
}

/** The target that owns a resource URI in a view: an exact resource first, then a template. */
export function resourceTarget(view: CatalogView, uri: string): string | undefined {
  const exact = view.resourceOwner.get(uri);
  if (exact !== undefined) return exact;
  for (const route of view.templates) if (route.matches(uri)) return route.target;
  // A single resource-serving target owns every URI: servers may serve URIs they do not list.
  return view.targets.length === 1 ? view.targets[0] : undefined;
}

/**
 * The target a `ref/resource` completion goes to: the template whose text the ref names, else
 * the owner of the URI. Dispatch and authorization both resolve it here, so the target that
 * was authorized is the target that is called.
 */
export function completionResourceTarget(view: CatalogView, uri: string): string | undefined {
  for (const route of view.templates) if (route.definition['uriTemplate'] === uri) return route.target;
  return resourceTarget(view, uri);
}
