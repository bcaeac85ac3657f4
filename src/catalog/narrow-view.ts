/**
 * A catalog view narrowed to what one principal may see (authorization's filtered lists).
 * Entries are the base view's own objects, so a route found in a narrowed view is the same
 * route the base view holds; a filter that keeps everything returns the base view itself, so
 * its serialized list pages are shared too.
 */
import type { JsonObject } from '../protocol/jsonrpc.ts';
import { assembleView, type CatalogView, type ExposedEntry, type TemplateRoute } from './catalog.ts';

/** What to keep. Called once per entry when the narrowed view is built, never per call. */
export interface ViewFilter {
  tool(entry: ExposedEntry): boolean;
  prompt(entry: ExposedEntry): boolean;
  /** A listed resource, by its owning target and URI. */
  resource(target: string, uri: string): boolean;
  template(route: TemplateRoute): boolean;
}

export function narrowView(base: CatalogView, keep: ViewFilter): CatalogView {
  const tools = base.tools.filter((e) => keep.tool(e));
  const prompts = base.prompts.filter((e) => keep.prompt(e));
  const resourceOwner = new Map<string, string>();
  const resources: JsonObject[] = [];
  const resourceTargets: string[] = [];
  base.resources.forEach((res, i) => {
    const uri = res['uri'];
    const owner = base.resourceTargets[i]!;
    // A URI is listed once per tenant, and a narrowed view keeps one tenant's: first owner wins.
    if (typeof uri !== 'string' || resourceOwner.has(uri) || !keep.resource(owner, uri)) return;
    resourceOwner.set(uri, owner);
    resources.push(res);
    resourceTargets.push(owner);
  });
  const templates = base.templates.filter((t) => keep.template(t));
  if (tools.length === base.tools.length && prompts.length === base.prompts.length && resources.length === base.resources.length && templates.length === base.templates.length) {
    return base;
  }
  return assembleView(tools, prompts, resources, resourceTargets, resourceOwner, templates, base.targets);
}
