// One auth/* conformance client scenario through a real Gatehouse gateway: the suite's mock MCP
// server (behind its mock authorization server) is the gateway's one Streamable HTTP target, so
// the client under test is the gateway's upstream side as deployed (registry, upstream auth
// runtime, encrypted SQLite vault, connect page, URL elicitation), not a component of it.
//
// The gateway runs `auth.mode: none` on loopback (the connect page then skips its identity
// step but keeps the CSRF token, the browser cookie and the callback's browser check), a SQLite
// store in a temp dir, a fresh vault key in an env var, and loopback authorization servers
// allowed (the suite's mocks are http://localhost). The harness then plays the parts around it:
//
// - the operator: `POST <admin>/upstream-credentials/connect` for the first authorization of a
//   `user-oauth` target (nobody has authorized it, so it lists nothing and no call reaches it);
// - the user's browser (a cookie jar): the connect page, its consent form posted with the CSRF
//   token and the cookie, the gateway's 303 to the mock's authorize endpoint, the mock's
//   redirect to the gateway's callback with the code;
// - the agent: a 2025-11-25 session (the SDK client) that lists tools and calls `test-tool`,
//   opening the URL of a -32042 (step-up) in the same browser and retrying, at most
//   MAX_CONSENTS consents in all (the spec's retry limit);
// - for cross-app access (`tokenExchange.subjectToken: idp-id-token`), the gateway's IdP login:
//   the suite's ID token goes into the vault where that login keeps a user's ID token, and the
//   operator's link then needs no consent.
//
// `client-credentials` targets need no user: the agent just lists and calls.
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/client';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, StreamableHTTPClientTransport, UrlElicitationRequiredError } from '@modelcontextprotocol/client';
import { decodeJwt } from 'jose';
import { systemClock } from '../../src/clock.ts';
import { vaultSchema } from '../../src/config/credentials-schema.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import { IdentityTokens } from '../../src/upstream-auth/identity-tokens.ts';
import { createCredentialVault } from '../../src/vault/credential-vault.ts';
import { createVaultCipher, generateVaultKey } from '../../src/vault/vault-cipher.ts';
import { HeadlessBrowser, type BrowserResponse } from '../fixtures/headless-browser.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { CREDENTIAL_ENV_NAMES, credentialsFor, targetEra, type Context } from './auth-scenario-config.ts';

const TARGET = 'conformance';
/** The one user of `auth.mode: none` (src/auth/principal.ts), whose tokens the vault holds. */
const USER = { tenant: 'default', user: 'anonymous' };
const AGENT_NAME = 'gatehouse-conformance-agent';
/** Consents the user gives at most, operator link included (the spec's "no more than a few times"). */
export const MAX_CONSENTS = 3;
/** Longest wait for the target's discovery after a consent, or for a client-credentials target's start. */
const DISCOVERY_TIMEOUT_MS = 10_000;
/** Longest a gateway may take to stop before the harness gives up on it. */
const STOP_TIMEOUT_MS = 5_000;
const VAULT_KEY_ENV = 'GATEHOUSE_CONFORMANCE_VAULT_KEY';

export interface GatewayRunOptions {
  /** The suite's MCP_CONFORMANCE_PROTOCOL_VERSION. */
  protocolVersion?: string | undefined;
  /** Give up after this long (under the suite's 30 s client timeout). */
  deadlineMs: number;
  /** Aborted (SIGTERM from the suite): stop now, cleaning up as on any failure. */
  signal?: AbortSignal;
  /** What the harness did, for the failure report. */
  log: string[];
}

export interface GatewayRunResult {
  consents: number;
  tools: string[];
}

/** A failed run, with the gateway's log lines for the suite's stderr.txt. */
export class GatewayRunFailure extends Error {
  constructor(message: string, readonly gatewayLog: ReadonlyArray<Record<string, unknown>>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayRunFailure';
  }
}

/** The page's visible text, short: what a failure message can quote. */
function pageText(page: BrowserResponse): string {
  return page.body.replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
}

/**
 * The user's side of one connect URL (an operator link or an elicitation), in `browser`: the
 * consent form, approve (CSRF token and cookie), the gateway's 303 to the authorization server,
 * the mock's immediate redirect to the gateway's callback, and the callback's answer.
 */
