/**
 * An in-memory OAuthClientProvider for the SDK v2 client (`@modelcontextprotocol/client`), as a
 * headless agent would keep its OAuth state: registered client, tokens, PKCE verifier and
 * discovery state. `redirectToAuthorization` only records the URL; the test drives a
 * headless browser through it and hands the code back with `transport.finishAuth`.
 * Also a recording `fetch` so the test can see the exchange the SDK made.
 */
import type {
  OAuthClientMetadata,
  OAuthClientProvider,
  OAuthDiscoveryState,
  StoredOAuthClientInformation,
  StoredOAuthTokens,
} from '@modelcontextprotocol/client';

export class InMemoryOAuthProvider implements OAuthClientProvider {
  /** Every authorization URL the SDK asked the user agent to open, in order. */
  readonly authorizationUrls: URL[] = [];
  /** Every token set the SDK saved, in order. */
  readonly savedTokens: StoredOAuthTokens[] = [];
  #client: StoredOAuthClientInformation | undefined;
  #tokens: StoredOAuthTokens | undefined;
  #verifier: string | undefined;
  #discovery: OAuthDiscoveryState | undefined;

  constructor(
    readonly redirectUrl: string,
    readonly clientName: string,
  ) {}

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.clientName,
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation(): StoredOAuthClientInformation | undefined {
    return this.#client;
  }
  saveClientInformation(info: StoredOAuthClientInformation): void {
    this.#client = info;
  }
  tokens(): StoredOAuthTokens | undefined {
    return this.#tokens;
  }
  saveTokens(tokens: StoredOAuthTokens): void {
    this.#tokens = tokens;
    this.savedTokens.push(tokens);
  }
  redirectToAuthorization(url: URL): void {
    this.authorizationUrls.push(url);
  }
  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }
  codeVerifier(): string {
    if (this.#verifier === undefined) throw new Error('no PKCE verifier saved');
    return this.#verifier;
  }
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#discovery = state;
  }
  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#discovery;
  }
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'client') this.#client = undefined;
    if (scope === 'all' || scope === 'tokens') this.#tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.#verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.#discovery = undefined;
  }

  /** Test hook: the stored access token becomes garbage, the refresh token stays (forces the SDK's refresh path). */
  spoilAccessToken(): void {
    if (this.#tokens === undefined) throw new Error('no tokens to spoil');
    this.#tokens = { ...this.#tokens, access_token: 'spoiled-access-token' };
  }
}

export interface SeenExchange {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  /** The request body for form posts (token, revocation) and JSON posts (registration, MCP). */
  readonly body: string | undefined;
  readonly authorization: string | null;
}

/** A fetch that records each exchange (request line, body, status) and passes everything through. */
export function recordingFetch(seen: SeenExchange[]): typeof fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    const body = request.body === null ? undefined : await request.clone().text();
    const response = await fetch(request);
    seen.push({ method: request.method, url: request.url, status: response.status, body, authorization: request.headers.get('authorization') });
    return response;
  };
}
