/**
 * The third auth tier in config: the `vault` section (the keys that encrypt upstream tokens at
 * rest, and the refresh job) and each target's `credentials` (how the gateway authenticates to
 * that upstream). Secrets are never inline: a `secretRef` names an environment variable or a
 * file, read at start and held only in memory.
 */
import { z } from 'zod';
import { secretRefSchema } from './auth-schema.ts';

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export const vaultSchema = z.strictObject({
  /**
   * AES-256-GCM keys (32 random bytes, base64) that encrypt upstream tokens and client
   * registrations at rest. Every listed key can decrypt; `activeKey` encrypts. Rotation: add a
   * key, make it active, run `gatehouse vault rotate` (or `POST /vault/rotate` on the admin
   * listener), then drop the old key.
   */
  keys: z.array(z.strictObject({ id: z.string().regex(KEY_ID), secret: secretRefSchema })).default([]),
  /** The key new writes use; default the last one listed. */
  activeKey: z.string().regex(KEY_ID).optional(),
  refresh: z
    .strictObject({
      /** Refresh a token this many seconds before it expires. */
      leadSeconds: z.number().int().min(0).default(120),
      /** How often the refresh job looks for tokens due. */
      intervalMs: z.number().int().min(100).default(15_000),
      /** Backoff after a failed refresh: doubles from `initialBackoffMs` up to `maxBackoffMs`. */
      initialBackoffMs: z.number().int().min(10).default(5_000),
      maxBackoffMs: z.number().int().min(10).default(15 * 60_000),
      /** Failed attempts (network, 5xx) before the credential is marked as needing re-consent. */
      maxFailures: z.number().int().min(1).default(6),
    })
    .prefault({}),
  /**
   * Discovery fetches (protected-resource and authorization-server metadata, client metadata)
   * refuse private, loopback and link-local addresses and plain http. `allowLoopback` admits
   * http://127.0.0.1 / localhost upstream authorization servers: development and tests only.
   */
  allowLoopbackAuthorizationServers: z.boolean().default(false),
});

/** A pre-registered OAuth client at the upstream's authorization server. */
const upstreamClientSchema = z.strictObject({
  id: z.string().min(1),
  /** Absent: a public client (PKCE only), or `private_key_jwt` with `privateKey`. */
  secret: secretRefSchema.optional(),
  /** PEM (PKCS#8) private key for `private_key_jwt`. */
  privateKey: secretRefSchema.optional(),
  signingAlgorithm: z.enum(['ES256', 'RS256', 'PS256', 'EdDSA']).default('ES256'),
  /** Default: chosen from what the authorization server advertises and what the client holds. */
  authMethod: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']).optional(),
});

const noneCredentials = z.strictObject({ mode: z.literal('none') });

/** One secret for every call: a header on HTTP targets, an environment variable for stdio. */
const staticCredentials = z.strictObject({
  mode: z.literal('static'),
  secret: secretRefSchema,
  /** HTTP targets: the header that carries it. */
  header: z.string().regex(HEADER_NAME).default('authorization'),
  /** HTTP targets: prefix before the secret (`Bearer`); empty sends the secret alone. */
  scheme: z.string().default('Bearer'),
  /** stdio targets (required there): the child's environment variable. */
  envVar: z.string().regex(ENV_NAME).optional(),
});

/** The gateway's own identity at the upstream: OAuth client credentials (RFC 6749 §4.4). */
const serviceCredentials = z.strictObject({
  mode: z.literal('client-credentials'),
  client: upstreamClientSchema,
  scopes: z.array(z.string().regex(SCOPE)).default([]),
  /** The authorization server's issuer; default: discovered from the upstream's 401 (RFC 9728). */
  authorizationServer: z.url().optional(),
});

