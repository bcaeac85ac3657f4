/**
 * The `auth` and `policy` sections: who may call (the identity-provider tier and the gateway's
 * own short-lived credentials) and what each principal may call. Secrets are never inline:
 * a `secretRef` names an environment variable or a file.
 */
import { z } from 'zod';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Role names; `*` (every grant) is reserved for the anonymous principal of `auth.mode: none`. */
export const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/;

/** Where a secret comes from: an environment variable or a file (read at start, never logged). */
export const secretRefSchema = z.union([
  z.strictObject({ env: z.string().regex(ENV_NAME, 'an environment variable name') }),
  z.strictObject({ file: z.string().min(1).describe('path relative to the config file') }),
]);

/** The enterprise identity provider humans sign in with (OpenID Connect, authorization code + PKCE). */
const idpSchema = z.strictObject({
  /** OpenID discovery runs against `<issuer>/.well-known/openid-configuration`; http only on loopback. */
  issuer: z.url(),
  clientId: z.string().min(1),
  /** Absent: the gateway is a public client of the IdP (PKCE only). */
  clientSecret: secretRefSchema.optional(),
  scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
  /** The ID token / userinfo claim that names the user. */
  userClaim: z.string().min(1).default('sub'),
  /** The claim listing the user's groups; each maps to roles through `groupRoles`. */
  groupsClaim: z.string().min(1).default('groups'),
  /** A claim naming the tenant; when absent every IdP user belongs to `tenant`. */
  tenantClaim: z.string().min(1).optional(),
  tenant: z.string().regex(TENANT_NAME).default('default'),
  groupRoles: z.record(z.string(), z.array(z.string().regex(ROLE_NAME))).default({}),
});

const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:jwt-bearer'] as const;

/** A pre-registered OAuth client (an agent). Dynamically registered clients live in the store. */
const clientSchema = z.strictObject({
  tenant: z.string().regex(TENANT_NAME).default('default'),
  name: z.string().min(1).optional(),
  redirectUris: z.array(z.string().min(1)).default([]),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1).default(['authorization_code', 'refresh_token']),
  tokenEndpointAuthMethod: z.enum(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']).default('none'),
  /** For `client_secret_*`. */
  secret: secretRefSchema.optional(),
  /** For `private_key_jwt`: the client's public keys (a JWKS object, or a file holding one). */
  jwks: z.union([z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }), z.strictObject({ file: z.string().min(1) })]).optional(),
  /** Roles the client holds when it acts as itself (client credentials, API keys). */
  roles: z.array(z.string().regex(ROLE_NAME)).default([]),
  /** Scopes the client may ask for; empty means every supported scope. */
  scopes: z.array(z.string().min(1)).default([]),
});

/** A trusted enterprise IdP whose identity assertions (ID-JAG, RFC 7523 jwt-bearer) mint gateway tokens. */
const trustedIssuerSchema = z.strictObject({
  issuer: z.url(),
  jwksUri: z.url(),
  tenant: z.string().regex(TENANT_NAME).default('default'),
  userClaim: z.string().min(1).default('sub'),
  groupsClaim: z.string().min(1).default('groups'),
  groupRoles: z.record(z.string(), z.array(z.string().regex(ROLE_NAME))).default({}),
  /** Clients allowed to present this issuer's assertions; empty means any client allowed the grant type. */
  clients: z.array(z.string().min(1)).default([]),
});

/** Client certificates (mTLS on the listener) that authenticate an agent, by SHA-256 fingerprint. */
const mtlsIdentitySchema = z.strictObject({
  agent: z.string().min(1),
  tenant: z.string().regex(TENANT_NAME).default('default'),
  roles: z.array(z.string().regex(ROLE_NAME)).default([]),
});

