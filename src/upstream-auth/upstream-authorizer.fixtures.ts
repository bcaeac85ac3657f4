// A small real authorization server and protected MCP endpoint on loopback, for the upstream
// OAuth client's tests: RFC 9728 protected resource metadata, RFC 8414 metadata, dynamic
// registration, an authorization endpoint that consents at once (302 to the redirect URI with
// a code), a token endpoint (authorization_code with PKCE S256 checked, refresh_token,
// client_credentials), RFC 7009 revocation, and `/mcp` answering 401/403 like a resource
// server. Every token and secret it issues contains CANARY, so a test can look for leaks.
// Behaviour switches (`refresh`, `pkce`, scopes) let tests drive the failure paths.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const CANARY = 'CANARY';

export interface FakeAuthorizationServer {
  readonly base: string;
  readonly mcpUrl: string;
  /** What the token endpoint does with a refresh_token grant. */
  refresh: 'ok' | 'invalid_grant' | 'unavailable';
  /** Runs before a refresh_token grant is answered (a test's "meanwhile, elsewhere"). */
  beforeRefreshAnswer: (() => Promise<void>) | undefined;
  /** Advertise PKCE S256 (false: no code_challenge_methods_supported at all). */
  pkce: boolean;
  /** Scopes `/mcp` requires for tools/call (403 insufficient_scope without them). */
  callScopes: string[];
  /** Every request the server saw: path, method, form or query parameters, authorization header. */
  readonly requests: Array<{ method: string; path: string; params: Record<string, string>; authorization: string | undefined }>;
  /** Access tokens `/mcp` accepts, with their scopes. */
  readonly accepted: Map<string, string[]>;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeAuthorizationServer(options: { clientSecret?: string; expiresIn?: number } = {}): Promise<FakeAuthorizationServer> {
  let seq = 0;
  const codes = new Map<string, { challenge: string; scope: string | undefined; resource: string | undefined; clientId: string }>();
  const refreshTokens = new Map<string, string | undefined>();
  let server: Server;
  const state: FakeAuthorizationServer = {
    base: '',
    mcpUrl: '',
    refresh: 'ok',
    beforeRefreshAnswer: undefined,
    pkce: true,
    callScopes: [],
    requests: [],
    accepted: new Map(),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const issue = (scope: string | undefined, withRefresh: boolean): Record<string, unknown> => {
    seq += 1;
    const access = `${CANARY}-access-${seq}`;
    state.accepted.set(access, scope === undefined ? [] : scope.split(' '));
    const body: Record<string, unknown> = { access_token: access, token_type: 'Bearer', expires_in: options.expiresIn ?? 300 };
    if (scope !== undefined) body['scope'] = scope;
    if (withRefresh) {
      const refresh = `${CANARY}-refresh-${seq}`;
      refreshTokens.set(refresh, scope);
      body['refresh_token'] = refresh;
    }
    return body;
  };

  server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', state.base);
      const text = req.method === 'POST' ? await readBody(req) : '';
      const params: Record<string, string> = Object.fromEntries(req.headers['content-type']?.includes('form') ? new URLSearchParams(text) : url.searchParams);
      state.requests.push({ method: req.method ?? '', path: url.pathname, params, authorization: req.headers.authorization });
      const base = state.base;
      switch (`${req.method} ${url.pathname}`) {
        case 'GET /.well-known/oauth-protected-resource/mcp':
          return send(res, 200, { resource: state.mcpUrl, authorization_servers: [base], scopes_supported: ['mcp:read', 'mcp:write'] });
        case 'GET /.well-known/oauth-authorization-server':
          return send(res, 200, {
            issuer: base,
            authorization_endpoint: `${base}/authorize`,
            token_endpoint: `${base}/token`,
            registration_endpoint: `${base}/register`,
            revocation_endpoint: `${base}/revoke`,
            response_types_supported: ['code'],
            grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
            token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
            ...(state.pkce ? { code_challenge_methods_supported: ['S256'] } : {}),
          });
        case 'POST /register': {
          const metadata = JSON.parse(text) as Record<string, unknown>;
          return send(res, 201, { ...metadata, client_id: 'registered-client', client_secret: options.clientSecret ?? `${CANARY}-client-secret` });
        }
        case 'GET /authorize': {
          seq += 1;
          const code = `code-${seq}`;
          codes.set(code, { challenge: params['code_challenge'] ?? '', scope: params['scope'], resource: params['resource'], clientId: params['client_id'] ?? '' });
          const redirect = new URL(params['redirect_uri'] ?? 'http://invalid/');
          redirect.searchParams.set('code', code);
          if (params['state'] !== undefined) redirect.searchParams.set('state', params['state']);
          res.writeHead(302, { location: redirect.href }).end();
          return;
        }
        case 'POST /token': {
          const grant = params['grant_type'];
          if (grant === 'authorization_code') {
            const entry = codes.get(params['code'] ?? '');
            codes.delete(params['code'] ?? '');
            const verifier = params['code_verifier'] ?? '';
            if (entry === undefined || createHash('sha256').update(verifier).digest('base64url') !== entry.challenge) return send(res, 400, { error: 'invalid_grant' });
            return send(res, 200, issue(entry.scope, true));
          }
          if (grant === 'refresh_token') {
            await state.beforeRefreshAnswer?.();
            if (state.refresh === 'unavailable') return send(res, 503, { error: 'temporarily_unavailable' });
            const token = params['refresh_token'] ?? '';
            if (state.refresh === 'invalid_grant' || !refreshTokens.has(token)) return send(res, 400, { error: 'invalid_grant', error_description: `refresh token ${token} is revoked` });
            const scope = refreshTokens.get(token);
            refreshTokens.delete(token);
            return send(res, 200, issue(scope, true));
          }
          if (grant === 'urn:ietf:params:oauth:grant-type:token-exchange') {
            if (req.headers.authorization === undefined || params['subject_token'] === undefined) return send(res, 400, { error: 'invalid_request' });
            return send(res, 200, { ...issue(params['scope'], false), issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
          }
          if (grant === 'client_credentials') {
            if (req.headers.authorization === undefined && params['client_secret'] === undefined) return send(res, 401, { error: 'invalid_client' });
            return send(res, 200, issue(params['scope'], false));
          }
          return send(res, 400, { error: 'unsupported_grant_type' });
        }
        case 'POST /revoke':
          refreshTokens.delete(params['token'] ?? '');
          return send(res, 200, {});
        case 'POST /mcp': {
          const auth = req.headers.authorization;
          const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
          const challenge = `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="mcp:read"`;
          if (token === undefined || !state.accepted.has(token)) return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': challenge });
          const message = JSON.parse(text) as { id?: number; method?: string };
          const scopes = state.accepted.get(token)!;
          if (message.method === 'tools/call' && !state.callScopes.every((s) => scopes.includes(s))) {
            return send(res, 403, { error: 'insufficient_scope' }, { 'www-authenticate': `Bearer error="insufficient_scope", scope="${state.callScopes.join(' ')}"` });
          }
          if (message.id === undefined) return void res.writeHead(202).end();
          const result = message.method === 'initialize'
            ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'protected', version: '1' } }
            : message.method === 'tools/list' ? { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] } : { content: [{ type: 'text', text: 'ok' }] };
          return send(res, 200, { jsonrpc: '2.0', id: message.id, result });
        }
        default:
          return send(res, 404, { error: 'not_found' });
      }
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  (state as { base: string }).base = `http://127.0.0.1:${port}`;
  (state as { mcpUrl: string }).mcpUrl = `http://127.0.0.1:${port}/mcp`;
  return state;
}
