/**
 * The part of oidc-provider 9 that Gatehouse uses, typed by hand: the package ships no types
 * and @types/oidc-provider is not a dependency. Only what src/auth/ calls is declared; widen
 * it here, beside the real behaviour (node_modules/oidc-provider/lib), when a new call is needed.
 */
declare module 'oidc-provider' {
  import type { KeyObject } from 'node:crypto';
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** oidc-provider's per-request state on the Koa context. */
  export interface OIDCContext {
    readonly route?: string;
    readonly params?: Record<string, unknown>;
    body?: Record<string, unknown>;
    readonly client?: ClientInstance;
    readonly entities: Record<string, unknown>;
    /** Authorization requests (loadExistingGrant): the provider, the browser's session, the signed-in account, the interaction result. */
    readonly provider?: Provider;
    readonly session?: { readonly accountId?: string; grantIdFor(clientId: string): string | undefined };
    readonly account?: { readonly accountId: string };
    readonly result?: InteractionResults;
  }

  /** The subset of the Koa context used by middleware and hooks. */
  export interface KoaContextWithOIDC {
    method: string;
    path: string;
    status: number;
    body: unknown;
    readonly req: IncomingMessage;
    readonly res: ServerResponse;
    oidc?: OIDCContext;
    set(field: string, value: string): void;
  }

  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>;

  export interface ClientInstance {
    readonly clientId: string;
    readonly clientAuthMethod: string;
    readonly clientSecret?: string;
    metadata(): Record<string, unknown>;
    grantTypeAllowed(type: string): boolean;
  }

  /** A token or code model instance as hooks see it. */
  export interface TokenInstance {
    readonly kind: string;
    readonly jti: string;
    readonly clientId?: string;
    readonly accountId?: string;
    readonly grantId?: string;
    readonly scope?: string;
    readonly exp?: number;
  }

  export interface GrantInstance {
    readonly jti?: string;
    accountId?: string;
    clientId?: string;
    getOIDCScope(): string;
    getResourceScope(resource: string): string;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(ttl?: number): Promise<string>;
  }

  /** An authorization code as stored (the upstream connect page redeems its own client's codes in process). */
  export interface AuthorizationCodeInstance {
    readonly clientId: string;
    readonly accountId: string;
    readonly redirectUri: string;
    readonly codeChallenge?: string;
    readonly codeChallengeMethod?: string;
    /** Epoch seconds when consumed; absent while unused. */
    readonly consumed?: number;
    readonly isExpired: boolean;
    consume(): Promise<void>;
  }

  export interface InteractionDetails {
    readonly uid: string;
    readonly prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    readonly params: Record<string, unknown>;
    readonly session?: { accountId: string };
    readonly grantId?: string;
    readonly lastSubmission?: Record<string, unknown>;
  }

  export interface InteractionResults {
    login?: { accountId: string; remember?: boolean; amr?: string[]; acr?: string; ts?: number };
    consent?: { grantId?: string };
    error?: string;
    error_description?: string;
    [key: string]: unknown;
  }

  /** The adapter contract (oidc-provider calls one instance per model name). */
  export interface Adapter {
    upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>;
    find(id: string): Promise<Record<string, unknown> | undefined>;
    findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined>;
    findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export class OIDCProviderError extends Error {
    constructor(status: number, message: string);
    status: number;
    statusCode: number;
    error: string;
    error_description?: string;
    expose: boolean;
  }

  type ErrorClass = new (description?: string, detail?: string) => OIDCProviderError;

  export const errors: {
    InvalidTarget: ErrorClass;
    InvalidClientMetadata: ErrorClass;
    InvalidRequest: ErrorClass;
    InvalidGrant: ErrorClass;
    InvalidClient: ErrorClass;
    InvalidScope: ErrorClass;
    UnauthorizedClient: ErrorClass;
    AccessDenied: ErrorClass;
  };

  /** A signing key whose private part never enters oidc-provider (features.externalSigningSupport). */
  export class ExternalSigningKey {
    get kid(): string | undefined;
    set kid(value: string | undefined);
    get alg(): string | undefined;
    set alg(value: string | undefined);
    get kty(): string | undefined;
    get crv(): string | undefined;
    get x(): string | undefined;
    get y(): string | undefined;
    keyObject(): KeyObject;
    sign(data: Buffer): Promise<Buffer>;
  }

  export type Configuration = Record<string, unknown>;

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: Middleware): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: InteractionResults, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
    interactionResult(req: IncomingMessage, res: ServerResponse, result: InteractionResults, options?: { mergeWithLastSubmission?: boolean }): Promise<string>;
    registerGrantType(name: string, handler: Middleware, parameters?: string | string[] | Set<string>, allowedDuplicateParameters?: string | string[] | Set<string>): void;
    readonly Grant: {
      new (properties: { accountId: string; clientId: string; jti?: string }): GrantInstance;
      find(id: string): Promise<GrantInstance | undefined>;
    };
    readonly Client: { find(id: string): Promise<ClientInstance | undefined> };
    readonly AuthorizationCode: { find(value: string): Promise<AuthorizationCodeInstance | undefined> };
    /** Store-backed single-use check: false when `jti` from `iss` was already seen (kept until `exp`, epoch seconds). */
    readonly ReplayDetection: { unique(iss: string, jti: string, exp: number): Promise<boolean> };
  }

  export default Provider;
}
