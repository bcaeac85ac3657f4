/**
 * Custom headers from tool parameters (2026-07-28 streamable-http "Custom Headers from Tool
 * Parameters"). A tool's `inputSchema` may mark primitive properties with `x-mcp-header`; a
 * client mirrors their values into `Mcp-Param-{Name}` headers, and a server that reads the
 * body must check that the two agree. The gateway is both: it checks what agents send before
 * routing, and writes the headers itself toward modern HTTP upstreams.
 */
import { isPlainObject, type JsonObject } from './jsonrpc.ts';
import { decodeHeaderValueStrict, encodeHeaderValue, isHeaderFieldValue } from './mcp-headers.ts';

/** One annotated parameter of a tool. */
export interface ParamHeader {
  /** The name as the tool wrote it: the header is `Mcp-Param-{name}`. */
  readonly name: string;
  /** `mcp-param-{name}` lower-cased, the way node:http presents header names. */
  readonly headerKey: string;
  /** The chain of `properties` keys from the schema root to the parameter. */
  readonly path: readonly string[];
  readonly type: 'string' | 'integer' | 'boolean';
}

export type ParamHeadersResult = { ok: true; headers: readonly ParamHeader[] } | { ok: false; reason: string };

const NO_HEADERS: ParamHeadersResult = { ok: true, headers: [] };
/** RFC 9110 `token`: the header name portion must be one. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Keywords whose values are data, not schemas: an `x-mcp-header` key inside them is not an annotation. */
const DATA_KEYWORDS = new Set(['const', 'default', 'enum', 'examples']);

function primitiveType(schema: JsonObject): ParamHeader['type'] | undefined {
  const declared = schema['type'];
  // A nullable primitive (`["boolean", "null"]`) is still one primitive: null means "omit".
  const types = Array.isArray(declared) ? declared.filter((t) => t !== 'null') : [declared];
  if (types.length !== 1) return undefined;
  const only = types[0];
  return only === 'string' || only === 'integer' || only === 'boolean' ? only : undefined;
}

/**
 * The `x-mcp-header` annotations of a tool, or why the definition is invalid. Annotations
 * must sit on primitive properties reachable from the root through `properties` keys only;
 * one anywhere else (under `items`, `allOf`, `$ref` targets, …) invalidates the tool.
 */
export function paramHeadersOf(inputSchema: unknown): ParamHeadersResult {
  if (!isPlainObject(inputSchema)) return NO_HEADERS;
  const found: ParamHeader[] = [];
  let problem: string | undefined;

  const visit = (node: unknown, reachable: boolean, path: readonly string[]): void => {
    if (problem !== undefined) return;
    if (Array.isArray(node)) {
      for (const item of node) visit(item, false, path);
      return;
    }
    if (!isPlainObject(node)) return;
    if ('x-mcp-header' in node) {
      problem = annotation(node, reachable, path, found);
      if (problem !== undefined) return;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'x-mcp-header' || DATA_KEYWORDS.has(key)) continue;
      if (key === 'properties' && isPlainObject(value)) {
        for (const [prop, schema] of Object.entries(value)) visit(schema, reachable, [...path, prop]);
      } else {
        visit(value, false, path);
      }
    }
  };
  visit(inputSchema, true, []);
  return problem === undefined ? { ok: true, headers: found } : { ok: false, reason: problem };
}

function annotation(node: JsonObject, reachable: boolean, path: readonly string[], found: ParamHeader[]): string | undefined {
  const name = node['x-mcp-header'];
  const where = path.length === 0 ? 'the schema root' : `property ${path.join('.')}`;
  if (!reachable || path.length === 0) return `x-mcp-header on ${where} is not reachable through properties alone`;
  if (typeof name !== 'string' || name.length === 0) return `x-mcp-header on ${where} must be a non-empty string`;
  if (!TOKEN.test(name)) return `x-mcp-header "${name}" on ${where} is not an HTTP token`;
  const type = primitiveType(node);
  if (type === undefined) return `x-mcp-header "${name}" on ${where} needs a string, integer or boolean type`;
  const headerKey = `mcp-param-${name.toLowerCase()}`;
  if (found.some((h) => h.headerKey === headerKey)) return `x-mcp-header "${name}" is used twice (case-insensitively)`;
  found.push({ name, headerKey, path, type });
  return undefined;
}

/** The argument value at a parameter's path, or undefined when absent. */
function valueAt(args: unknown, path: readonly string[]): unknown {
  let node = args;
  for (const key of path) {
    if (!isPlainObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/** The text a value mirrors as ("Value Encoding" type conversion), or undefined to omit the header. */
function headerText(value: unknown, type: ParamHeader['type']): string | undefined {
  if (type === 'string' && typeof value === 'string') return value;
  if (type === 'boolean' && typeof value === 'boolean') return value ? 'true' : 'false';
  if (type === 'integer' && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

/** The `Mcp-Param-*` headers a call with `args` carries, already encoded. */
export function paramHeaderValues(headers: readonly ParamHeader[], args: unknown): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const header of headers) {
    const text = headerText(valueAt(args, header.path), header.type);
    if (text === undefined) continue;
    (out ??= {})[`Mcp-Param-${header.name}`] = encodeHeaderValue(text);
  }
  return out;
}

/**
 * Check an agent's `Mcp-Param-*` headers against its arguments ("Server Behavior for Custom
 * Headers"). Returns why they disagree, or undefined when they match. A value in the body
 * needs its header; a header needs a body value (a null or absent parameter is never
 * mirrored, so a header for one contradicts the body). Integers compare numerically.
 */
export function paramHeaderMismatch(headers: readonly ParamHeader[], args: unknown, received: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  for (const header of headers) {
    const raw = received[header.headerKey];
    const value = valueAt(args, header.path);
    const expected = headerText(value, header.type);
    if (Array.isArray(raw)) return `Mcp-Param-${header.name} appears more than once`;
    if (raw === undefined) {
      if (expected !== undefined) return `Mcp-Param-${header.name} header is required: the body carries ${header.path.join('.')}`;
      continue;
    }
    if (!isHeaderFieldValue(raw)) return `Mcp-Param-${header.name} contains characters not allowed in a header value`;
    const decoded = decodeHeaderValueStrict(raw);
    if (decoded === undefined) return `Mcp-Param-${header.name} is not valid =?base64?…?= encoding`;
    if (expected === undefined) return `Mcp-Param-${header.name} is present but the body has no value for ${header.path.join('.')}`;
    const same = header.type === 'integer' ? decoded.trim() !== '' && Number(decoded) === value : decoded === expected;
    if (!same) return `Mcp-Param-${header.name} does not match the body value of ${header.path.join('.')}`;
  }
  return undefined;
}
