import { describe, expect, it } from 'vitest';
import { accountFromClaims, groupList, isLoopbackHost, LoginRefused, type IdpConfig } from './idp-login.ts';

const idp: IdpConfig = {
  issuer: 'https://idp.example',
  clientId: 'gatehouse',
  scopes: ['openid'],
  userClaim: 'sub',
  groupsClaim: 'groups',
  tenant: 'default',
  groupRoles: { eng: ['developer'], ops: ['operator', 'developer'] },
};

describe('accountFromClaims', () => {
  it('maps the user, the fixed tenant and groups to deduplicated roles, keeping only profile claims', () => {
    const account = accountFromClaims({ sub: 'u1', groups: ['eng', 'ops', 'unmapped'], email: 'u1@example.com', at_hash: 'x' }, idp, ['default']);
    expect(account).toEqual({ id: 'u1', tenant: 'default', roles: ['developer', 'operator'], claims: { groups: ['eng', 'ops', 'unmapped'], email: 'u1@example.com' } });
  });

  it('reads the user and tenant from the configured claims', () => {
    const custom = { ...idp, userClaim: 'email', tenantClaim: 'org', groupsClaim: 'roles' };
    expect(accountFromClaims({ sub: 'x', email: 'a@b', org: 'acme', roles: 'eng' }, custom, ['acme'])).toMatchObject({ id: 'a@b', tenant: 'acme', roles: ['developer'] });
  });

  it('refuses a login without a user name, or with a tenant not served', () => {
    expect(() => accountFromClaims({ groups: [] }, idp, ['default'])).toThrow(LoginRefused);
    expect(() => accountFromClaims({ sub: '' }, idp, ['default'])).toThrow(LoginRefused);
    expect(() => accountFromClaims({ sub: 'u' }, idp, ['acme'])).toThrow(/tenant/);
    const byClaim = { ...idp, tenantClaim: 'org' };
    expect(() => accountFromClaims({ sub: 'u' }, byClaim, ['default'])).toThrow(/tenant/);
    expect(() => accountFromClaims({ sub: 'u', org: ['default'] }, byClaim, ['default'])).toThrow(/tenant/);
  });
});

describe('groupList', () => {
  it('accepts an array or a single name and drops anything else', () => {
    expect(groupList(['a', 1, 'b', null])).toEqual(['a', 'b']);
    expect(groupList('a')).toEqual(['a']);
    expect(groupList(undefined)).toEqual([]);
    expect(groupList({ a: 1 })).toEqual([]);
  });
});

describe('isLoopbackHost', () => {
  it('knows loopback names and addresses only', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1', '127.0.0.1.nip.io', 'localhost.example', '0.0.0.0', 'idp.example']) expect(isLoopbackHost(h)).toBe(false);
  });
});
