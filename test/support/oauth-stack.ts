/**
 * A whole OAuth deployment on 127.0.0.1 for end-to-end tests: the stand-in enterprise IdP (a
 * real oidc-provider), a real fixture MCP server over Streamable HTTP behind a recording proxy
 * (what the gateway sent upstream), and the gateway with `auth.mode: oauth`, `auth.idp`
 * pointing at the IdP (groups → roles), the caller's policy, and the authorization server wired
 * as src/main.ts wires it. Everything stops in `stop()`, in reverse order, by handle or PID.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ConfigInput } from '../../src/config/schema.ts';
import { idpRedirectUri } from '../../src/auth/idp-login.ts';
import { startHttpFixture, type FixturePart, type HttpFixture } from '../fixtures/fixture-process.ts';
import { startTestIdp, type TestIdp, type TestIdpUser } from '../fixtures/test-idp.ts';
import { composeAuthorizationServer } from '../../src/auth/compose-authorization-server.ts';
import { startGateway, type TestGateway } from './gateway-harness.ts';
import { startRecordingProxy, type RecordingProxy } from './recording-proxy.ts';

type AuthInput = NonNullable<ConfigInput['auth']>;

export interface OAuthStackOptions {
  readonly users: readonly TestIdpUser[];
  /** IdP group → gateway roles. */
  readonly groupRoles: Record<string, string[]>;
  readonly policy: NonNullable<ConfigInput['policy']>;
  /** The name of the one upstream target (the fixture). */
  readonly target?: string;
  readonly fixturePart?: FixturePart;
  /** Extra `auth` settings merged over the stack's (not `mode` or `idp`). */
  readonly auth?: Omit<Partial<AuthInput>, 'mode' | 'idp'>;
}

export interface OAuthStack {
  readonly idp: TestIdp;
  readonly fixture: HttpFixture;
  /** Every request the gateway sent to the fixture. */
  readonly upstream: RecordingProxy;
  readonly gw: TestGateway;
  /** `<publicBase>/oauth`. */
  readonly issuer: string;
  /** The gateway's SQLite file (audit trail, OAuth state). */
  readonly dbFile: string;
  stop(): Promise<void>;
}

export async function startOAuthStack(options: OAuthStackOptions): Promise<OAuthStack> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gh-oauth-e2e-'));
  const secretEnv = `GH_E2E_IDP_${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
    delete process.env[secretEnv];
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const idp = await startTestIdp({ users: options.users });
    stops.push(() => idp.stop());
    process.env[secretEnv] = idp.clientSecret;
    const fixture = await startHttpFixture({ mode: 'http', part: options.fixturePart ?? 'a', name: 'e2e-upstream' });
    stops.push(() => fixture.stop());
    const upstream = await startRecordingProxy(fixture.url);
    stops.push(() => upstream.stop());
    const dbFile = path.join(dir, 'gatehouse.db');
    const gw = await startGateway(
      {
        storage: { driver: 'sqlite', path: dbFile },
        targets: { [options.target ?? 'up']: { transport: 'streamable-http', url: upstream.url, era: 'legacy' } },
        auth: {
          ...options.auth,
          mode: 'oauth',
          idp: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: { env: secretEnv }, groupRoles: options.groupRoles },
        },
        policy: options.policy,
      },
      { authorizationServer: composeAuthorizationServer(dir) },
    );
    stops.push(() => gw.stop());
    const issuer = `${gw.gateway.publicBase}/oauth`;
    // The gateway's IdP callback exists only once its port is bound.
    await idp.allowRedirectUri(idpRedirectUri(issuer));
    return { idp, fixture, upstream, gw, issuer, dbFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