/**
 * RFC 8693 token exchange instead of a browser consent. Where the subject token comes from:
 *
 * - `gateway-assertion`: the gateway signs a short-lived assertion of the user (its own
 *   issuer and keys, the agent as `act`; the composition root supplies the signer) and
 *   presents it as the subject token at the upstream authorization server's token endpoint,
 *   which must trust the gateway's issuer. One request: token exchange at the upstream AS.
 * - `idp-id-token`: Enterprise-Managed Authorization (SEP-990, "cross-app access"). The user's
 *   ID token from the enterprise IdP (kept from the user's IdP login; the composition root
 *   supplies it) is exchanged at the IdP's token endpoint (RFC 8693, requested type ID-JAG)
 *   for an identity assertion grant naming the upstream's authorization server and resource,
 *   which the gateway then redeems at that server with the RFC 7523 `jwt-bearer` grant,
 *   authenticating as its pre-registered `client`. Needs `idp`.
 *
 * Either way the target's `client` (pre-registered at the upstream AS) is required.
 */
const tokenExchangeSchema = z
  .strictObject({
    subjectToken: z.enum(['gateway-assertion', 'idp-id-token']).default('gateway-assertion'),
    /** `gateway-assertion`: the audience of the exchange; default the authorization server's issuer. */
    audience: z.string().min(1).optional(),
    /** `gateway-assertion`: the token type asked for. */
    requestedTokenType: z.string().default('urn:ietf:params:oauth:token-type:access_token'),
    /** `idp-id-token`: the enterprise IdP that issues identity assertion grants (ID-JAG). */
    idp: z
      .strictObject({
        /** The IdP's token endpoint; default discovered from `issuer` (RFC 8414, then OpenID). */
        tokenEndpoint: z.url().optional(),
        issuer: z.url().optional(),
        /** The gateway's client id at the IdP. */
        clientId: z.string().min(1),
        /** Absent: a public client at the IdP. */
        clientSecret: secretRefSchema.optional(),
      })
      .refine((idp) => idp.tokenEndpoint !== undefined || idp.issuer !== undefined, { message: 'idp needs tokenEndpoint or issuer' })
      .optional(),
  })
  .refine((x) => x.subjectToken !== 'idp-id-token' || x.idp !== undefined, { message: 'subjectToken idp-id-token needs idp', path: ['idp'] });

/**
 * Per-user OAuth: each user authorizes once (URL elicitation to the gateway's connect page),
 * the gateway holds that user's upstream tokens and uses them for that user's calls only.
 */
const userCredentials = z
  .strictObject({
    mode: z.literal('user-oauth'),
    /** Pre-registered client; otherwise a Client ID Metadata Document, otherwise dynamic registration. */
    client: upstreamClientSchema.optional(),
    /** An https URL serving this gateway's client metadata (CIMD), used when the server supports it. */
    clientMetadataUrl: z.url().optional(),
    /** Scopes to ask for; default from the upstream's challenge, then its metadata (MCP scope selection). */
    scopes: z.array(z.string().regex(SCOPE)).optional(),
    /** Shown on the consent page and in the elicitation message. */
    displayName: z.string().min(1).max(80).optional(),
    /**
     * The authorization server's issuer the pre-registered `client` belongs to: its secret is
     * then never sent to another one (SEP-2352). Default: whatever the upstream names (RFC 9728).
     */
    authorizationServer: z.url().optional(),
    tokenExchange: tokenExchangeSchema.optional(),
  })
  .refine((x) => x.tokenExchange === undefined || x.client !== undefined, { message: 'tokenExchange needs a pre-registered client', path: ['client'] });

export const targetCredentialsSchema = z.discriminatedUnion('mode', [noneCredentials, staticCredentials, serviceCredentials, userCredentials]);

export type VaultConfig = z.output<typeof vaultSchema>;
export type TargetCredentials = z.output<typeof targetCredentialsSchema>;
export type UpstreamClientConfig = z.output<typeof upstreamClientSchema>;
export type CredentialMode = TargetCredentials['mode'];
