import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { listPage } from '../routing/list-methods.ts';
import { rawJsonOf } from '../protocol/raw-json.ts';
import { buildCatalog, resourceTarget, type TargetListing } from './catalog.ts';
import { compilePolicy } from '../auth/policy.ts';
import type { Principal } from '../auth/principal.ts';

const targets = { alpha: { transport: 'stdio', command: 'x' }, beta: { transport: 'stdio', command: 'x' } };
const config = (extra: Record<string, unknown> = {}) => parseConfig({ targets, ...extra }, 'test', { configDir: '/' });
const tool = (name: string, description = name) => ({ name, description, inputSchema: { type: 'object' } });

const listings: TargetListing[] = [
  { target: 'alpha', tools: [tool('search'), tool('read_file')], prompts: [{ name: 'p' }], resources: [{ uri: 'file:///a', name: 'a' }], templates: [{ uriTemplate: 'alpha://{id}/data', name: 't' }] },
  { target: 'beta', tools: [tool('search'), tool('write_file')], prompts: [], resources: [], templates: [{ uriTemplate: 'beta://items{?page}', name: 'u' }] },
];

describe('catalog', () => {
  it('exposes unique names as they are and prefixes colliding ones, in target order', () => {
    const catalog = buildCatalog(listings, config());
    expect(catalog.all.tools.map((t) => t.exposedName)).toEqual(['alpha__search', 'read_file', 'beta__search', 'write_file']);
    expect(catalog.all.toolByName.get('beta__search')).toMatchObject({ target: 'beta', upstreamName: 'search' });
    expect(catalog.all.toolByName.get('alpha__search')?.definition['name']).toBe('alpha__search');
    // Unprefixed definitions are passed through as the very same object: nothing is copied.
    expect(catalog.all.toolByName.get('read_file')?.definition).toBe(listings[0]!.tools[1]);
  });

  it('leaves out tools with invalid x-mcp-header annotations and says why, keeping the valid ones', () => {
    const bad = { name: 'bad', description: 'b', inputSchema: { type: 'object', properties: { n: { type: 'number', 'x-mcp-header': 'N' } } } };
    const good = { name: 'good', description: 'g', inputSchema: { type: 'object', properties: { r: { type: 'string', 'x-mcp-header': 'Region' } } } };
    const catalog = buildCatalog([{ target: 'alpha', tools: [bad, good], prompts: [], resources: [], templates: [] }], config());
    expect(catalog.all.tools.map((t) => t.exposedName)).toEqual(['good']);
    expect(catalog.all.toolByName.get('good')?.paramHeaders).toEqual([{ name: 'Region', headerKey: 'mcp-param-region', path: ['r'], type: 'string' }]);
    expect(catalog.rejected).toEqual([{ target: 'alpha', name: 'bad', reason: expect.stringMatching(/string, integer or boolean/) }]);
  });

  it('honours prefix always and a custom separator', () => {
    const catalog = buildCatalog(listings, config({ aggregation: { prefix: 'always', separator: '.' } }));
    expect(catalog.all.tools.map((t) => t.exposedName)).toEqual(['alpha.search', 'alpha.read_file', 'beta.search', 'beta.write_file']);
  });

  it('decides collision prefixes per tenant, so a name never tells of another tenant\'s tools', () => {
    const tenanted = parseConfig(
      {
        targets: { ...targets, gamma: { transport: 'stdio', command: 'x', tenant: 'acme' }, delta: { transport: 'stdio', command: 'x', tenant: 'acme' } },
        toolsets: { acme_search: { tools: ['search', 'gamma__search'], tenant: 'acme' } },
      },
      'test',
      { configDir: '/' },
    );
    const catalog = buildCatalog(
      [
        { target: 'alpha', tools: [tool('search'), tool('read_file')], prompts: [{ name: 'p' }], resources: [], templates: [] },
        { target: 'gamma', tools: [tool('search')], prompts: [{ name: 'p' }], resources: [], templates: [] },
        { target: 'delta', tools: [tool('search'), tool('deploy')], prompts: [], resources: [], templates: [] },
      ],
      tenanted,
    );
    const policy = compilePolicy(tenanted);
    const who = (tenant: string): Principal => ({ tenant, user: 'u', agent: 'a', roles: ['*'], scopes: [], method: 'oauth' });
    // Tenant default sees its search as if acme's targets did not exist; acme's two collide.
    const mine = policy.accessFor(who('default'), undefined).tenantView(catalog.all);
    expect(mine.tools.map((t) => t.exposedName)).toEqual(['search', 'read_file']);
    expect(mine.toolByName.get('search')).toMatchObject({ target: 'alpha', upstreamName: 'search' });
    expect(mine.promptByName.get('p')?.target).toBe('alpha');
    const theirs = policy.accessFor(who('acme'), undefined).tenantView(catalog.all);
    expect(theirs.tools.map((t) => t.exposedName)).toEqual(['gamma__search', 'delta__search', 'deploy']);
    expect(theirs.toolByName.get('delta__search')).toMatchObject({ target: 'delta', upstreamName: 'search' });
    expect(theirs.toolByName.has('search')).toBe(false);
    expect(theirs.promptByName.get('p')?.target).toBe('gamma');
    // A toolset selects among its own tenant's tools only.
    expect(catalog.toolsets.get('acme_search')!.tools.map((t) => `${t.target}/${t.exposedName}`)).toEqual(['gamma/gamma__search']);
  });

  it("keeps each tenant's own copy of a resource URI both list, and routes each to its tenant's target", () => {
    const tenanted = parseConfig({ targets: { ...targets, gamma: { transport: 'stdio', command: 'x', tenant: 'acme' } } }, 'test', { configDir: '/' });
    const readme = { uri: 'file:///README', name: 'README' };
    const catalog = buildCatalog(
      [
        { target: 'alpha', tools: [], prompts: [], resources: [readme, { uri: 'file:///a', name: 'a' }], templates: [] },
        { target: 'beta', tools: [], prompts: [], resources: [readme], templates: [] },
        { target: 'gamma', tools: [], prompts: [], resources: [readme], templates: [] },
      ],
      tenanted,
    );
    // Deduplicated within a tenant (alpha wins over beta), not across tenants.
    expect(catalog.all.resourceTargets).toEqual(['alpha', 'alpha', 'gamma']);
    const policy = compilePolicy(tenanted);
    const who = (tenant: string): Principal => ({ tenant, user: 'u', agent: 'a', roles: ['*'], scopes: [], method: 'oauth' });
    const mine = policy.accessFor(who('default'), undefined).tenantView(catalog.all);
    expect(mine.resources.map((r) => r['uri'])).toEqual(['file:///README', 'file:///a']);
    expect(resourceTarget(mine, 'file:///README')).toBe('alpha');
    const theirs = policy.accessFor(who('acme'), undefined).tenantView(catalog.all);
    expect(theirs.resources.map((r) => r['uri'])).toEqual(['file:///README']);
    expect(resourceTarget(theirs, 'file:///README')).toBe('gamma');
    expect(resourceTarget(theirs, 'file:///a')).not.toBe('alpha');
  });

  it('builds toolset views from selectors', () => {
    const catalog = buildCatalog(listings, config({ toolsets: { rw: { tools: ['alpha/read_*', 'write_file'] } } }));
    const view = catalog.toolsets.get('rw')!;
    expect(view.tools.map((t) => t.exposedName)).toEqual(['read_file', 'write_file']);
    expect(view.toolByName.has('alpha__search')).toBe(false);
  });

  it('routes resource URIs by exact resource, then by template', () => {
    const catalog = buildCatalog(listings, config());
    expect(resourceTarget(catalog.all, 'file:///a')).toBe('alpha');
    expect(resourceTarget(catalog.all, 'alpha://42/data')).toBe('alpha');
    expect(resourceTarget(catalog.all, 'beta://items?page=2')).toBe('beta');
    expect(resourceTarget(catalog.all, 'gamma://nowhere')).toBeUndefined();
  });

  it('pages lists with opaque cursors and refuses forged ones', () => {
    const catalog = buildCatalog(listings, config());
    const first = listPage(catalog.all, 'tools', undefined, 3);
    expect((first['tools'] as unknown[]).length).toBe(3);
    const second = listPage(catalog.all, 'tools', { cursor: first['nextCursor'] }, 3);
    expect((second['tools'] as Array<{ name: string }>).map((t) => t.name)).toEqual(['write_file']);
    expect(second['nextCursor']).toBeUndefined();
    expect(() => listPage(catalog.all, 'tools', { cursor: 'not-a-cursor' }, 3)).toThrow(/Invalid pagination cursor/);
    expect(() => listPage(catalog.all, 'prompts', { cursor: first['nextCursor'] }, 3)).toThrow(/Invalid pagination cursor/);
  });

  it('serializes each page once per catalog revision, with the cache hints it is asked for', () => {
    const catalog = buildCatalog(listings, config());
    const hints = { ttlMs: 5000, cacheScope: 'private' };
    const first = listPage(catalog.all, 'tools', undefined, 3, hints);
    const text = rawJsonOf(first)!;
    expect(JSON.parse(text)).toEqual({ tools: catalog.all.toolDefinitions.slice(0, 3), nextCursor: first['nextCursor'], ...hints });
    // The same page again is the same text, not a new serialization.
    expect(rawJsonOf(listPage(catalog.all, 'tools', undefined, 3, hints))).toBe(text);
    expect(JSON.parse(rawJsonOf(listPage(catalog.all, 'tools', undefined, 10))!)).toEqual({ tools: catalog.all.toolDefinitions });
    const rebuilt = buildCatalog([listings[0]!], config());
    expect(JSON.parse(rawJsonOf(listPage(rebuilt.all, 'tools', undefined, 3, hints))!).tools.map((t: { name: string }) => t.name)).toEqual(['search', 'read_file']);
  });
});
