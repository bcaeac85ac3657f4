/**
 * The gateway's authorization server on a real 127.0.0.1 socket, wired to the stand-in
 * enterprise IdP: the IdP login as its interaction handler and the ID-JAG grant registered.
 * Only the AS is served (no MCP endpoints): these tests are about credentials, not calls.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.ts';
import { configSchema, type ConfigInput, type GatehouseConfig } from '../../src/config/schema.ts';
import { createAuthorizationServer, type AuthorizationServer } from '../../src/auth/authorization-server.ts';
import { createEnterpriseAuth } from '../../src/auth/enterprise-auth.ts';
import { idpRedirectUri } from '../../src/auth/idp-login.ts';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import { startTestIdp, type TestIdp, type TestIdpUser } from '../fixtures/test-idp.ts';

/** The public client whose redirect URI nothing serves: the browser stops there. */
export const AGENT = { id: 'agent', redirectUri: 'http://127.0.0.1:1/cb' } as const;
/** A public client of tenant acme (every other client serves tenant default). */
export const ACME_AGENT = { id: 'acme-agent', redirectUri: 'http://127.0.0.1:1/acme-cb' } as const;
/** Confidential clients allowed the jwt-bearer grant. */
export const JAG_AGENT = { id: 'jag-agent', secret: randomBytes(18).toString('base64url') } as const;
export const OTHER_JAG_AGENT = { id: 'other-jag-agent', secret: randomBytes(18).toString('base64url') } as const;

export interface IdpGateway {
  readonly idp: TestIdp;
  readonly as: AuthorizationServer;
  readonly issuer: string;
  /** The main resource URL (`<base>/mcp`). */
  readonly resource: string;
  /** The authorization server's log lines at warn and above, parsed. */
  readonly logLines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export const GROUP_ROLES = { eng: ['developer'], ops: ['operator'], admins: ['admin'] };

type AuthInput = NonNullable<ConfigInput['auth']>;
type IdpInput = NonNullable<AuthInput['idp']>;
type TrustedIssuerInput = NonNullable<AuthInput['trustedIssuers']>[number];

/** `idp` and trusted-issuer settings merged over the defaults (e.g. `tenantClaim`, `clients`). */
export async function startIdpGateway(users: readonly TestIdpUser[], overrides: { idp?: Partial<IdpInput>; trustedIssuer?: Partial<TrustedIssuerInput> } = {}): Promise<IdpGateway> {
  const idp = await startTestIdp({ users });
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-idp-'));
  const store = SqliteStore.open({ file: path.join(dir, 'gatehouse.db'), synchronous: 'normal', busyTimeoutMs: 5000 });
  await store.migrate();
  let server: http.Server | undefined;
  let as: AuthorizationServer | undefined;
  const logLines: Array<Record<string, unknown>> = [];
  // Environment-variable secret references, as an operator would write them.
  const envKey = (name: string) => `GH_TEST_${name}_${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`;
  const idpSecretEnv = envKey('IDP');
  const jagEnv = envKey('JAG');
  const otherEnv = envKey('OTHER');
  try {
    process.env[idpSecretEnv] = idp.clientSecret;
    process.env[jagEnv] = JAG_AGENT.secret;
    process.env[otherEnv] = OTHER_JAG_AGENT.secret;

    server = http.createServer();
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const config: GatehouseConfig = configSchema.parse({
      listener: { host: '127.0.0.1', port },
      targets: {},
      auth: {
        mode: 'oauth',
        tenants: ['default', 'acme'],
        idp: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: { env: idpSecretEnv }, groupRoles: GROUP_ROLES, ...overrides.idp },
        clients: {
          [AGENT.id]: { name: 'Test Agent', redirectUris: [AGENT.redirectUri] },
          [ACME_AGENT.id]: { name: 'Acme Agent', tenant: 'acme', redirectUris: [ACME_AGENT.redirectUri] },
          [JAG_AGENT.id]: { grantTypes: ['urn:ietf:params:oauth:grant-type:jwt-bearer'], tokenEndpointAuthMethod: 'client_secret_basic', secret: { env: jagEnv }, scopes: ['mcp', 'mcp:tools'] },
          [OTHER_JAG_AGENT.id]: { grantTypes: ['urn:ietf:params:oauth:grant-type:jwt-bearer'], tokenEndpointAuthMethod: 'client_secret_basic', secret: { env: otherEnv } },
        },
        trustedIssuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, groupRoles: GROUP_ROLES, ...overrides.trustedIssuer }],
      },
    });
    // Wired exactly as the composition root wires it.
    const enterprise = createEnterpriseAuth({ auth: config.auth, configDir: dir, clock: systemClock });
    as = await createAuthorizationServer({
      config,
      publicBase: `http://127.0.0.1:${port}`,
      store: store.oauthStore(),
      configDir: dir,
      clock: systemClock,
      logger: pino({ level: 'warn' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) }),
      interactions: enterprise.interactions,
    });
    await enterprise.install(as);
    const ready = as;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      ready.handle(req, res).then(
        (handled) => {
          if (!handled) {
            res.statusCode = 404;
            res.end();
          }
        },
        () => {
          if (!res.headersSent) res.statusCode = 500;
          res.end();
        },
      );
    });
    await idp.allowRedirectUri(idpRedirectUri(ready.issuer));

    const listening = server;
    return {
      idp,
      as: ready,
      issuer: ready.issuer,
      resource: ready.resources[0] ?? '',
      logLines,
      async stop() {
        listening.closeAllConnections();
        await new Promise<void>((resolve) => listening.close(() => resolve()));
        await ready.close();
        await store.close();
        await idp.stop();
        for (const name of [idpSecretEnv, jagEnv, otherEnv]) delete process.env[name];
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    server?.closeAllConnections();
    server?.close();
    await as?.close();
    await store.close();
    await idp.stop();
    for (const name of [idpSecretEnv, jagEnv, otherEnv]) delete process.env[name];
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
