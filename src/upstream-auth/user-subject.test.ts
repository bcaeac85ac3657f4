import { describe, expect, it } from 'vitest';
import { configSchema } from '../config/schema.ts';
import { isCredentialSubject } from '../vault/credential-vault.ts';
import { actsPerAgent, userKey, userOfSubject, userRefFor, userSubject } from './user-subject.ts';

const credentials = (tokenExchange: boolean) =>
  configSchema.parse({
    targets: { t: { transport: 'streamable-http', url: 'https://up.example/mcp', credentials: { mode: 'user-oauth', client: { id: 'c' }, ...(tokenExchange ? { tokenExchange: {} } : {}) } } },
  }).targets['t']!.credentials;

describe('user × agent subjects', () => {
  it('keeps the agent only at token-exchange targets', () => {
    const who = { tenant: 'acme', user: 'alice', agent: 'dyn-1' };
    expect(actsPerAgent(credentials(true))).toBe(true);
    expect(actsPerAgent(credentials(false))).toBe(false);
    expect(userRefFor(credentials(true), who)).toEqual(who);
    expect(userRefFor(credentials(false), who)).toEqual({ tenant: 'acme', user: 'alice' });
  });

  it('round-trips users and agents with any characters, and is a subject the vault accepts', () => {
    const cases = [
      { tenant: 'acme', user: 'alice', agent: 'dyn-1' },
      { tenant: 'acme', user: 'a#b', agent: 'x#agent=y' },
      { tenant: 'acme', user: 'bob#agent=dyn-1', agent: 'dyn-2' },
      { tenant: 'acme', user: 'ünï', agent: 'agent with spaces/and:colons' },
    ];
    for (const who of cases) {
      const subject = userSubject(who);
      expect(isCredentialSubject(subject)).toBe(true);
      expect(userOfSubject('acme', subject, true)).toEqual(who);
    }
    expect(userSubject({ tenant: 'acme', user: 'alice', agent: 'dyn 1' })).toBe('user:alice#agent=dyn%201');
  });

  it('a user id that looks like another user × agent cannot name their row', () => {
    const alice = userSubject({ tenant: 'acme', user: 'alice', agent: 'dyn-1' });
    const mallory = userSubject({ tenant: 'acme', user: 'alice#agent=dyn-1', agent: 'dyn-2' });
    expect(mallory).not.toBe(alice);
    expect(userKey({ tenant: 'acme', user: 'alice', agent: 'dyn-1' })).not.toBe(userKey({ tenant: 'acme', user: 'alice\u0000dyn-1' }));
  });

  it('per-user subjects read as before; service and malformed agents name nobody', () => {
    expect(userSubject({ tenant: 'acme', user: 'alice' })).toBe('user:alice');
    expect(userOfSubject('acme', 'user:alice#agent=dyn-1', false)).toEqual({ tenant: 'acme', user: 'alice#agent=dyn-1' });
    expect(userOfSubject('acme', 'user:alice', true)).toEqual({ tenant: 'acme', user: 'alice' });
    expect(userOfSubject('acme', 'service', true)).toBeUndefined();
    expect(userOfSubject('acme', 'user:alice#agent=%E0%A4%A', true)).toBeUndefined();
    expect(userOfSubject('acme', 'user:alice#agent=', true)).toBeUndefined();
  });
});