async function consentInBrowser(browser: HeadlessBrowser, connectUrl: string, gatewayBase: string, log: string[]): Promise<void> {
  const atGateway = (url: string): boolean => url.startsWith(`${gatewayBase}/`);
  const consent = await browser.navigate(connectUrl);
  if (consent.status !== 200 || !/<form\b/.test(consent.body)) throw new Error(`the connect page answered ${consent.status}: ${pageText(consent)}`);
  const toUpstream = await browser.submitForm(consent, /\/upstream-auth\/connect\//, { decision: 'approve' }, (location) => !atGateway(location));
  if (toUpstream.status !== 303 || toUpstream.location === undefined) throw new Error(`approving answered ${toUpstream.status}: ${pageText(toUpstream)}`);
  const authorize = new URL(toUpstream.location);
  log.push(`harness: the gateway sent the browser to ${authorize.origin}${authorize.pathname} (scope ${authorize.searchParams.get('scope') ?? 'none'}, redirect_uri ${authorize.searchParams.get('redirect_uri') ?? 'none'})`);
  const redirect = await browser.request(toUpstream.location);
  if (redirect.location === undefined || !redirect.location.startsWith(`${gatewayBase}/upstream-auth/callback?`)) {
    throw new Error(`the authorization endpoint answered ${redirect.status}${redirect.location === undefined ? '' : ` with a redirect to ${new URL(redirect.location).pathname}`}, not to the gateway's callback`);
  }
  const done = await browser.request(redirect.location);
  if (done.status !== 200) throw new Error(`the gateway's callback answered ${done.status}: ${pageText(done)}`);
  log.push(`harness: callback ${done.status}: ${pageText(done)}`);
}

/**
 * Wait (bounded) until the gateway lists the target's tools. A discovery that failed fails the
 * wait at once, with the gateway's reason: nothing would list them later.
 */
async function discovered(gw: TestGateway): Promise<void> {
  const until = Date.now() + DISCOVERY_TIMEOUT_MS;
  for (;;) {
    const health = gw.gateway.targets().find((t) => t.name === TARGET);
    if (health !== undefined && health.tools > 0) return;
    if (health?.state === 'failed') throw new Error(`target failed: ${health.lastError ?? 'unknown error'}`);
    if (health?.lastError?.startsWith('discovery failed') === true) throw new Error(`the target's ${health.lastError}`);
    const failure = gw.logLines.find((line) => typeof line['msg'] === 'string' && /discovery .*failed/.test(line['msg']));
    if (failure !== undefined) throw new Error(`the gateway logged: ${String(failure['msg'])}`);
    if (Date.now() > until) throw new Error(`the target listed no tools within ${DISCOVERY_TIMEOUT_MS} ms: ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The operator's first-authorization link for the anonymous user. */
async function operatorLink(gw: TestGateway): Promise<string> {
  const query = new URLSearchParams({ ...USER, target: TARGET, agent: AGENT_NAME });
  const res = await fetch(`${gw.adminBase}/upstream-credentials/connect?${query}`, { method: 'POST' });
  const body = (await res.json().catch(() => ({}))) as { url?: unknown };
  if (res.status !== 200 || typeof body.url !== 'string') throw new Error(`POST /upstream-credentials/connect answered ${res.status}: ${JSON.stringify(body)}`);
  return body.url;
}

/** The gateway's vault section: a fresh key (in an env var, as config requires), loopback authorization servers allowed. */
function vaultSection(): NonNullable<ConfigInput['vault']> {
  process.env[VAULT_KEY_ENV] = generateVaultKey();
  return {
    keys: [{ id: 'conformance', secret: { env: VAULT_KEY_ENV } }],
    allowLoopbackAuthorizationServers: true,
    // No refresh pass during a scenario: the suite's mocks count token requests.
    refresh: { intervalMs: 3_600_000 },
  };
}

/**
 * Cross-app access: put the suite's ID token where the gateway's IdP login keeps a user's ID
 * token (the vault, identity-tokens.ts), before the gateway starts on the same file. Under
 * `auth.mode: none` there is no IdP login; the harness plays its part for the anonymous user.
 */
async function keepIdentityToken(dbFile: string, vault: NonNullable<ConfigInput['vault']>, idToken: string): Promise<void> {
  const store = SqliteStore.open({ file: dbFile });
  try {
    await store.migrate();
    const credentials = createCredentialVault(store.credentialTable(), createVaultCipher(vaultSchema.parse(vault), path.dirname(dbFile)), systemClock);
    const exp = decodeJwt(idToken).exp;
    if (typeof exp !== 'number') throw new Error('the suite\'s idp_id_token has no exp');
    await new IdentityTokens(credentials, systemClock).keep({ ...USER, idToken, expiresAt: exp * 1000 });
  } finally {
    await store.close();
  }
}

/** The authorization server the suite's mock names in its protected resource metadata. */
async function registeredIssuer(url: string): Promise<string> {
  const metadata = await discoverOAuthProtectedResourceMetadata(url);
  const issuer = metadata.authorization_servers?.[0];
  if (issuer === undefined) throw new Error('the mock names no authorization server');
  return issuer;
}

/** Start the gateway: one streamable-http target at `url` with the scenario's credentials. */
async function startScenarioGateway(scenario: string, url: string, context: Context, dir: string, protocolVersion: string | undefined): Promise<TestGateway> {
  const dbFile = path.join(dir, 'gatehouse.db');
  const vault = vaultSection();
  let credentials = credentialsFor(scenario, context, process.env);
  if (credentials.mode !== 'none' && credentials.mode !== 'static' && credentials.client !== undefined) {
    // Config binds a pre-registered client to the authorization server it was registered at;
    // the operator knows it, the harness learns it from the mock's own metadata (RFC 9728).
    credentials = { ...credentials, authorizationServer: await registeredIssuer(url) };
  }
  if (credentials.mode === 'user-oauth' && credentials.tokenExchange?.subjectToken === 'idp-id-token') {
    const idToken = context['idp_id_token'];
    if (typeof idToken !== 'string') throw new Error('MCP_CONFORMANCE_CONTEXT lacks idp_id_token');
    await keepIdentityToken(dbFile, vault, idToken);
  }
  return startGateway({
    // Loopback only: one anonymous user, so the connect page skips its identity step (nothing else).
    auth: { mode: 'none' },
    storage: { driver: 'sqlite', path: dbFile },
    targets: { [TARGET]: { transport: 'streamable-http', url, era: targetEra(protocolVersion), credentials } },
    aggregation: { prefix: 'never' },
    vault,
  });
}

/** Stop the gateway, bounded: a stuck stop must not outlive the suite's timeout. */
async function stopBounded(gw: TestGateway): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([gw.stop(), new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
}

/** What the harness holds while a run is under way: stopped in any case when it settles. */
interface Running {
  gw?: TestGateway;
  agent?: Client;
  /** Set once the run has settled: a gateway that finishes starting after that is stopped at once. */
  settled: boolean;
}

/** The scenario itself, on a started gateway: the operator, the user's browser and the agent. */
async function drive(gw: TestGateway, running: Running, log: string[]): Promise<GatewayRunResult> {
  const credentials = gw.gateway.snapshot.config.targets[TARGET]!.credentials;
  const browser = new HeadlessBrowser();
  let consents = 0;
  const consent = async (connectUrl: string, why: string): Promise<void> => {
    if (consents >= MAX_CONSENTS) throw new Error(`${why}, but the user already consented ${consents} times (the retry limit)`);
    consents++;
    log.push(`harness: consent ${consents} (${why})`);
    await consentInBrowser(browser, connectUrl, gw.base, log);
  };

  if (credentials.mode === 'user-oauth' && credentials.tokenExchange !== undefined) {
    // The first user of a token-exchange target: the operator's link completes at once (there
    // is no consent to give), which opens the user's connection and so runs the exchange.
    log.push(`harness: operator link ${await operatorLink(gw)} (token exchange: no consent)`);
  } else if (credentials.mode === 'user-oauth') {
    // The first user of a target: it lists nothing until someone authorizes, so an operator starts it.
    await consent(await operatorLink(gw), 'operator link for the first authorization');
  }
  await discovered(gw);

  const agent = new Client({ name: AGENT_NAME, version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
  running.agent = agent;
  await agent.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
  const tools = (await agent.listTools()).tools.map((t) => t.name);
  if (!tools.includes('test-tool')) throw new Error(`the gateway lists no test-tool: ${tools.join(', ') || 'nothing'}`);
  for (;;) {
    try {
      const result = await agent.callTool({ name: 'test-tool', arguments: {} });
      if (result.isError === true) throw new Error(`test-tool answered an error: ${JSON.stringify(result.content)}`);
      return { consents, tools };
    } catch (err) {
      // -32042: the user must authorize (again, or step up) at the upstream; the URL is the gateway's connect page.
      if (!(err instanceof UrlElicitationRequiredError) || err.elicitations.length !== 1) throw err;
      const elicitation = err.elicitations[0]!;
      if (elicitation.mode !== 'url' || typeof elicitation.url !== 'string') throw err;
      await consent(elicitation.url, `-32042 on tools/call: ${err.message}`);
    }
  }
}

/**
 * Run `scenario` against the suite's mock at `url` through a gateway. What it starts (the
 * gateway, the agent's session, the temp dir, the env entries) is gone when it settles,
 * whether it succeeded, failed, hit the deadline or was aborted. Rejects with GatewayRunFailure.
 */
export async function runThroughGateway(scenario: string, url: string, context: Context, options: GatewayRunOptions): Promise<GatewayRunResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-conformance-auth-'));
  // The last resort: the process exits (a signal's fallback exit, a throw in a handler) before `finally`.
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.on('exit', removeDir);
  const running: Running = { settled: false };
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    const work = (async (): Promise<GatewayRunResult> => {
      const gw = await startScenarioGateway(scenario, url, context, dir, options.protocolVersion);
      if (running.settled) {
        await stopBounded(gw);
        throw new Error('the run ended while the gateway was starting');
      }
      running.gw = gw;
      return drive(gw, running, options.log);
    })();
    // The loser of the race below still settles later; it must not surface as an unhandled rejection.
    work.catch(() => undefined);
    const ends = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not finish within ${options.deadlineMs} ms`)), options.deadlineMs);
      onAbort = () => reject(new Error('aborted (the suite stopped the harness)'));
      if (options.signal?.aborted === true) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    return await Promise.race([work, ends]);
  } catch (err) {
    throw new GatewayRunFailure(err instanceof Error ? err.message : String(err), running.gw?.logLines ?? [], { cause: err });
  } finally {
    running.settled = true;
    clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
    await running.agent?.close().catch(() => undefined);
    if (running.gw !== undefined) await stopBounded(running.gw).catch(() => undefined);
    for (const name of [VAULT_KEY_ENV, ...CREDENTIAL_ENV_NAMES]) delete process.env[name];
    removeDir();
    process.off('exit', removeDir);
  }
}
