/**
 * Protocol revisions and era rules (2026-07-28 basic/versioning). "Modern" revisions carry
 * version and capabilities in every request's `_meta`; "legacy" ones negotiate them once in
 * `initialize` and scope them to a session.
 */
import type { JsonObject } from './jsonrpc.ts';

export const MODERN_VERSION = '2026-07-28';
export const LATEST_LEGACY_VERSION = '2025-11-25';

/** Legacy revisions the gateway serves downstream and speaks upstream, newest first. */
export const LEGACY_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export const SUPPORTED_VERSIONS: readonly string[] = [MODERN_VERSION, ...LEGACY_VERSIONS];

export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CLIENT_INFO = 'io.modelcontextprotocol/clientInfo';
export const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
export const META_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';
export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
export const META_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';

export type Era = 'modern' | 'legacy';

export function isModernVersion(version: string): boolean {
  return version === MODERN_VERSION;
}

export function isSupportedVersion(version: string): boolean {
  return SUPPORTED_VERSIONS.includes(version);
}

/**
 * Batches were allowed only in 2025-03-26 (removed in 2025-06-18); the gateway accepts them
 * nowhere else.
 */
export function allowsBatches(version: string): boolean {
  return version === '2025-03-26';
}

/**
 * The legacy version the gateway answers an `initialize` with: the client's when supported,
 * else the newest the gateway speaks (2025-11-25 lifecycle "Version Negotiation").
 */
export function negotiateLegacyVersion(requested: unknown): string {
  return typeof requested === 'string' && (LEGACY_VERSIONS as readonly string[]).includes(requested)
    ? requested
    : LATEST_LEGACY_VERSION;
}

/** Remove the per-request modern keys from `_meta` before a request goes to a legacy upstream. */
export function stripModernMeta(meta: JsonObject): JsonObject | undefined {
  let out: JsonObject | undefined;
  for (const key of Object.keys(meta)) {
    if (key === META_PROTOCOL_VERSION || key === META_CLIENT_INFO || key === META_CLIENT_CAPABILITIES || key === META_LOG_LEVEL) {
      continue;
    }
    (out ??= {})[key] = meta[key];
  }
  return out;
}
