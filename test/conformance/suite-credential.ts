/**
 * The conformance suite's credential at a gateway under `auth.mode: oauth`: a pre-registered
 * confidential client (`client_credentials`, `client_secret_basic`, its secret in an
 * environment variable as an operator would configure it) whose access tokens the suite's
 * requests carry, through the credential proxy. Tokens are real ones from the gateway's own
 * authorization server, renewed a minute before they expire.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ConfigInput } from '../../src/config/schema.ts';

export const SUITE_CLIENT_ID = 'conformance-suite';
const SCOPE = 'mcp mcp:tools mcp:resources mcp:prompts';
const RENEW_BEFORE_MS = 60_000;

export interface SuiteClient {
  /** The `auth.clients` entry to configure. */
  readonly clients: NonNullable<NonNullable<ConfigInput['auth']>['clients']>;
  /** Unsets the secret's environment variable. */
  dispose(): void;
}

/** A fresh secret in a fresh environment variable; the client holds the `admin` role (every grant). */
export function suiteClient(): SuiteClient {
  const secret = randomBytes(24).toString('base64url');
  const env = `GH_CONFORMANCE_SECRET_${createHash('sha256').update(secret).digest('hex').slice(0, 8)}`;
  process.env[env] = secret;
  return {
    clients: {
      [SUITE_CLIENT_ID]: {
        name: 'MCP conformance suite',
        grantTypes: ['client_credentials'],
        tokenEndpointAuthMethod: 'client_secret_basic',
        secret: { env },
        roles: ['admin'],
      },
    },
    dispose: () => {
      delete process.env[env];
    },
  };
}

/**
 * Client-credentials access tokens for `resource` from the AS at `issuer`, cached until a
 * minute before expiry. One request at a time renews; concurrent callers share it.
 */
export function clientCredentialsTokens(issuer: string, resource: string, clients: SuiteClient['clients']): () => Promise<string> {
  const client = clients[SUITE_CLIENT_ID];
  const env = client?.secret !== undefined && 'env' in client.secret ? client.secret.env : undefined;
  const secret = env === undefined ? undefined : process.env[env];
  if (secret === undefined) throw new Error('the suite client has no secret in its environment variable');
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(SUITE_CLIENT_ID)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  let current: { token: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const fetchToken = async (): Promise<string> => {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: SCOPE }),
    });
    const body = (await res.json()) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
    if (res.status !== 200 || typeof body.access_token !== 'string') throw new Error(`client_credentials token refused: ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
    current = { token: body.access_token, renewAt: Date.now() + (body.expires_in ?? 0) * 1000 - RENEW_BEFORE_MS };
    return body.access_token;
  };
  return () => {
    if (current !== undefined && Date.now() < current.renewAt) return Promise.resolve(current.token);
    pending ??= fetchToken().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}
