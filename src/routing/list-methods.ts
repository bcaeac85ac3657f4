/**
 * The aggregated list methods (`tools/list`, `prompts/list`, `resources/list`,
 * `resources/templates/list`): served from the precomputed catalog view with opaque cursors,
 * each page serialized once per catalog revision.
 */
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject } from '../protocol/jsonrpc.ts';
import type { CatalogView } from '../catalog/catalog.ts';
import { lazyJsonObject, type MemberSpans } from '../protocol/raw-json.ts';

export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

export const LIST_METHODS: Readonly<Record<string, ListKind>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};

function items(view: CatalogView, kind: ListKind): readonly JsonObject[] {
  switch (kind) {
    case 'tools':
      return view.toolDefinitions;
    case 'prompts':
      return view.promptDefinitions;
    case 'resources':
      return view.resources;
    case 'resourceTemplates':
      return view.templateDefinitions;
  }
}

/** Cursor: base64url JSON of the offset and the list kind, so a cursor is not reused across lists. */
function encodeCursor(kind: ListKind, offset: number): string {
  return Buffer.from(JSON.stringify({ k: kind, o: offset })).toString('base64url');
}

function decodeCursor(kind: ListKind, cursor: unknown): number {
  if (cursor === undefined) return 0;
  if (typeof cursor === 'string' && cursor.length <= 256) {
    try {
      const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown; o?: unknown };
      if (value.k === kind && typeof value.o === 'number' && Number.isInteger(value.o) && value.o >= 0) return value.o;
    } catch {
      // fall through to the typed error
    }
  }
  throw new GatehouseError('INVALID_PARAMS', 'Invalid pagination cursor');
}

/** A page as text, with where its members are: the catalog is the same for every call until it is rebuilt. */
interface SerializedPage {
  text: string;
  members: MemberSpans;
}

/**
 * Serialized pages per catalog view (a rebuilt catalog is new views, so a revision never
 * serves another's pages). Serializing 500 tool definitions per request was most of a
 * `tools/list`; now a page is built once and every request sends the same text. Only pages
 * at cursors the gateway issues (multiples of the page size) are kept, at most a bounded
 * number per view, since a cursor's offset can be forged.
 */
const pageCache = new WeakMap<CatalogView, Map<string, SerializedPage>>();
const MAX_CACHED_PAGES_PER_VIEW = 256;

function serializePage(kind: ListKind, page: readonly JsonObject[], nextCursor: string | undefined, extra: JsonObject | undefined): SerializedPage {
  const members: MemberSpans = new Map();
  let text = '{';
  const add = (key: string, valueText: string): void => {
    text += `${text.length > 1 ? ',' : ''}${JSON.stringify(key)}:`;
    members.set(key, { start: text.length, end: text.length + valueText.length });
    text += valueText;
  };
  add(kind, `[${page.map((item) => JSON.stringify(item)).join(',')}]`);
  if (nextCursor !== undefined) add('nextCursor', JSON.stringify(nextCursor));
  for (const [key, value] of Object.entries(extra ?? {})) if (value !== undefined && !members.has(key)) add(key, JSON.stringify(value));
  return { text: `${text}}`, members };
}

/**
 * One page of a list result, plus `extra` members (the 2026-07-28 cache hints). The result is a
 * lazy object over precomputed text (protocol/raw-json.ts): it reads like any result and is
 * written to the wire without being serialized again.
 */
export function listPage(view: CatalogView, kind: ListKind, params: JsonObject | undefined, pageSize: number, extra?: JsonObject): JsonObject {
  const all = items(view, kind);
  const offset = decodeCursor(kind, params?.['cursor']);
  const key = `${kind}\u0000${offset}\u0000${pageSize}\u0000${extra === undefined ? '' : JSON.stringify(extra)}`;
  let cache = pageCache.get(view);
  let page = cache?.get(key);
  if (page === undefined) {
    const next = offset + pageSize < all.length ? encodeCursor(kind, offset + pageSize) : undefined;
    page = serializePage(kind, offset === 0 && all.length <= pageSize ? all : all.slice(offset, offset + pageSize), next, extra);
    if (offset % pageSize === 0) {
      if (cache === undefined) pageCache.set(view, (cache = new Map()));
      if (cache.size < MAX_CACHED_PAGES_PER_VIEW) cache.set(key, page);
    }
  }
  return lazyJsonObject(page.text, { start: 0, end: page.text.length }, page.members);
}
