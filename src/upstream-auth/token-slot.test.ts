import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { MemoryVault } from '../../test/support/memory-vault.ts';
import { TokenSlot } from './vault-oauth-provider.ts';
import type { CredentialKey } from '../vault/credential-vault.ts';

const key: CredentialKey = { tenant: 'default', target: 'files', subject: 'user:alice', kind: 'oauth-tokens' };

describe('a token slot', () => {
  it('writes what a renewal obtained, with its expiry and the time to refresh it', async () => {
    const clock = new ManualClock();
    const vault = new MemoryVault();
    const slot = new TokenSlot(vault, key, clock, { leadMs: 60_000, reacquirable: false });
    await slot.save({ access_token: 'a1', token_type: 'Bearer', expires_in: 300, refresh_token: 'r1' }, { resource: 'https://up.example/mcp' });
    const row = await vault.get<{ access_token: string; resource: string }>(key);
    expect(row?.value).toMatchObject({ access_token: 'a1', resource: 'https://up.example/mcp' });
    expect(row?.meta).toMatchObject({ status: 'active', expiresAt: clock.now() + 300_000, refreshAt: clock.now() + 240_000 });
  });

  it('once revoked, a renewal that was already on the wire does not bring the row back', async () => {
    const clock = new ManualClock();
    const vault = new MemoryVault();
    const slot = new TokenSlot(vault, key, clock, { leadMs: 60_000, reacquirable: false });
    await slot.save({ access_token: 'a1', token_type: 'Bearer', expires_in: 300, refresh_token: 'r1' }, {});
    // The operator's DELETE: the credential forgets its slot, the row goes.
    await slot.clear();
    await vault.delete(key);
    // The refresh answer arrives afterwards.
    await slot.save({ access_token: 'a2', token_type: 'Bearer', expires_in: 300, refresh_token: 'r2' }, {});
    expect(await vault.get(key)).toBeUndefined();
  });
});
