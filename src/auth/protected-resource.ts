/**
 * The gateway as an OAuth protected resource (RFC 9728): the resource URL of each MCP endpoint,
 * its metadata document, and the `WWW-Authenticate` challenges (RFC 6750 §3) that point agents
 * at that document (MCP 2025-11-25 authorization, "Protected Resource Metadata Discovery").
 */

/** RFC 9728 §3: the metadata lives at the well-known prefix inserted before the resource's path. */
export const PRM_PREFIX = '/.well-known/oauth-protected-resource';

/** Where an endpoint lives: the public base URL (no trailing slash) and the listener path. */
export interface ResourceLocation {
  publicBase: string;
  path: string;
}

/** The resource URL of `/mcp` or `/mcp/<toolset>`: the audience its tokens must carry. */
export function resourceUrl(at: ResourceLocation, toolset: string | undefined): string {
  return `${at.publicBase}${at.path}${toolset === undefined ? '' : `/${toolset}`}`;
}

/** The metadata document URL for that resource. */
export function metadataUrl(at: ResourceLocation, toolset: string | undefined): string {
  return `${at.publicBase}${PRM_PREFIX}${at.path}${toolset === undefined ? '' : `/${toolset}`}`;
}

/** The request path (under PRM_PREFIX) naming an endpoint: `{ toolset }`, or undefined when it names none. */
export function metadataTarget(requestPath: string, listenerPath: string): { toolset: string | undefined } | undefined {
  if (!requestPath.startsWith(PRM_PREFIX)) return undefined;
  const rest = requestPath.slice(PRM_PREFIX.length);
  if (rest === listenerPath) return { toolset: undefined };
  if (rest.startsWith(`${listenerPath}/`)) {
    const toolset = rest.slice(listenerPath.length + 1);
    return toolset === '' || toolset.includes('/') ? undefined : { toolset };
  }
  return undefined;
}

/** RFC 9728 §2: the metadata document. */
export function protectedResourceMetadata(at: ResourceLocation, toolset: string | undefined, issuer: string, scopes: readonly string[]): Record<string, unknown> {
  return {
    resource: resourceUrl(at, toolset),
    authorization_servers: [issuer],
    scopes_supported: [...scopes],
    // RFC 6750 §2.1 only: query and form tokens are refused (TOKEN_IN_QUERY).
    bearer_methods_supported: ['header'],
    resource_name: toolset === undefined ? 'Gatehouse MCP gateway' : `Gatehouse toolset ${toolset}`,
  };
}

/** Quoted-string per RFC 9110 §5.6.4 (the values here never hold quotes, but be safe). */
function quoted(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

export interface Challenge {
  metadataUrl: string;
  /** RFC 6750 §3.1 error code; absent when no credential was sent (§3: then no error). */
  error?: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | undefined;
  /** Scopes to ask for (MCP "Scope Selection Strategy"). */
  scope?: string | undefined;
}

/** The `WWW-Authenticate` value of a 401 or 403. */
export function bearerChallenge(challenge: Challenge): string {
  const params: string[] = [];
  if (challenge.error !== undefined) params.push(`error=${quoted(challenge.error)}`);
  if (challenge.scope !== undefined && challenge.scope !== '') params.push(`scope=${quoted(challenge.scope)}`);
  params.push(`resource_metadata=${quoted(challenge.metadataUrl)}`);
  return `Bearer ${params.join(', ')}`;
}
