// The vault keyring: AES-256-GCM envelopes that round-trip, refuse every kind of tampering and
// a foreign AAD, and a key config that refuses anything but 32 random bytes without echoing it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GatehouseError } from '../protocol/errors.ts';
import { vaultSchema } from '../config/credentials-schema.ts';
import { VaultCipher, createVaultCipher, generateVaultKey } from './vault-cipher.ts';

const K1 = generateVaultKey();
const K2 = generateVaultKey();
const AAD = 'default\u0000github\u0000user:alice\u0000oauth-tokens';

/** Replace one base64url part of an envelope with `edit` of its bytes. */
function editPart(envelope: string, index: number, edit: (bytes: Buffer) => Buffer): string {
  const parts = envelope.split('.');
  parts[index] = edit(Buffer.from(parts[index]!, 'base64url')).toString('base64url');
  return parts.join('.');
}

const flipFirstBit = (bytes: Buffer): Buffer => {
  const copy = Buffer.from(bytes);
  copy[0] = copy[0]! ^ 1;
  return copy;
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof GatehouseError ? err.code : `not a GatehouseError: ${String(err)}`;
  }
  return undefined;
}

describe('VaultCipher', () => {
  const cipher = new VaultCipher([{ id: 'k1', secret: K1 }]);

  it('round-trips strings and bytes in a v1 envelope naming the key', () => {
    const envelope = cipher.encrypt('{"access_token":"abc"}', AAD);
    expect(envelope).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(cipher.decrypt(envelope, AAD).toString('utf8')).toBe('{"access_token":"abc"}');
    const bytes = Buffer.from([0, 1, 2, 255]);
    expect(cipher.decrypt(cipher.encrypt(bytes, AAD), AAD)).toEqual(bytes);
    expect(cipher.decrypt(cipher.encrypt('', AAD), AAD).length).toBe(0);
    expect(VaultCipher.keyIdOf(envelope)).toBe('k1');
  });

  it('gives two encryptions of the same value different IVs and ciphertexts', () => {
    const a = cipher.encrypt('same', AAD);
    const b = cipher.encrypt('same', AAD);
    expect(a).not.toBe(b);
    expect(a.split('.')[2]).not.toBe(b.split('.')[2]);
    expect(a.split('.')[3]).not.toBe(b.split('.')[3]);
  });

  it('refuses a tampered ciphertext, tag or IV, and another AAD', () => {
    const envelope = cipher.encrypt('secret value', AAD);
    for (const index of [2, 3, 4]) {
      expect(codeOf(() => cipher.decrypt(editPart(envelope, index, flipFirstBit), AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    }
    expect(codeOf(() => cipher.decrypt(envelope, 'default\u0000github\u0000user:mallory\u0000oauth-tokens'))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(codeOf(() => cipher.decrypt(envelope, ''))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    // Truncated tag, extra parts, another version, non-canonical base64url.
    expect(codeOf(() => cipher.decrypt(editPart(envelope, 4, (b) => b.subarray(0, 12)), AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(codeOf(() => cipher.decrypt(`${envelope}.x`, AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(codeOf(() => cipher.decrypt(envelope.replace(/^v1/, 'v2'), AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(codeOf(() => cipher.decrypt(envelope.replace(/\.([^.]+)$/, '.$1='), AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(codeOf(() => cipher.decrypt('not an envelope', AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
  });

  it('refuses an envelope naming a key it does not hold, and one relabelled to another key', () => {
    const other = new VaultCipher([{ id: 'k2', secret: K2 }]);
    const envelope = other.encrypt('value', AAD);
    let message = '';
    try {
      cipher.decrypt(envelope, AAD);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/vault key k2, which is not configured/);
    const both = new VaultCipher([
      { id: 'k1', secret: K1 },
      { id: 'k2', secret: K2 },
    ]);
    expect(both.decrypt(envelope, AAD).toString()).toBe('value');
    expect(codeOf(() => both.decrypt(envelope.replace('.k2.', '.k1.'), AAD))).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
  });

  it('encrypts with the active key (default the last) and decrypts with every key', () => {
    const keys = [
      { id: 'k1', secret: K1 },
      { id: 'k2', secret: K2 },
    ];
    expect(new VaultCipher(keys).activeKeyId).toBe('k2');
    const pinned = new VaultCipher(keys, 'k1');
    expect(pinned.activeKeyId).toBe('k1');
    expect(pinned.keyIds).toEqual(['k1', 'k2']);
    expect(VaultCipher.keyIdOf(pinned.encrypt('x', AAD))).toBe('k1');
  });

  it('accepts base64 and base64url secrets, with or without padding', () => {
    const bytes = Buffer.alloc(32);
    for (let i = 0; i < 32; i += 1) bytes[i] = 250 - i * 3; // yields + / - _ in the encodings
    for (const secret of [bytes.toString('base64'), bytes.toString('base64').replace(/=$/, ''), bytes.toString('base64url'), ` ${bytes.toString('base64url')}\n`]) {
      const c = new VaultCipher([{ id: 'k', secret }]);
      const other = new VaultCipher([{ id: 'k', secret: bytes.toString('base64') }]);
      expect(other.decrypt(c.encrypt('v', AAD), AAD).toString()).toBe('v');
    }
  });

  it('refuses secrets that are not 32 random bytes, naming the key id but never the value', () => {
    const canary = 'canary-passphrase-do-not-echo';
    const wrong = [
      canary,
      Buffer.alloc(16, 7).toString('base64'),
      Buffer.from(generateVaultKey(), 'base64').subarray(0, 31).toString('base64'),
      Buffer.concat([Buffer.from(generateVaultKey(), 'base64'), Buffer.from([1])]).toString('base64'),
      'a'.repeat(64), // hex of 32 bytes is not base64 of 32 bytes
      `${K1.slice(0, 10)}-+${K1.slice(12)}`, // mixed alphabets
      Buffer.alloc(32).toString('base64'), // a placeholder
    ];
    for (const secret of wrong) {
      let error: unknown;
      try {
        new VaultCipher([{ id: 'prod-2026', secret }]);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(GatehouseError);
      expect((error as GatehouseError).code).toBe('CONFIG_INVALID');
      expect((error as Error).message).toContain('prod-2026');
      expect((error as Error).message).not.toContain(secret);
      expect((error as Error).message).not.toContain(secret.slice(0, 8));
    }
  });

  it('refuses an empty keyring, duplicate ids and an active key that is not listed', () => {
    expect(codeOf(() => new VaultCipher([]))).toBe('CONFIG_INVALID');
    expect(
      codeOf(
        () =>
          new VaultCipher([
            { id: 'k1', secret: K1 },
            { id: 'k1', secret: K2 },
          ]),
      ),
    ).toBe('CONFIG_INVALID');
    expect(codeOf(() => new VaultCipher([{ id: 'k1', secret: K1 }], 'k9'))).toBe('CONFIG_INVALID');
  });
});

describe('createVaultCipher', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    delete process.env['GH_TEST_VAULT_K1'];
  });

  it('resolves secrets from environment variables and files relative to the config', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-vault-cipher-'));
    dirs.push(dir);
    writeFileSync(path.join(dir, 'k2.key'), `${K2}\n`);
    process.env['GH_TEST_VAULT_K1'] = K1;
    const vault = vaultSchema.parse({
      keys: [
        { id: 'k1', secret: { env: 'GH_TEST_VAULT_K1' } },
        { id: 'k2', secret: { file: 'k2.key' } },
      ],
      activeKey: 'k1',
    });
    const cipher = createVaultCipher(vault, dir);
    expect(cipher.activeKeyId).toBe('k1');
    const fromK2 = new VaultCipher([{ id: 'k2', secret: K2 }]).encrypt('v', AAD);
    expect(cipher.decrypt(fromK2, AAD).toString()).toBe('v');
  });

  it('names the key when its secret is missing', () => {
    const vault = vaultSchema.parse({ keys: [{ id: 'k1', secret: { env: 'GH_TEST_VAULT_MISSING' } }] });
    expect(() => createVaultCipher(vault, '/')).toThrow(/vault\.keys k1: the environment variable GH_TEST_VAULT_MISSING is not set/);
  });
});
