/**
 * The third auth tier as the gateway runs it: the credential vault (once the store is open),
 * the upstream authorizer of the current config, the connect-page flows and routes, and the
 * background refresh job. The gateway holds one; nothing here runs per call except through
 * the credentials the registry hands to transports.
 *
 * The authorizer is rebuilt only when a reload changes what it is built from (the targets'
 * credentials, the vault settings): it holds per-user credential state, which a rebuild
 * forgets (consents under way are kept here and survive it). `generation` tells the registry which connections carry an older
 * authorizer's credentials, so those reconnect with the new ones.
 */
import { isDeepStrictEqual } from 'node:util';
import { GatehouseError } from '../protocol/errors.ts';
import { repeatEvery, type Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import type { Store } from '../storage/store.ts';
import { SqlStore } from '../storage/sql-store.ts';
import { createVaultCipher } from '../vault/vault-cipher.ts';
import { createCredentialVault, type CredentialSubject, type CredentialVault } from '../vault/credential-vault.ts';
import type { BrowserIdentity } from '../auth/connect-identity.ts';
import type { SubjectAssertionInput } from '../auth/authorization-server.ts';
import type { ConsentElicitations } from '../routing/upstream-authorization.ts';
import { PendingAuthorizations } from './pending-authorizations.ts';
import { credentialRoutes } from '../admin/credential-routes.ts';
import type { AdminRoute } from '../admin/admin-listener.ts';
import type { AuditService } from '../audit/audit-service.ts';
import { ConsentFlows } from './consent-flows.ts';
import { createConnectRoutes, type ConnectRoutes } from './connect-routes.ts';
import type { UpstreamAuthorizations, UserRef } from './upstream-credential.ts';
import { IdentityTokens, identityTokenSink } from './identity-tokens.ts';
import type { IdentityTokenSink } from '../auth/idp-login.ts';
import { actsPerAgent, userOfSubject } from './user-subject.ts';

export interface UpstreamAuthRuntimeOptions {
  clock: Clock;
  logger: GatewayLogger;
  config(): Readonly<GatehouseConfig>;
  /** Where `secretRef.file` paths resolve from. */
  configDir: string;
  publicBase(): string;
  /**
   * The gateway's own authorization server (`auth.mode: oauth`): its browser identity check for
   * the connect page, and its signer of `gateway-assertion` subject tokens. Read per use: it
   * starts after the targets; without one, those fail closed.
   */
  authorizationServer(): { browserIdentity?: BrowserIdentity; mintSubjectAssertion?(input: SubjectAssertionInput): Promise<string> } | undefined;
  /** The session a completed consent should be told about (`notifications/elicitation/complete`). */
  notifySession(sessionId: string, elicitationId: string): void;
  /** The registry's per-user connections, which follow what happens to users' credentials. */
  users: {
    /** A user now holds a fresh token at a target: reconnect them (and discover a new target). */
    userAuthorized(target: string, who: UserRef): Promise<void>;
    /** A user's credential at a target is gone: close their connection. */
    forgetUser(target: string, who: UserRef): Promise<void>;
    /** Run with the refresh job: close connections idle longer than the session idle timeout. */
    sweepIdleUsers(idleMs: number): Promise<void>;
  };
}

/** What the authorizer is built from: a reload that leaves this alone keeps it. */
function credentialInputs(config: Readonly<GatehouseConfig>): unknown {
  return {
    shared: sharedInputs(config),
    targets: Object.entries(config.targets)
      .filter(([, t]) => t.credentials.mode !== 'none')
      .map(([name, t]) => [name, t.tenant, t.transport, t.transport === 'stdio' ? t.command : t.url, t.credentials]),
  };
}

/**
 * What every credential depends on. A change here reconnects every target with credentials;
 * a change to one target's own settings restarts only that target (the registry compares it).
 */
function sharedInputs(config: Readonly<GatehouseConfig>): unknown {
  return { vault: config.vault, publicUrl: config.auth.publicUrl };
}

export class UpstreamAuthRuntime {
  readonly flows: ConsentFlows;
  readonly routes: ConnectRoutes;
  /** Where the IdP login keeps ID tokens: this tier's vault, as the config of the moment has it. */
  readonly identityTokenSink: IdentityTokenSink;
  private readonly options: UpstreamAuthRuntimeOptions;
  private vaultValue: CredentialVault | undefined;
  /** Users' IdP ID tokens (cross-app access), on the vault. */
  private identityTokens: IdentityTokens | undefined;
  private authorizer: (UpstreamAuthorizations & { close(): void }) | undefined;
  private builtFrom: unknown;
  private sharedFrom: unknown;
  private vaultFrom: unknown;
  private store: Store | undefined;
  /** The refresh pass under way, if any (stop() waits for it). */
  private refreshPass: Promise<void> | undefined;
  private generationValue = 0;
  private stopRefresh: (() => void) | undefined;
  /** Consents under way outlive an authorizer rebuild: a reload mid-consent strands nobody. */
  private readonly pending: PendingAuthorizations;

  constructor(options: UpstreamAuthRuntimeOptions) {
    this.options = options;
    this.pending = new PendingAuthorizations(options.clock);
    this.identityTokenSink = identityTokenSink({ tokens: () => this.identityTokens, config: options.config, logger: options.logger });
    this.flows = new ConsentFlows({
      clock: options.clock,
      publicBase: options.publicBase,
      config: options.config,
      onListenerError: (err) => options.logger.warn({ kind: 'upstream-auth', err }, 'a consent completion listener failed'),
    });
    this.flows.onComplete((flow) => {
      if (flow.status !== 'completed') return;
      // The agent counts only at token-exchange targets (the registry drops it elsewhere).
      void options.users.userAuthorized(flow.target, { tenant: flow.tenant, user: flow.user, agent: flow.agent });
      for (const session of flow.sessions) options.notifySession(session, flow.elicitationId);
    });
    this.routes = createConnectRoutes({
      flows: this.flows,
      clock: options.clock,
      config: options.config,
      publicBase: options.publicBase,
      upstream: () => this.authorizer,
      identity: () => options.authorizationServer()?.browserIdentity,
      logger: options.logger,
    });
  }

  /** The vault, once start() found keys and a SQL store. */
  get vault(): CredentialVault | undefined {
    return this.vaultValue;
  }

  /** The authorizer of the current config (the registry's credential source). */
  get authorizations(): UpstreamAuthorizations | undefined {
    return this.authorizer;
  }

  /** Bumped when what every credential depends on changed (vault, public URL): credentialed targets reconnect. */
  get generation(): number {
    return this.generationValue;
  }

  /** Flows as routing sees them. */
  get elicitations(): ConsentElicitations {
    return this.flows;
  }

  /** The admin listener's routes over this tier (credentials, operator links, key rotation). */
  adminRoutes(audit: () => AuditService | undefined): AdminRoute[] {
    return credentialRoutes({ vault: () => this.vaultValue, audit, connect: (r) => this.startConnect(r), revoke: (f) => this.revoke(f) });
  }

  /**
   * An operator-started flow (the first user of a target): the target must be a `user-oauth` one
   * of that tenant. At a token-exchange target there is nothing for the user to approve: the
   * flow ends completed at once, which opens that user × agent's connection (the exchange runs
   * now, no browser) and with it the target's discovery; its link only says so.
   */
  startConnect(request: { tenant: string; target: string; user: string; agent: string }): { elicitationId: string; url: string; expiresAt: number } {
    const target = this.options.config().targets[request.target];
    if (target === undefined || target.credentials.mode !== 'user-oauth' || target.tenant !== request.tenant) {
      throw new GatehouseError('INVALID_PARAMS', `target ${request.target} is not a user-oauth target of tenant ${request.tenant}`);
    }
    const flow = this.flows.create({ ...request, reason: 'not_authorized' });
    if (actsPerAgent(target.credentials)) this.flows.complete(flow.elicitationId, 'completed');
    return flow;
  }

  /**
   * An operator revokes credentials (admin DELETE): each user's tokens are revoked upstream
   * (RFC 7009, when the server offers it) and forgotten in memory too, and their connection
   * closes; otherwise a live connection would keep using, and refresh back into the vault, a
   * token the operator deleted. Then the rows go. At a token-exchange target, where rows are
   * per user × agent, `user:<id>` names every agent of that user.
   */
  async revoke(filter: { tenant: string; target: string; subject?: CredentialSubject | undefined }): Promise<number> {
    const vault = this.vaultValue;
    if (vault === undefined) throw new GatehouseError('NOT_FOUND', 'no credential vault runs here (vault.keys is empty)');
    const credentials = this.options.config().targets[filter.target]?.credentials;
    const perAgent = credentials !== undefined && actsPerAgent(credentials);
    const named = filter.subject === undefined ? undefined : userOfSubject(filter.tenant, filter.subject, perAgent);
    const everyAgent = perAgent && named !== undefined && named.agent === undefined;
    const rows = everyAgent
      ? (await vault.list({ tenant: filter.tenant, target: filter.target })).filter((r) => userOfSubject(r.key.tenant, r.key.subject, true)?.user === named.user)
      : await vault.list(filter);
    const subjects = [...new Set(rows.map((r) => r.key.subject))];
    for (const subject of subjects.filter((s) => rows.some((r) => r.key.subject === s && r.key.kind === 'oauth-tokens'))) {
      const who = userOfSubject(filter.tenant, subject, perAgent);
      if (who === undefined) continue; // the service identity: its rows are deleted below all the same
      await this.authorizer?.disconnectUser(filter.target, who).catch(() => false);
      await this.options.users.forgetUser(filter.target, who);
    }
    if (everyAgent) for (const subject of subjects) await vault.deleteWhere({ tenant: filter.tenant, target: filter.target, subject });
    else await vault.deleteWhere(filter);
    // What stays in memory (the service identity's token, a registration) is read again at once.
    this.authorizer?.invalidate?.({ tenant: filter.tenant, target: filter.target, ...(filter.subject === undefined || everyAgent ? {} : { subject: filter.subject }) });
    // What the operator named and is now gone (disconnectUser already removed the users' rows).
    return rows.length;
  }

  /**
   * Open the vault (a bad key refuses the start: nothing would decrypt), build the authorizer
   * and start the refresh job. Without `vault.keys` there is no vault: static credentials still
   * work, OAuth modes fail closed.
   */
  async start(store: Store | undefined): Promise<void> {
    this.store = store;
    const config = this.options.config();
    this.openVault(config);
    await this.build(config);
    this.startRefresh(config);
  }

  /**
   * A new config. Vault keys and refresh settings apply here too (a rotation needs the new
   * active key in the running gateway, not only in the CLI); the authorizer is rebuilt when
   * its inputs changed. Throws, before changing anything, when the new keys are unusable.
   */
  async reload(config: Readonly<GatehouseConfig>): Promise<boolean> {
    const vaultChanged = !isDeepStrictEqual(config.vault, this.vaultFrom);
    if (vaultChanged) {
      // Checked first: a key that cannot be read must not leave the gateway without a vault.
      if (config.vault.keys.length > 0) createVaultCipher(config.vault, this.options.configDir);
      this.openVault(config);
      this.stopRefresh?.();
      this.startRefresh(config);
    }
    if (!vaultChanged && isDeepStrictEqual(credentialInputs(config), this.builtFrom)) return false;
    await this.build(config);
    return true;
  }

  /** Stop the refresh job, waiting for a pass under way (its rotated tokens must reach the store before it closes). */
  async stop(): Promise<void> {
    this.stopRefresh?.();
    this.stopRefresh = undefined;
    await this.refreshPass;
    this.authorizer?.close();
  }

  private openVault(config: Readonly<GatehouseConfig>): void {
    this.vaultFrom = config.vault;
    this.vaultValue = undefined;
    this.identityTokens = undefined;
    if (config.vault.keys.length === 0) return;
    const cipher = createVaultCipher(config.vault, this.options.configDir);
    if (this.store instanceof SqlStore) {
      this.vaultValue = createCredentialVault(this.store.credentialTable(), cipher, this.options.clock);
      this.identityTokens = new IdentityTokens(this.vaultValue, this.options.clock);
    } else {
      // Without a SQL store at start (no keys then, audit and auth off) there is nowhere to keep tokens until a restart.
      this.options.logger.warn({ kind: 'upstream-auth' }, 'vault keys are configured but no store keeps credentials (restart to open one); OAuth upstream credentials fail closed');
    }
  }

  private startRefresh(config: Readonly<GatehouseConfig>): void {
    this.stopRefresh = repeatEvery(
      this.options.clock,
      config.vault.refresh.intervalMs,
      () => (this.refreshPass = this.refreshOnce()),
      (err) => this.options.logger.warn({ kind: 'upstream-auth', err }, 'upstream credential refresh pass failed'),
    );
  }

  private async refreshOnce(): Promise<void> {
    try {
      await this.options.users.sweepIdleUsers(this.options.config().sessions.idleTimeoutMs);
      const outcome = await this.authorizer?.refreshDue();
      if (outcome !== undefined && outcome.refreshed + outcome.failed + outcome.needsConsent > 0) {
        this.options.logger.info({ kind: 'upstream-auth', ...outcome }, 'upstream credential refresh pass');
      }
    } finally {
      this.refreshPass = undefined;
    }
  }

  private async build(config: Readonly<GatehouseConfig>): Promise<void> {
    const previous = this.authorizer;
    const logger = this.options.logger;
    // Loaded on demand: the OAuth client (the MCP SDK's) costs memory a gateway without upstream
    // credentials never needs.
    const needed = Object.values(config.targets).some((t) => t.credentials.mode !== 'none');
    const { createUpstreamAuthorizer } = needed ? await import('./upstream-authorizer.ts') : { createUpstreamAuthorizer: undefined };
    this.authorizer = createUpstreamAuthorizer?.(config as GatehouseConfig, {
      vault: this.vaultValue,
      clock: this.options.clock,
      configDir: this.options.configDir,
      publicUrl: this.options.publicBase(),
      pending: this.pending,
      log: (level, message, fields) => logger[level]({ kind: 'upstream-auth', ...fields }, message),
      subjectToken: (who, audience) => {
        const as = this.options.authorizationServer();
        if (as?.mintSubjectAssertion === undefined) return Promise.reject(new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', 'no authorization server runs here to sign subject assertions (auth.mode oauth) (no_signer)'));
        return as.mintSubjectAssertion({ tenant: who.tenant, user: who.user, agent: who.agent, audience });
      },
      identityToken: (who) => this.identityTokens?.current(who) ?? Promise.resolve(undefined),
    });
    if (!isDeepStrictEqual(sharedInputs(config), this.sharedFrom)) this.generationValue++;
    this.sharedFrom = sharedInputs(config);
    this.builtFrom = credentialInputs(config);
    previous?.close();
  }
}
