// What the auth/* conformance client scenarios configure: the scenario names the harness drives
// and, per scenario, the target's `credentials` an operator would write for the suite's mock
// (its client data from MCP_CONFORMANCE_CONTEXT, secrets through environment references as
// config requires). No side effects beyond the env entries it is given.
import type { ConfigInput } from '../../src/config/schema.ts';

export type TargetCredentialsInput = NonNullable<ConfigInput['targets'][string]['credentials']>;
export type Context = Readonly<Record<string, unknown>>;

/** The suite's fixed client id URL for CIMD (its mock AS never fetches it). */
const CIMD_URL = 'https://conformance-test.local/client-metadata.json';
const SECRET_ENV = 'GATEHOUSE_CONFORMANCE_CLIENT_SECRET';
const KEY_ENV = 'GATEHOUSE_CONFORMANCE_PRIVATE_KEY';
/** The env entries credentialsFor may set (for a caller that cleans up). */
export const CREDENTIAL_ENV_NAMES: readonly string[] = [SECRET_ENV, KEY_ENV];

/** The auth/* scenarios the harness drives (both suite lines; 0.1.x names cross-app access differently). */
export const AUTH_SCENARIOS: readonly string[] = [
  'auth/metadata-default', 'auth/metadata-var1', 'auth/metadata-var2', 'auth/metadata-var3',
  'auth/basic-cimd', 'auth/basic-dcr',
  'auth/scope-from-www-authenticate', 'auth/scope-from-scopes-supported', 'auth/scope-omitted-when-undefined',
  'auth/scope-step-up', 'auth/scope-retry-limit',
  'auth/token-endpoint-auth-basic', 'auth/token-endpoint-auth-post', 'auth/token-endpoint-auth-none',
  'auth/pre-registration',
  'auth/2025-03-26-oauth-metadata-backcompat', 'auth/2025-03-26-oauth-endpoint-fallback',
  'auth/resource-mismatch', 'auth/offline-access-scope', 'auth/offline-access-not-supported',
  'auth/authorization-server-migration', 'auth/metadata-issuer-mismatch',
  'auth/iss-supported', 'auth/iss-not-advertised', 'auth/iss-supported-missing', 'auth/iss-wrong-issuer', 'auth/iss-unexpected', 'auth/iss-normalized',
  'auth/client-credentials-basic', 'auth/client-credentials-jwt',
  'auth/enterprise-managed-authorization', 'auth/cross-app-access-complete-flow',
];

function field(context: Context, name: string): string {
  const value = context[name];
  if (typeof value !== 'string' || value === '') throw new Error(`MCP_CONFORMANCE_CONTEXT lacks ${name}`);
  return value;
}

/**
 * The target's `credentials` for a scenario: `client-credentials` for the client credentials
 * scenarios, `user-oauth` (pre-registered client, else CIMD, else DCR) for the authorization
 * code ones, `user-oauth` + `tokenExchange` for cross-app access. Secrets go into `env`.
 */
export function credentialsFor(scenario: string, context: Context, env: NodeJS.ProcessEnv): TargetCredentialsInput {
  switch (scenario) {
    case 'auth/client-credentials-basic':
      env[SECRET_ENV] = field(context, 'client_secret');
      return { mode: 'client-credentials', client: { id: field(context, 'client_id'), secret: { env: SECRET_ENV } } };
    case 'auth/client-credentials-jwt': {
      env[KEY_ENV] = field(context, 'private_key_pem');
      const alg = typeof context['signing_algorithm'] === 'string' ? context['signing_algorithm'] : 'ES256';
      return { mode: 'client-credentials', client: { id: field(context, 'client_id'), privateKey: { env: KEY_ENV }, signingAlgorithm: alg as 'ES256', authMethod: 'private_key_jwt' } };
    }
    case 'auth/pre-registration':
      env[SECRET_ENV] = field(context, 'client_secret');
      return { mode: 'user-oauth', client: { id: field(context, 'client_id'), secret: { env: SECRET_ENV } } };
    case 'auth/enterprise-managed-authorization':
    case 'auth/cross-app-access-complete-flow':
      env[SECRET_ENV] = field(context, 'client_secret');
      return {
        mode: 'user-oauth',
        client: { id: field(context, 'client_id'), secret: { env: SECRET_ENV } },
        tokenExchange: { subjectToken: 'idp-id-token', idp: { tokenEndpoint: field(context, 'idp_token_endpoint'), clientId: field(context, 'idp_client_id') } },
      };
    default:
      return { mode: 'user-oauth', clientMetadataUrl: CIMD_URL };
  }
}

/**
 * The target's era. 2026-07-28 runs use `auto`, not `modern`: the era probe (handshake.ts)
 * takes any failure, an authorization error included, for a legacy server, so a pinned modern
 * era would fail before the first token; `auto` falls through to initialize, which meets the 401.
 */
export function targetEra(protocolVersion: string | undefined): 'auto' | 'legacy' {
  return protocolVersion === '2026-07-28' ? 'auto' : 'legacy';
}
