// The command the official conformance suite runs for its auth/* client scenarios: the
// gateway's upstream side (an UpstreamConnection over createTransport, with the credential of
// the upstream authorizer) is the client under test, against the suite's mock MCP server and
// authorization server. For authorization code scenarios this process also plays the user: it
// opens the authorization URL the authorizer hands out (the suite's AS consents at once and
// redirects with a code) and gives the redirect to completeUserAuthorization, as the
// gateway's connect page callback would. Then it lists tools and calls `test-tool`.
//
// The vault is the in-memory one of the unit tests (test/support/memory-vault.ts): the
// SQLite vault is not ready yet, and nothing here outlives the process anyway.
//
//   MCP_CONFORMANCE_SCENARIO=auth/metadata-default node --import tsx test/conformance/auth-client-harness.ts http://localhost:PORT/mcp
//
// Exit 0 on success; 1 on failure (the authorizer's log on stderr, which the suite saves).
import { pathToFileURL } from 'node:url';
import { systemClock } from '../../src/clock.ts';
import { configSchema, type ConfigInput } from '../../src/config/schema.ts';
import { GatehouseError } from '../../src/protocol/errors.ts';
import type { JsonObject, JsonRpcResponse } from '../../src/protocol/jsonrpc.ts';
import { createUpstreamAuthorizer } from '../../src/upstream-auth/upstream-authorizer.ts';
import type { AuthorizationRequiredData, UserRef } from '../../src/upstream-auth/upstream-credential.ts';
import { UpstreamConnection } from '../../src/upstream/connection.ts';
import { createTransport } from '../../src/upstream/transports.ts';
import { MemoryVault } from '../support/memory-vault.ts';

/** The suite's fixed client id URL for CIMD (its mock AS never fetches it). */
const CIMD_URL = 'https://conformance-test.local/client-metadata.json';
/** The redirect URI the suite's reference client registers; the mock AS redirects there with the code. */
const REDIRECT_URI = 'http://localhost:3000/callback';
const TARGET = 'conformance';
const USER: UserRef = { tenant: 'default', user: 'conformance-user' };
/** The harness's own retry limit on consents (the spec's "no more than a few times"). */
const MAX_CONSENTS = 3;
const SECRET_ENV = 'GATEHOUSE_CONFORMANCE_CLIENT_SECRET';
const KEY_ENV = 'GATEHOUSE_CONFORMANCE_PRIVATE_KEY';

/** The auth/* scenarios this harness drives (both suite lines; 0.1.x names cross-app access differently). */
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

type Context = Readonly<Record<string, unknown>>;

function field(context: Context, name: string): string {
  const value = context[name];
  if (typeof value !== 'string' || value === '') throw new Error(`MCP_CONFORMANCE_CONTEXT lacks ${name}`);
  return value;
}

/**
 * The target's `credentials` for a scenario: the suite's client data go where an operator
 * would put them (secrets through environment references, as config requires).
 */
