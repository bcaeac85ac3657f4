/**
 * The vault's keyring: AES-256-GCM keys from `vault.keys`, one of them active for new writes,
 * every one of them able to decrypt. A value leaves here as an envelope that names its key:
 *
 *   v1.<keyId>.<iv>.<ciphertext>.<tag>        (iv, ciphertext and tag in base64url)
 *
 * The IV is 96 random bits per encryption. With random IVs NIST SP 800-38D caps one key at 2^32
 * encryptions; rotation (a new active key, `gatehouse vault rotate`) keeps far below that. The
 * caller's AAD binds an envelope to its row, so a ciphertext copied onto another row (another
 * user's, another target's) does not verify there. Key material stays in this module's memory:
 * no message, log line or error names a secret, only key ids.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { VaultConfig } from '../config/credentials-schema.ts';
import { resolveSecret } from '../auth/oauth-clients.ts';
import { GatehouseError } from '../protocol/errors.ts';

const ENVELOPE_VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The config schema's key id rule; it also keeps `.` (the envelope separator) out of ids. */
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
const BASE64URL_PART = /^[A-Za-z0-9_-]*$/;

/** One key as configured: its id and its secret text (base64 or base64url of 32 bytes). */
export interface VaultKeyMaterial {
  readonly id: string;
  readonly secret: string;
}

function configError(message: string): GatehouseError {
  return new GatehouseError('CONFIG_INVALID', message);
}

function unreadable(message: string): GatehouseError {
  return new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', message);
}

/**
 * The 32 bytes of a key secret. Strict on purpose: a passphrase, a hex string or a truncated
 * paste would otherwise become a weak key silently. The message names the key id only.
 */
function parseKeySecret(id: string, text: string): Buffer {
  const refuse = (): GatehouseError =>
    configError(`vault.keys ${id}: the secret must be 32 random bytes, base64 or base64url encoded (43 or 44 characters); create one with \`gatehouse vault generate-key\``);
  const trimmed = text.trim();
  const encoding = BASE64.test(trimmed) ? 'base64' : BASE64URL.test(trimmed) ? 'base64url' : undefined;
  if (encoding === undefined) throw refuse();
  const bytes = Buffer.from(trimmed, encoding);
  // Node's decoder skips what it cannot read; a canonical round trip proves nothing was skipped.
  if (bytes.length !== KEY_BYTES || bytes.toString(encoding).replace(/=+$/, '') !== trimmed.replace(/=+$/, '')) throw refuse();
  // A placeholder (`AAAA…`) decodes to 32 equal bytes: valid base64, never a random key.
  if (bytes.every((b) => b === bytes[0])) throw configError(`vault.keys ${id}: the secret is a placeholder (every byte the same), not a random key`);
  return bytes;
}

/** Decode one base64url part of an envelope, refusing non-canonical text. */
function decodePart(part: string): Buffer | undefined {
  if (!BASE64URL_PART.test(part)) return undefined;
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : undefined;
}

export class VaultCipher {
  /** The key new envelopes are encrypted with. */
  readonly activeKeyId: string;
  private readonly keys: ReadonlyMap<string, Buffer>;

  /** `activeKey` defaults to the last key listed (config: add a key at the end to rotate). */
  constructor(keys: readonly VaultKeyMaterial[], activeKey?: string) {
    if (keys.length === 0) throw configError('vault.keys is empty: add a key (create one with `gatehouse vault generate-key`)');
    const parsed = new Map<string, Buffer>();
    for (const key of keys) {
      if (!KEY_ID.test(key.id)) throw configError(`vault.keys: the key id ${JSON.stringify(key.id)} must be 1 to 32 letters, digits, _ or -`);
      if (parsed.has(key.id)) throw configError(`vault.keys: the key id ${key.id} is listed twice`);
      parsed.set(key.id, parseKeySecret(key.id, key.secret));
    }
    const active = activeKey ?? keys[keys.length - 1]!.id;
    if (!parsed.has(active)) throw configError(`vault.activeKey ${active} is not one of vault.keys`);
    this.keys = parsed;
    this.activeKeyId = active;
  }

  /** Every configured key id, in config order. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  hasKey(id: string): boolean {
    return this.keys.has(id);
  }

  /** An envelope of `plaintext` under the active key, bound to `aad`. */
  encrypt(plaintext: Buffer | string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), cipher.final()]);
    return [ENVELOPE_VERSION, this.activeKeyId, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /**
   * The plaintext of `envelope`, which must have been encrypted with `aad`. Throws
   * UPSTREAM_CREDENTIAL_UNAVAILABLE when it is malformed, names a key not configured, or does
   * not verify (tampered, or bound to another row).
   */
  decrypt(envelope: string, aad: string): Buffer {
    const parts = envelope.split('.');
    if (parts.length !== 5 || parts[0] !== ENVELOPE_VERSION) throw unreadable(`not a ${ENVELOPE_VERSION} vault envelope`);
    const [, keyId, ivText, bodyText, tagText] = parts as [string, string, string, string, string];
    const key = this.keys.get(keyId);
    if (key === undefined) throw unreadable(`encrypted with vault key ${KEY_ID.test(keyId) ? keyId : '(invalid id)'}, which is not configured`);
    const iv = decodePart(ivText);
    const body = decodePart(bodyText);
    const tag = decodePart(tagText);
    if (iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || body === undefined) throw unreadable('a malformed vault envelope');
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch {
      // GCM says only "unable to authenticate": tampering and a wrong row look the same.
      throw unreadable(`does not verify under vault key ${keyId} (tampered, or copied from another row)`);
    }
  }

  /** The key id an envelope names, without decrypting it; undefined when it is not an envelope. */
  static keyIdOf(envelope: string): string | undefined {
    const parts = envelope.split('.');
    return parts.length === 5 && parts[0] === ENVELOPE_VERSION && KEY_ID.test(parts[1]!) ? parts[1] : undefined;
  }
}

/** The keyring `vault` configures; secrets resolve from their environment variables or files now. */
export function createVaultCipher(vault: VaultConfig, configDir: string): VaultCipher {
  const keys = vault.keys.map((key) => ({ id: key.id, secret: resolveSecret(key.secret, configDir, `vault.keys ${key.id}`) }));
  return new VaultCipher(keys, vault.activeKey);
}

/** A fresh key secret: 32 random bytes, base64 (what `gatehouse vault generate-key` prints). */
export function generateVaultKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}
