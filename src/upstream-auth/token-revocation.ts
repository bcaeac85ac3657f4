/**
 * RFC 7009 revocation when a user disconnects the gateway from an upstream: best effort, at
 * the endpoint the authorization server's metadata names (none named: nothing to do). Revoking
 * the refresh token revokes the grant, and with it its access tokens (RFC 7009 §2.1).
 */
import { selectClientAuthMethod, type OAuthClientInformationMixed } from '@modelcontextprotocol/client';
import type { FlowTarget, PreRegisteredClient } from './token-grants.ts';
import type { UpstreamTokens } from './vault-oauth-provider.ts';

/** Revoke `tokens`; resolves with the endpoint's HTTP status, undefined when there is no endpoint or client. */
export async function revokeTokens(target: FlowTarget, preRegistered: PreRegisteredClient | undefined, tokens: UpstreamTokens): Promise<number | undefined> {
  const discovery = await target.records.discoveryState();
  const metadata = discovery?.authorizationServerMetadata;
  // The SDK's OpenID metadata type lacks the RFC 7009 fields; either document may carry them.
  const extra = (metadata ?? {}) as { revocation_endpoint?: unknown; revocation_endpoint_auth_methods_supported?: unknown };
  const endpoint = typeof extra.revocation_endpoint === 'string' ? extra.revocation_endpoint : undefined;
  const client: OAuthClientInformationMixed | undefined = preRegistered?.info ?? (await target.records.registeredClient());
  if (endpoint === undefined || client === undefined) return undefined;
  const params = new URLSearchParams({
    token: tokens.refresh_token ?? tokens.access_token,
    token_type_hint: tokens.refresh_token === undefined ? 'access_token' : 'refresh_token',
  });
  const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded' });
  if (preRegistered?.addClientAuthentication !== undefined) {
    await preRegistered.addClientAuthentication(headers, params, endpoint, metadata);
  } else {
    const methods = Array.isArray(extra.revocation_endpoint_auth_methods_supported)
      ? (extra.revocation_endpoint_auth_methods_supported as string[])
      : (metadata?.token_endpoint_auth_methods_supported ?? []);
    const method = selectClientAuthMethod(client, methods);
    // As the SDK authenticates at the token endpoint of the same server.
    if (method === 'client_secret_basic' && client.client_secret !== undefined) {
      headers.set('authorization', `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`);
    } else {
      params.set('client_id', client.client_id);
      if (method === 'client_secret_post' && client.client_secret !== undefined) params.set('client_secret', client.client_secret);
    }
  }
  const res = await target.fetch(endpoint, { method: 'POST', headers, body: params });
  await res.arrayBuffer().catch(() => undefined);
  return res.status;
}
