/**
 * Test fixtures for the connect page: a fake of the upstream authorizer (the contract of
 * upstream-credential.ts) that records what the page asked of it, and a log sink.
 */
import { randomBytes } from 'node:crypto';
import type { ConnectLog } from './connect-routes.ts';
import type { UpstreamAuthorizations, UserRef } from './upstream-credential.ts';

export interface LogLine {
  readonly level: 'warn' | 'error';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** The upstream authorization server the fake sends browsers to (nothing serves it). */
export const FAKE_AUTHORIZE_URL = 'https://upstream-as.example/authorize';

export interface FakeUpstreamAuthorizations extends UpstreamAuthorizations {
  /** Every `beginUserAuthorization`, in order, with the state it put in the URL. */
  readonly begun: Array<{ target: string; who: UserRef; scopes: readonly string[] | undefined; redirectUri: string; state: string }>;
  /** Every URL handed to `completeUserAuthorization`. */
  readonly completed: URL[];
  /** Set to make the next calls fail (the text must never reach a page or a log). */
  failBegin: Error | undefined;
  failComplete: Error | undefined;
}

export function fakeUpstreamAuthorizations(): FakeUpstreamAuthorizations {
  const pending = new Map<string, { target: string; who: UserRef }>();
  const unused = (name: string) => (): never => {
    throw new Error(`${name} is not part of the connect page`);
  };
  const fake: FakeUpstreamAuthorizations = {
    begun: [],
    completed: [],
    failBegin: undefined,
    failComplete: undefined,
    serviceCredential: unused('serviceCredential'),
    userCredential: unused('userCredential'),
    userAuthorization: unused('userAuthorization'),
    authorizedUsers: unused('authorizedUsers'),
    disconnectUser: unused('disconnectUser'),
    childEnvironment: unused('childEnvironment'),
    refreshDue: unused('refreshDue'),
    async beginUserAuthorization(target, who, options) {
      if (fake.failBegin !== undefined) throw fake.failBegin;
      const state = randomBytes(16).toString('base64url');
      pending.set(state, { target, who: { tenant: who.tenant, user: who.user } });
      fake.begun.push({ target, who, scopes: options.scopes, redirectUri: options.redirectUri, state });
      const url = new URL(FAKE_AUTHORIZE_URL);
      url.search = new URLSearchParams({ response_type: 'code', client_id: 'gatehouse', redirect_uri: options.redirectUri, state, code_challenge: 'x', code_challenge_method: 'S256' }).toString();
      return { authorizationUrl: url.href };
    },
    async completeUserAuthorization(callbackUrl) {
      fake.completed.push(callbackUrl);
      if (fake.failComplete !== undefined) throw fake.failComplete;
      const state = callbackUrl.searchParams.get('state') ?? '';
      const entry = pending.get(state);
      pending.delete(state);
      if (entry === undefined || !callbackUrl.searchParams.get('code')) throw new Error('unknown state or no code');
      return entry;
    },
  };
  return fake;
}

/** A pino-compatible logger that keeps what it was given, to assert what logs never carry. */
export function recordingLogger(): ConnectLog & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    warn: (fields, message) => void lines.push({ level: 'warn', fields, message }),
    error: (fields, message) => void lines.push({ level: 'error', fields, message }),
  };
}
