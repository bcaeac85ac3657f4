/**
 * Pre-registered OAuth clients (`auth.clients`) as oidc-provider client metadata, with their
 * secrets and key sets resolved once at start. Secrets come from `secretRef` (an environment
 * variable, or a file relative to the config directory) and never reach a log or an error body.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AuthConfig, SecretRef } from '../config/auth-schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { connectClientTenant } from './connect-identity.ts';

/** Who a client is when it acts as itself (client credentials): its tenant and roles. */
export interface ClientIdentity {
  readonly tenant: string;
  readonly roles: readonly string[];
  /** Scopes the client may request; empty means every supported scope. */
  readonly scopes: readonly string[];
}

/**
 * The OAuth error description when a client and a user belong to different tenants. Fixed
 * text: it names neither tenant, and the authorization server's log recognizes it.
 */
export const TENANT_MISMATCH = 'the user belongs to another tenant than this client';

/**
 * The tenant a client serves: a pre-registered client's `tenant`, else (dynamically registered
 * and Client ID Metadata Document clients) `auth.registration.tenant`. A client gets tokens
 * only for users (and ID-JAG issuers) of that tenant. The strict reading, taken on purpose: a
 * client anyone can register must not become a door into every tenant; an operator who wants
 * self-registered clients for the users of a tenant sets `auth.registration.tenant` to it.
 */
export function clientTenant(auth: Pick<AuthConfig, 'clients' | 'registration'>, clientId: string): string {
  if (Object.hasOwn(auth.clients, clientId)) return auth.clients[clientId]!.tenant;
  // The upstream connect page's identity client of a tenant serves that tenant's users.
  return connectClientTenant(clientId) ?? auth.registration.tenant;
}

function configError(message: string): GatehouseError {
  return new GatehouseError('CONFIG_INVALID', message);
}

/** Read a secret; the message of a failure names the reference, never a value. */
export function resolveSecret(ref: SecretRef, configDir: string, what: string): string {
  let value: string | undefined;
  if ('env' in ref) {
    value = process.env[ref.env];
    if (value === undefined || value === '') throw configError(`${what}: the environment variable ${ref.env} is not set`);
  } else {
    const file = path.resolve(configDir, ref.file);
    try {
      value = readFileSync(file, 'utf8').trim();
    } catch {
      throw configError(`${what}: the secret file ${file} cannot be read`);
    }
    if (value === '') throw configError(`${what}: the secret file ${file} is empty`);
  }
  return value;
}

function resolveJwks(jwks: NonNullable<AuthConfig['clients'][string]['jwks']>, configDir: string, what: string): { keys: Record<string, unknown>[] } {
  if ('keys' in jwks) return { keys: jwks.keys };
  const file = path.resolve(configDir, jwks.file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw configError(`${what}: the key set file ${file} cannot be read as JSON`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw configError(`${what}: the key set file ${file} holds no keys`);
  // Only public members: a private key pasted by mistake must not be served or kept.
  return { keys: keys.map((k) => publicMembers(k as Record<string, unknown>)) };
}

function publicMembers(jwk: Record<string, unknown>): Record<string, unknown> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...rest } = jwk;
  return rest;
}

/** oidc-provider `clients` metadata and each client's identity, from `auth.clients`. */
export function staticClients(auth: AuthConfig, configDir: string): { metadata: Record<string, unknown>[]; identities: Map<string, ClientIdentity> } {
  const metadata: Record<string, unknown>[] = [];
  const identities = new Map<string, ClientIdentity>();
  for (const [clientId, client] of Object.entries(auth.clients)) {
    const what = `auth.clients.${clientId}`;
    const method = client.tokenEndpointAuthMethod;
    const entry: Record<string, unknown> = {
      client_id: clientId,
      grant_types: client.grantTypes,
      response_types: client.grantTypes.includes('authorization_code') ? ['code'] : [],
      redirect_uris: client.redirectUris,
      token_endpoint_auth_method: method,
    };
    if (client.name !== undefined) entry['client_name'] = client.name;
    if (client.scopes.length > 0) entry['scope'] = client.scopes.join(' ');
    if (method === 'client_secret_basic' || method === 'client_secret_post') {
      if (client.secret === undefined) throw configError(`${what}: ${method} needs a secret (secretRef)`);
      entry['client_secret'] = resolveSecret(client.secret, configDir, what);
    } else if (method === 'private_key_jwt') {
      if (client.jwks === undefined) throw configError(`${what}: private_key_jwt needs jwks`);
      entry['jwks'] = resolveJwks(client.jwks, configDir, what);
    }
    if (client.grantTypes.includes('client_credentials') && method === 'none') {
      throw configError(`${what}: client_credentials needs a confidential client (client_secret_basic, client_secret_post or private_key_jwt)`);
    }
    metadata.push(entry);
    identities.set(clientId, { tenant: client.tenant, roles: client.roles, scopes: client.scopes });
  }
  return { metadata, identities };
}
