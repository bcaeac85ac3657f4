/**
 * Per-user upstream OAuth end to end on 127.0.0.1: the stand-in enterprise IdP (the gateway's
 * login), the real OAuth-protected MCP server (its own authorization server and users), and the
 * gateway with `auth.mode: oauth` and one `user-oauth` target in front of it, the credential
 * vault on the gateway's SQLite file. Plus what a test needs around it:
 *
 * - `signIn`: an agent's gateway access token for a user, through the SDK v2 client's `auth()`
 *   (dynamic registration at the gateway, PKCE) and the user's headless browser (IdP login,
 *   the gateway's consent page). The browser keeps its gateway SSO session for the connect page.
 * - `GatewayAgent`: raw JSON-RPC over HTTP with that token, a 2025-11-25 session or stateless
 *   2026-07-28 requests, so a test sees every field of an error or an InputRequiredResult.
 * - `connectInBrowser`: the connect page → consent → upstream login → callback, page by page.
 * - `wire`: every HTTP request that reached the upstream's two ports, with its headers, seen
 *   through Node's `http.server.request.start` diagnostics channel (the fixture is untouched).
 * - `storedSecrets`: what the vault holds for the target, decrypted with the test's own key, so
 *   a test knows the upstream tokens and client secret it must never see anywhere else.
 *
 * The gateway runs on a shifted system clock (`clock.offset`): a test ages the upstream tokens
 * the gateway holds without sleeping. Everything stops in `stop()`, in reverse order.
 */