export const authSchema = z.strictObject({
  /** `none`: no authentication (loopback binds only). `oauth`: every MCP request needs a gateway credential. */
  mode: z.enum(['none', 'oauth']).default('none'),
  /**
   * The gateway's public base URL (`https://mcp.example.com`), from which the issuer
   * (`<base>/oauth`) and every resource URL (`<base><path>[/<toolset>]`) are derived. Defaults
   * to `http://<listener.host>:<port>`, which only a loopback bind may use.
   */
  publicUrl: z.url().optional(),
  /** Access tokens are short-lived: revocation and policy changes bite quickly. */
  accessTokenTtlSeconds: z.number().int().min(30).max(86_400).default(300),
  refreshTokenTtlSeconds: z.number().int().min(60).default(14 * 86_400),
  /** Scopes the authorization server offers; grants may require them (step-up). */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default(['mcp', 'mcp:tools', 'mcp:resources', 'mcp:prompts']),
  tenants: z.array(z.string().regex(TENANT_NAME)).min(1).default(['default']),
  idp: idpSchema.optional(),
  clients: z.record(z.string().min(1), clientSchema).default({}),
  registration: z
    .strictObject({
      /** RFC 7591 dynamic client registration (public clients, authorization code + PKCE). */
      dynamic: z.boolean().default(true),
      /** Client ID Metadata Documents: an https URL as client_id, fetched with SSRF protection. */
      clientIdMetadataDocuments: z.boolean().default(true),
      /** Tenant of dynamically registered and CIMD clients. */
      tenant: z.string().regex(TENANT_NAME).default('default'),
      /** Tests only: let CIMD fetch http://127.0.0.1 (private and loopback ranges are otherwise refused). */
      allowLoopbackMetadata: z.boolean().default(false),
    })
    .prefault({}),
  trustedIssuers: z.array(trustedIssuerSchema).default([]),
  apiKeys: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Longest lifetime a key may be given. */
      maxTtlDays: z.number().int().min(1).max(3650).default(365),
    })
    .prefault({}),
  /**
   * On a loopback bind, `start` mints a development API key (12 h, roles below) and prints it
   * once, replacing the previous one. Never on a routable bind.
   */
  devCredential: z
    .strictObject({
      enabled: z.boolean().default(true),
      roles: z.array(z.string().regex(ROLE_NAME)).default(['admin']),
    })
    .prefault({}),
  /** Client certificates accepted as agent credentials; needs `listener.tls.clientCa`. Keys: SHA-256 fingerprints (hex, colons optional). */
  mtls: z.record(z.string().regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/), mtlsIdentitySchema).default({}),
});

/** A constraint on one argument of a granted tool (all given checks must hold). */
const argumentConstraintSchema = z.strictObject({
  /** A regular expression the (string) value must match entirely. */
  pattern: z.string().min(1).optional(),
  enum: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).min(1).optional(),
  maxLength: z.number().int().min(0).optional(),
  minimum: z.number().optional(),
  maximum: z.number().optional(),
  /** The argument must be present. */
  required: z.boolean().default(false),
});

/**
 * One grant: what it allows. Names are matched against the target's own names (not the
 * exposed, possibly prefixed ones); `*` and `prefix*` patterns are allowed.
 */
const grantSchema = z.strictObject({
  targets: z.array(z.string().min(1)).min(1).default(['*']),
  tools: z.array(z.string().min(1)).default([]),
  resources: z.array(z.string().min(1)).default([]),
  prompts: z.array(z.string().min(1)).default([]),
  /** Only through these toolset endpoints; absent means any endpoint, the main one included. */
  toolsets: z.array(z.string().min(1)).optional(),
  /** Token scopes the call needs; a token without them gets 403 insufficient_scope (step-up). */
  scopes: z.array(z.string().min(1)).default([]),
  arguments: z.record(z.string().min(1), argumentConstraintSchema).optional(),
});

export const policySchema = z.strictObject({
  /** Log what would be denied (`policy_decision: would_deny` on the call record and its log line) without denying. */
  observeOnly: z.boolean().default(false),
  roles: z.record(z.string().regex(ROLE_NAME), z.strictObject({ description: z.string().optional(), grants: z.array(grantSchema).default([]) })).default({
    admin: { grants: [{ targets: ['*'], tools: ['*'], resources: ['*'], prompts: ['*'], scopes: [] }] },
  }),
  /** Roles given to users and agents directly (beyond IdP groups and client roles). */
  bindings: z
    .array(
      z.strictObject({
        tenant: z.string().regex(TENANT_NAME).default('default'),
        users: z.array(z.string().min(1)).default([]),
        agents: z.array(z.string().min(1)).default([]),
        roles: z.array(z.string().regex(ROLE_NAME)).min(1),
      }),
    )
    .default([]),
});

export type AuthConfig = z.output<typeof authSchema>;
export type PolicyConfig = z.output<typeof policySchema>;
export type GrantConfig = z.output<typeof grantSchema>;
export type ArgumentConstraint = z.output<typeof argumentConstraintSchema>;
export type SecretRef = z.output<typeof secretRefSchema>;
