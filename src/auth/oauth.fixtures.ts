/**
 * Test fixtures for the authorization server: a real HTTP server on 127.0.0.1 that calls
 * `handle`, a SQLite database in a temp folder, a test login that signs in a fixed user and
 * consents to what was asked, PKCE helpers, and a browser-like redirect follower.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { configSchema, type ConfigInput, type GatehouseConfig } from '../config/schema.ts';
import { systemClock, type Clock } from '../clock.ts';
import { createLogger } from '../telemetry/log.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import { createAuthorizationServer, type AuthorizationServer } from './authorization-server.ts';
import type { InteractionHandler } from './interaction.ts';

export interface AsFixture {
  readonly base: string;
  readonly as: AuthorizationServer;
  readonly config: GatehouseConfig;
  readonly store: SqliteStore;
  readonly dir: string;
  readonly logs: string[];
  /** Stop the HTTP server and the AS; keep the database (for restart tests) unless `removeDb`. */
  close(removeDb?: boolean): Promise<void>;
}

export function testConfig(auth: ConfigInput['auth'] = {}, extra: Partial<ConfigInput> = {}): GatehouseConfig {
  return configSchema.parse({ targets: {}, toolsets: { ops: { tools: ['x/*'] } }, ...extra, auth: { mode: 'oauth', ...auth } });
}

/** Signs in `accountId` and grants every scope and resource the client asked for. */
export function autoLogin(accountId: string): InteractionHandler {
  return {
    async handle({ provider, req, res }) {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
        return;
      }
      const clientId = String(details.params['client_id']);
      const grant = details.grantId === undefined ? new provider.Grant({ accountId, clientId }) : await provider.Grant.find(details.grantId);
      if (grant === undefined) throw new Error('grant vanished');
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    },
  };
}

export async function startAs(options: {
  config: GatehouseConfig;
  dir?: string;
  clock?: Clock;
  interactions?: InteractionHandler;
  metadataFetchCa?: string;
}): Promise<AsFixture> {
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'gatehouse-as-'));
  const store = SqliteStore.open({ file: path.join(dir, 'gatehouse.db') });
  await store.migrate();
  const logs: string[] = [];
  const logger = createLogger('debug', new Writable({ write: (chunk, _enc, done) => (logs.push(String(chunk)), done()) }));
  let as: AuthorizationServer | undefined;
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (as === undefined || !(await as.handle(req, res))) {
        res.writeHead(404).end();
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  as = await createAuthorizationServer({
    config: options.config,
    publicBase: base,
    store: store.oauthStore(),
    configDir: dir,
    clock: options.clock ?? systemClock,
    logger,
    interactions: options.interactions,
    ...(options.metadataFetchCa === undefined ? {} : { metadataFetchCa: options.metadataFetchCa }),
  });
  const ready = as;
  return {
    base,
    as: ready,
    config: options.config,
    store,
    dir,
    logs,
    async close(removeDb = true) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await ready.close();
      await store.close();
      if (removeDb) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** A tiny cookie jar plus redirect following, as a browser would do the front channel. */
export class Browser {
  private readonly cookies = new Map<string, string>();

  async get(url: string): Promise<Response> {
    const response = await fetch(url, { redirect: 'manual', headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /** Follow redirects until one leaves `base` (the client's redirect_uri) or a non-redirect answers. */
  async follow(url: string, base: string): Promise<{ final: Response; location?: URL }> {
    let next = url;
    for (let i = 0; i < 12; i += 1) {
      const response = await this.get(next);
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || location === null) return { final: response };
      const target = new URL(location, next);
      if (!target.href.startsWith(base)) return { final: response, location: target };
      next = target.href;
    }
    throw new Error('too many redirects');
  }
}

export async function postForm(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}