import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { auth } from '@modelcontextprotocol/client';
import { systemClock, type Clock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { vaultSchema } from '../../src/config/credentials-schema.ts';
import { idpRedirectUri } from '../../src/auth/idp-login.ts';
import { composeAuthorizationServer } from '../../src/auth/compose-authorization-server.ts';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import { createVaultCipher, generateVaultKey } from '../../src/vault/vault-cipher.ts';
import { createCredentialVault } from '../../src/vault/credential-vault.ts';
import { HeadlessBrowser, type BrowserResponse } from '../fixtures/headless-browser.ts';
import { loginWithBrowser, startProtectedUpstream, type ProtectedUpstream, type ProtectedUpstreamOptions } from '../fixtures/protected-upstream.ts';
import { startTestIdp, type TestIdp, type TestIdpOptions, type TestIdpUser } from '../fixtures/test-idp.ts';
import { post, startGateway, type TestGateway } from './gateway-harness.ts';
import { InMemoryOAuthProvider } from './oauth-test-client.ts';

type UserOAuthInput = Extract<NonNullable<NonNullable<ConfigInput['targets']>[string]['credentials']>, { mode: 'user-oauth' }>;

/** The system clock, shifted by the test (token age without sleeping). */
export class ShiftedClock implements Clock {
  offset = 0;
  now = (): number => Date.now() + this.offset;
  monotonic = (): number => systemClock.monotonic();
  setTimeout = systemClock.setTimeout;
  clearTimeout = systemClock.clearTimeout;
}

/** One HTTP request that reached the upstream (its MCP server or its authorization server). */
export interface WireRequest {
  readonly server: 'mcp' | 'as';
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface UpstreamOAuthStackOptions {
  readonly users: readonly TestIdpUser[];
  /** The `user-oauth` target's name. */
  readonly target?: string;
  /** Over the target's `{ mode: 'user-oauth' }`. */
  readonly credentials?: Omit<UserOAuthInput, 'mode'>;
  /** Over the protected upstream's options (a pre-registered client's secret, token lifetimes). */
  readonly upstream?: Omit<ProtectedUpstreamOptions, 'serverName'>;
  /** Over the test IdP's options (the gateway's client secret there). */
  readonly idp?: Omit<TestIdpOptions, 'users'>;
}

export interface UpstreamOAuthStack {
  readonly idp: TestIdp;
  readonly upstream: ProtectedUpstream;
  readonly gw: TestGateway;
  readonly clock: ShiftedClock;
  readonly target: string;
  /** The vault key's secret (a canary: it must appear nowhere either). */
  readonly vaultKey: string;
  readonly wire: readonly WireRequest[];
  /** The operator's first-authorization link for a user (`POST /upstream-credentials/connect`). */
  operatorConnect(user: string, agent: string): Promise<Response>;
  /** `GET /upstream-credentials` rows of the target. */
  credentialRows(): Promise<Array<Record<string, unknown>>>;
  /** Every secret string the vault holds for the target (tokens, client secret), decrypted. */
  storedSecrets(): Promise<{ tokens: Map<string, { access: string; refresh: string | undefined }>; clientId: string | undefined; clientSecret: string | undefined }>;
  /** The users' IdP ID tokens the vault keeps for cross-app access, by subject, decrypted. */
  storedIdentityTokens(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

export async function startUpstreamOAuthStack(options: UpstreamOAuthStackOptions): Promise<UpstreamOAuthStack> {
  const target = options.target ?? 'files';
  const dir = await mkdtemp(path.join(tmpdir(), 'gh-upstream-oauth-'));
  const suffix = createHash('sha256').update(dir).digest('hex').slice(0, 10);
  const idpSecretEnv = `GH_UO_IDP_${suffix}`;
  const vaultEnv = `GH_UO_VAULT_${suffix}`;
  const vaultKey = generateVaultKey();
  const wire: WireRequest[] = [];
  const ports = new Map<number, WireRequest['server']>();
  const onRequest = (message: unknown): void => {
    const { request, server } = message as { request: IncomingMessage; server: Server };
    const port = (server.address() as AddressInfo | null)?.port;
    const which = port === undefined ? undefined : ports.get(port);
    if (which !== undefined) wire.push({ server: which, method: request.method ?? '', url: request.url ?? '', headers: { ...request.headers } });
  };
  diagnostics.subscribe('http.server.request.start', onRequest);
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
    diagnostics.unsubscribe('http.server.request.start', onRequest);
    delete process.env[idpSecretEnv];
    delete process.env[vaultEnv];
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const idp = await startTestIdp({ ...options.idp, users: options.users });
    stops.push(() => idp.stop());
    process.env[idpSecretEnv] = idp.clientSecret;
    process.env[vaultEnv] = vaultKey;
    const upstream = await startProtectedUpstream({ ...options.upstream, serverName: 'protected-files' });
    stops.push(() => upstream.close());
    ports.set(Number(new URL(upstream.mcpUrl).port), 'mcp');
    ports.set(Number(new URL(upstream.issuer).port), 'as');

    const clock = new ShiftedClock();
    const dbFile = path.join(dir, 'gatehouse.db');
    // The refresh job stays out of the way (a pass would race a test's own renewals); tests drive renewals by calls.
    const vault = { keys: [{ id: 'k1', secret: { env: vaultEnv } }], allowLoopbackAuthorizationServers: true, refresh: { intervalMs: 3_600_000 } };
    const gw = await startGateway(
      {
        storage: { driver: 'sqlite', path: dbFile },
        targets: { [target]: { transport: 'streamable-http', url: upstream.mcpUrl, credentials: { mode: 'user-oauth', ...withIssuer(options.credentials, upstream.issuer) } } },
        vault,
        auth: {
          mode: 'oauth',
          // Long enough that a test moving the gateway's clock past upstream token expiry keeps its agents signed in.
          accessTokenTtlSeconds: 3600,
          devCredential: { enabled: false },
          idp: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: { env: idpSecretEnv }, groupRoles: { staff: ['staff'] } },
        },
        policy: { roles: { staff: { grants: [{ targets: [target], tools: ['*'] }] } } },
      },
      { authorizationServer: composeAuthorizationServer(dir), clock },
    );
    stops.push(() => gw.stop());
    await idp.allowRedirectUri(idpRedirectUri(`${gw.gateway.publicBase}/oauth`));

    /** A second, read-only look at the vault rows, with the key the test configured. */
    const readVault = async <T>(work: (vault: ReturnType<typeof createCredentialVault>) => Promise<T>): Promise<T> => {
      const store = SqliteStore.open({ file: dbFile });
      try {
        return await work(createCredentialVault(store.credentialTable(), createVaultCipher(vaultSchema.parse(vault), dir), systemClock));
      } finally {
        await store.close();
      }
    };

    return {
      idp,
      upstream,
      gw,
      clock,
      target,
      vaultKey,
      wire,
      operatorConnect: (user, agent) =>
        fetch(`${gw.adminBase}/upstream-credentials/connect?${new URLSearchParams({ tenant: 'default', target, user, agent })}`, { method: 'POST' }),
      async credentialRows() {
        const res = await fetch(`${gw.adminBase}/upstream-credentials?target=${target}`);
        if (res.status !== 200) throw new Error(`GET /upstream-credentials answered ${res.status}`);
        return ((await res.json()) as { credentials: Array<Record<string, unknown>> }).credentials;
      },
      storedSecrets: () =>
        readVault(async (v) => {
          const tokens = new Map<string, { access: string; refresh: string | undefined }>();
          let clientId: string | undefined;
          let clientSecret: string | undefined;
          for (const summary of await v.list({ target })) {
            const row = await v.get<Record<string, unknown>>(summary.key);
            const value = row?.value ?? {};
            if (summary.key.kind === 'oauth-tokens' && typeof value['access_token'] === 'string') {
              tokens.set(summary.key.subject, { access: value['access_token'], refresh: typeof value['refresh_token'] === 'string' ? value['refresh_token'] : undefined });
            }
            if (summary.key.kind === 'oauth-client') {
              clientId = typeof value['client_id'] === 'string' ? value['client_id'] : undefined;
              clientSecret = typeof value['client_secret'] === 'string' ? value['client_secret'] : undefined;
            }
          }
          return { tokens, clientId, clientSecret };
        }),
      storedIdentityTokens: () =>
        readVault(async (v) => {
          const tokens = new Map<string, string>();
          for (const summary of await v.list({ kind: 'identity-token' })) {
            const value = (await v.get<Record<string, unknown>>(summary.key))?.value ?? {};
            if (typeof value['idToken'] === 'string') tokens.set(summary.key.subject, value['idToken']);
          }
          return tokens;
        }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- the agent side: a gateway access token, then raw JSON-RPC ----

/** Nothing listens here: the browser stops at the redirect and the test reads the code. */
const AGENT_REDIRECT = 'http://127.0.0.1:1/agent-callback';
export const LEGACY = '2025-11-25';
export const MODERN = '2026-07-28';

export interface JsonRpcNotification {
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

export interface JsonRpcAnswer {
  readonly id?: unknown;
  readonly result?: Record<string, unknown>;
  readonly error?: { code: number; message: string; data?: Record<string, unknown> };
}

/** The JSON-RPC response in a POST answer, JSON or SSE (the one with `id`). */
async function answerOf(res: Response, id: number): Promise<JsonRpcAnswer> {
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return JSON.parse(text) as JsonRpcAnswer;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const message = JSON.parse(line.slice(5)) as JsonRpcAnswer;
    if (message.id === id) return message;
  }
  throw new Error(`no response with id ${id} in the SSE answer`);
}

/** An agent of one user: its gateway access token and what it sends with it. */
export class GatewayAgent {
  #session: string | undefined;
  #seq = 1;

  constructor(
    private readonly url: string,
    readonly accessToken: string,
    /** The agent's client id at the gateway (`dyn-…`): the principal's `agent`. */
    readonly clientId: string,
  ) {}

  get authorization(): string {
    return `Bearer ${this.accessToken}`;
  }

  /** A 2025-11-25 session, declaring URL elicitation. */
  async initialize(): Promise<void> {
    const res = await post(
      this.url,
      { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: LEGACY, capabilities: { elicitation: { url: {} } }, clientInfo: { name: 'upstream-oauth-agent', version: '1.0.0' } } },
      { authorization: this.authorization },
    );
    if (res.status !== 200) throw new Error(`initialize answered ${res.status}: ${await res.text()}`);
    await answerOf(res, 0);
    this.#session = res.headers.get('mcp-session-id') ?? undefined;
    if (this.#session === undefined) throw new Error('no Mcp-Session-Id');
    const initialized = await post(this.url, { jsonrpc: '2.0', method: 'notifications/initialized' }, this.legacyHeaders());
    if (initialized.status !== 202) throw new Error(`notifications/initialized answered ${initialized.status}`);
  }

  /** One request in the 2025-11-25 session. */
  async request(method: string, params: Record<string, unknown> = {}): Promise<JsonRpcAnswer> {
    const id = this.#seq++;
    const res = await post(this.url, { jsonrpc: '2.0', id, method, params }, this.legacyHeaders());
    if (res.status !== 200) throw new Error(`${method} answered HTTP ${res.status}: ${await res.text()}`);
    return answerOf(res, id);
  }

  callTool(name: string, args: Record<string, unknown> = {}): Promise<JsonRpcAnswer> {
    return this.request('tools/call', { name, arguments: args });
  }

  /**
   * A stateless 2026-07-28 tools/call declaring `capabilities`; `extra` goes into params
   * (requestState, inputResponses). Any HTTP status is answered: some refusals are HTTP-level.
   */
  async modernCall(name: string, args: Record<string, unknown>, capabilities: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<{ status: number; answer: JsonRpcAnswer }> {
    const id = this.#seq++;
    const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': capabilities, 'io.modelcontextprotocol/clientInfo': { name: 'modern-agent', version: '1.0.0' } };
    const res = await post(
      this.url,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: meta, ...extra } },
      { authorization: this.authorization, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': name },
    );
    return { status: res.status, answer: await answerOf(res, id) };
  }

  /** The session's standalone GET stream: what the gateway tells this agent unasked. */
  async listen(): Promise<NotificationStream> {
    const controller = new AbortController();
    const res = await fetch(this.url, { headers: { ...this.legacyHeaders(), accept: 'text/event-stream' }, signal: controller.signal });
    if (res.status !== 200 || res.body === null) throw new Error(`GET stream answered ${res.status}`);
    return new NotificationStream(res.body, controller);
  }

  private legacyHeaders(): Record<string, string> {
    return { authorization: this.authorization, 'mcp-session-id': this.#session ?? '', 'mcp-protocol-version': LEGACY };
  }
}

/** Notifications read off an SSE stream as they arrive; a test awaits the one it expects. */
export class NotificationStream {
  readonly received: JsonRpcNotification[] = [];
  #waiters: Array<{ method: string; resolve(n: JsonRpcNotification): void }> = [];
  readonly #controller: AbortController;

  constructor(body: ReadableStream<Uint8Array>, controller: AbortController) {
    this.#controller = controller;
    void this.#read(body);
  }

  /**
   * The first notification of `method` (already received or still to come). Rejects after
   * `timeoutMs`: the bound on an event that should come, not a pause.
   */
  next(method: string, timeoutMs: number): Promise<JsonRpcNotification> {
    const seen = this.received.find((n) => n.method === method);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        method,
        resolve: (n: JsonRpcNotification) => {
          clearTimeout(timer);
          resolve(n);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    this.#controller.abort();
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data !== '') this.#deliver(JSON.parse(data) as JsonRpcNotification);
        }
      }
    } catch {
      // Aborted by close(), or the gateway stopped: nothing more will come.
    }
  }

  #deliver(message: JsonRpcNotification): void {
    if (typeof message.method !== 'string') return;
    this.received.push(message);
    for (const w of this.#waiters.filter((x) => x.method === message.method)) w.resolve(message);
    this.#waiters = this.#waiters.filter((x) => x.method !== message.method);
  }
}

/**
 * The agent's OAuth dance at the gateway, as the SDK client does it (PRM → AS metadata → DCR →
 * PKCE), with `user` signing in at the IdP in `browser` and approving the gateway's consent page.
 */
export async function signIn(stack: UpstreamOAuthStack, browser: HeadlessBrowser, user: string, agentName: string): Promise<GatewayAgent> {
  const provider = new InMemoryOAuthProvider(AGENT_REDIRECT, agentName);
  const serverUrl = stack.gw.url;
  if ((await auth(provider, { serverUrl })) !== 'REDIRECT') throw new Error('expected the SDK to ask for a browser authorization');
  const atAgent = (location: string): boolean => location.startsWith(AGENT_REDIRECT);
  const login = await browser.navigate(provider.authorizationUrls[0]!.href, atAgent);
  const consent = await stack.idp.loginAs(browser, login, user, { stopAt: atAgent });
  const back = consent.location !== undefined && atAgent(consent.location) ? consent : await browser.submitForm(consent, /\/consent$/, { decision: 'approve' }, atAgent);
  const callback = new URL(back.location ?? '');
  const code = callback.searchParams.get('code');
  if (code === null) throw new Error(`no code at the agent's redirect: ${back.location ?? back.status}`);
  const iss = callback.searchParams.get('iss') ?? undefined;
  if ((await auth(provider, { serverUrl, authorizationCode: code, ...(iss === undefined ? {} : { iss }) })) !== 'AUTHORIZED') throw new Error('the code bought no token');
  const tokens = provider.tokens();
  const clientId = provider.clientInformation()?.client_id;
  if (tokens === undefined || clientId === undefined) throw new Error('no token or client id after the code exchange');
  return new GatewayAgent(serverUrl, tokens.access_token, clientId);
}

/** The pages of one connect flow in a browser. */
export interface ConnectPages {
  /** The connect page after the identity round trip: the consent form (or a refusal). */
  readonly consent: BrowserResponse;
  /** The gateway's 303 to the upstream's authorization endpoint. */
  readonly toUpstream: BrowserResponse;
  /** The gateway's callback page, after the upstream login. */
  readonly done: BrowserResponse;
}

/**
 * Open a connect URL in `browser` (its gateway SSO session answers the identity step), approve,
 * sign in at the upstream as `upstreamUser`, and follow the upstream's redirect to the callback.
 */
export async function connectInBrowser(stack: UpstreamOAuthStack, browser: HeadlessBrowser, url: string, upstreamUser: string): Promise<ConnectPages> {
  const consent = await browser.navigate(url);
  if (consent.status !== 200 || !consent.body.includes('<form')) throw new Error(`no consent form at ${consent.url}: ${consent.status}`);
  const atUpstream = (location: string): boolean => location.startsWith(stack.upstream.issuer);
  const toUpstream = await browser.submitForm(consent, /\/upstream-auth\/connect\//, { decision: 'approve' }, atUpstream);
  if (toUpstream.status !== 303 || toUpstream.location === undefined) throw new Error(`approving answered ${toUpstream.status}: ${toUpstream.body}`);
  const done = await loginWithBrowser(browser, toUpstream.location, upstreamUser);
  return { consent, toUpstream, done };
}

/** A pre-registered client is bound to the authorization server it was registered at (config requires it). */
function withIssuer(credentials: Omit<UserOAuthInput, 'mode'> | undefined, issuer: string): Omit<UserOAuthInput, 'mode'> | undefined {
  if (credentials?.client === undefined || credentials.authorizationServer !== undefined) return credentials;
  return { ...credentials, authorizationServer: issuer };
}