function credentialsFor(scenario: string, context: Context, env: NodeJS.ProcessEnv): NonNullable<ConfigInput['targets'][string]['credentials']> {
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

function isAuthorizationRequired(err: unknown): err is GatehouseError {
  return err instanceof GatehouseError && err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED';
}

export interface AuthRunResult {
  /** Authorizations the harness completed as the user. */
  consents: number;
  tools: string[];
  log: string[];
}

/**
 * Run one auth scenario against `url` (the suite's mock MCP endpoint). `protocolVersion` is the
 * suite's MCP_CONFORMANCE_PROTOCOL_VERSION: 2026-07-28 mocks are stateless (no initialize).
 */
export async function runAuthScenario(scenario: string, url: string, context: Context = {}, log: string[] = [], protocolVersion?: string): Promise<AuthRunResult> {
  const credentials = credentialsFor(scenario, context, process.env);
  // 2026-07-28 runs use `auto`, not `modern`: the era probe (handshake.ts) takes any failure,
  // an authorization error included, for a legacy server, so a pinned modern era would fail
  // before the first consent; `auto` falls through to initialize, which surfaces the 401.
  const era = protocolVersion === '2026-07-28' ? 'auto' : 'legacy';
  const config = configSchema.parse({
    targets: { [TARGET]: { transport: 'streamable-http', url, era, credentials } },
    // The suite's servers listen on http://localhost.
    vault: { allowLoopbackAuthorizationServers: true },
  });
  const target = config.targets[TARGET]!;
  const authorizer = createUpstreamAuthorizer(config, {
    vault: new MemoryVault(),
    clock: systemClock,
    configDir: process.cwd(),
    publicUrl: 'http://localhost:3000',
    log: (level, message, fields) => log.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    identityToken: async () => (typeof context['idp_id_token'] === 'string' ? context['idp_id_token'] : undefined),
  });
  const credential = target.credentials.mode === 'user-oauth' ? authorizer.userCredential(TARGET, USER) : authorizer.serviceCredential(TARGET);
  let consents = 0;

  // Play the user: what the connect page and the user's browser do for an elicitation.
  const authorize = async (err: GatehouseError): Promise<void> => {
    if (consents >= MAX_CONSENTS) throw err;
    consents++;
    const data = err.details.data as unknown as AuthorizationRequiredData;
    log.push(`harness: authorization required (${data.reason}${data.scopes ? `, scopes ${data.scopes.join(' ')}` : ''})`);
    const { authorizationUrl } = await authorizer.beginUserAuthorization(TARGET, USER, { redirectUri: REDIRECT_URI, ...(data.scopes ? { scopes: data.scopes } : {}) });
    const res = await fetch(authorizationUrl, { redirect: 'manual' });
    await res.arrayBuffer();
    const location = res.headers.get('location');
    if (location === null) throw new Error(`the authorization endpoint answered ${res.status} without a redirect`);
    await authorizer.completeUserAuthorization(new URL(location));
  };
  const withAuthorization = async <T>(step: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await step();
      } catch (err) {
        if (!isAuthorizationRequired(err)) throw err;
        await authorize(err);
      }
    }
  };

  const connect = async (): Promise<UpstreamConnection> => {
    const connection = new UpstreamConnection({
      target: TARGET,
      transport: createTransport(target, systemClock, process.env, { credential }),
      era,
      connectTimeoutMs: 10_000,
      clock: systemClock,
      onNotification: () => undefined,
      onStateChange: () => undefined,
      onDiagnostic: (line) => log.push(`upstream: ${line}`),
    });
    try {
      await connection.start();
      return connection;
    } catch (err) {
      await connection.close();
      throw err;
    }
  };
  const result = (response: JsonRpcResponse): JsonObject => {
    if ('error' in response) throw new Error(`upstream answered an error: ${response.error.code} ${response.error.message}`);
    return response.result;
  };

  const connection = await withAuthorization(connect);
  try {
    const listed = result(await withAuthorization(() => connection.request({ method: 'tools/list', params: {} })));
    const tools = Array.isArray(listed['tools']) ? (listed['tools'] as Array<{ name?: unknown }>).map((t) => String(t.name)) : [];
    // The client-credentials and cross-app mocks only check that an authorized request arrived.
    if (tools.includes('test-tool')) result(await withAuthorization(() => connection.request({ method: 'tools/call', params: { name: 'test-tool', arguments: {} } })));
    return { consents, tools, log };
  } finally {
    await connection.close();
    authorizer.close();
  }
}

function contextOf(raw: string | undefined): Context {
  if (raw === undefined || raw === '') return {};
  const value: unknown = JSON.parse(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('MCP_CONFORMANCE_CONTEXT is not a JSON object');
  return value as Context;
}

async function main(): Promise<number> {
  const url = process.argv[2];
  const scenario = process.env['MCP_CONFORMANCE_SCENARIO'] ?? '';
  if (url === undefined || !/^https?:\/\//.test(url) || !AUTH_SCENARIOS.includes(scenario)) {
    process.stderr.write(`usage: MCP_CONFORMANCE_SCENARIO=<${AUTH_SCENARIOS.join('|')}> auth-client-harness.ts <url>\n`);
    return 2;
  }
  const log: string[] = [];
  try {
    const run = await runAuthScenario(scenario, url, contextOf(process.env['MCP_CONFORMANCE_CONTEXT']), log, process.env['MCP_CONFORMANCE_PROTOCOL_VERSION']);
    process.stdout.write(`scenario ${scenario}: ok (${run.consents} consents, tools ${run.tools.join(', ')})\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`scenario ${scenario} failed: ${err instanceof GatehouseError ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(err)}\n`);
    for (const line of log) process.stderr.write(`${line}\n`);
    return 1;
  }
}

// A CLI only when run as one: importing this module (tests) starts nothing.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Exit explicitly: a keep-alive socket to the mock must not hold the process open.
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`harness error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
