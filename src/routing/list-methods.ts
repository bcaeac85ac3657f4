/**
 * The aggregated list methods (`tools/list`, `prompts/list`, `resources/list`,
 * `resources/templates/list`): served from the precomputed catalog view with opaque cursors.
 */
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject } from '../protocol/jsonrpc.ts';
import type { CatalogView } from '../catalog/catalog.ts';

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

/** One page of a list result. */
export function listPage(view: CatalogView, kind: ListKind, params: JsonObject | undefined, pageSize: number): JsonObject {
  const all = items(view, kind);
  const offset = decodeCursor(kind, params?.['cursor']);
  const page = offset === 0 && all.length <= pageSize ? all : all.slice(offset, offset + pageSize);
  const result: JsonObject = { [kind]: page };
  if (offset + pageSize < all.length) result['nextCursor'] = encodeCursor(kind, offset + pageSize);
  return result;
}
