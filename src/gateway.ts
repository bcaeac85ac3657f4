/**
 * The gateway: start, reload(config), drain and stop. It owns the current snapshot and
 * catalog, wires the registry's discovery to the downstream change bus, and composes the
 * downstream endpoints. Nothing here runs per call.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import type { GatehouseConfig } from './config/schema.ts';
import { createSnapshot, type Snapshot } from './config/snapshot.ts';
import { buildCatalog, type Catalog } from './catalog/catalog.ts';
import { buildCallPipeline } from './pipeline/call-pipeline.ts';
import { compilePolicy } from './auth/policy.ts';
import { UpstreamRegistry, type TargetHealth } from './upstream/registry.ts';
import { SubscriptionIndex } from './routing/subscriptions.ts';
import { InputRequiredBroker } from './routing/input-required.ts';
import { CallRunner } from './downstream/call-runner.ts';
import { ChangeBus } from './downstream/change-bus.ts';
import { SessionStore } from './downstream/session-store.ts';
import { StreamableHttpEndpoint } from './downstream/streamable-http.ts';
import { LegacySseEndpoint } from './downstream/legacy-sse.ts';
import { HttpListener } from './downstream/http-listener.ts';
import type { CallRecordListener } from './telemetry/call-record.ts';
import type { GatewayLogger } from './telemetry/log.ts';
import { callLogLine } from './telemetry/log.ts';
import { GatewayTelemetry } from './telemetry/telemetry.ts';
import { AdminListener } from './admin/admin-listener.ts';
import type { Store } from './storage/store.ts';
import { AuditService } from './audit/audit-service.ts';
import { auditRoutes } from './admin/audit-routes.ts';
import { authRoutes } from './admin/auth-routes.ts';
import { openStore } from './storage/open-store.ts';
import { GatehouseError } from './protocol/errors.ts';
import { readiness } from './readiness.ts';
import { Authenticator } from './auth/authenticate.ts';
import { ApiKeyService } from './auth/api-keys.ts';
import { BearerVerifier, type TokenIssuerView } from './auth/bearer-token.ts';
import { listenerTlsOptions } from './auth/client-certificate.ts';
import { protectedResourceMetadata, type ResourceLocation } from './auth/protected-resource.ts';
import type { Principal } from './auth/principal.ts';
import { isToolsetVisible } from './auth/policy.ts';
import { isLoopbackHost } from './config/normalize.ts';
import type { AuthorizationServerRoutes } from './downstream/http-listener.ts';
import { SqlStore } from './storage/sql-store.ts';
import { TASK_ID_KEY_BYTES, TaskIdKey } from './routing/tasks.ts';
import { UpstreamAuthRuntime } from './upstream-auth/upstream-auth-runtime.ts';
import type { BrowserIdentity } from './auth/connect-identity.ts';
import type { IdentityTokenSink } from './auth/idp-login.ts';
import type { SubjectAssertionInput } from './auth/authorization-server.ts';

/** The row of `gatehouse_gateway_secret` holding the task id key. */
const TASK_ID_KEY_SECRET = 'task-id-key';

/** The OAuth authorization server as the gateway mounts it: its HTTP routes, its token view, and its teardown. */
export type AuthorizationServerMount = AuthorizationServerRoutes &
  TokenIssuerView & { close?(): Promise<void>; rotateSigningKeys?(): Promise<{ kid: string }>; browserIdentity?: BrowserIdentity; mintSubjectAssertion?(input: SubjectAssertionInput): Promise<string> };

/** What the authorization server is built from, once the store is open and the port bound. */
export interface AuthorizationServerContext {
  store: Store;
  config: () => Readonly<GatehouseConfig>;
  /** `auth.publicUrl`, or the loopback URL of the bound listener; the issuer is `<publicBase>/oauth`. */
  publicBase: string;
  clock: Clock;
  logger: GatewayLogger;
  /** Where the IdP login keeps users' ID tokens (cross-app access upstreams): the upstream tier's vault. */
  identityTokens: IdentityTokenSink;
}

export interface GatewayOptions {
  config: GatehouseConfig;
  logger: GatewayLogger;
  clock?: Clock;
  /** Extra call-record subscribers (tests, later audit and metrics). */
  recordListeners?: CallRecordListener[];
  /** The store to use instead of opening the configured one (tests, tools). Not closed by stop(). */
  store?: Store;
  /** Builds the OAuth authorization server under `auth.mode: oauth` (its routes are mounted, its keys verify tokens). */
  authorizationServer?: (context: AuthorizationServerContext) => Promise<AuthorizationServerMount> | AuthorizationServerMount;
  /** Tests: verify access tokens against this issuer instead of a mounted authorization server. */
  tokenIssuer?: TokenIssuerView;
  /** The config file's directory: `secretRef.file` paths of upstream credentials resolve from it. */
  configDir?: string;
}

export class Gateway {
  private snapshotValue: Snapshot;
  private catalogValue: Catalog;
  private readonly clock: Clock;
  private readonly logger: GatewayLogger;
  private readonly registry: UpstreamRegistry;
  private readonly subscriptions = new SubscriptionIndex((target, uri) => this.registry.unsubscribe(target, uri));
  private readonly changes = new ChangeBus();
  private readonly inputs: InputRequiredBroker;
  private readonly sessions: SessionStore;
  private readonly runner: CallRunner;
  private readonly listener: HttpListener;
  private readonly recordListeners: CallRecordListener[];
  /** Metrics, traces and SLOs (record subscribers); the audit writer reports into `telemetry.metrics`. */
  readonly telemetry: GatewayTelemetry;
  /** The admin listener; features add their routes to it (`admin.addRoute`). */
  readonly admin: AdminListener;
  private adminPortValue = 0;
  private readonly options: GatewayOptions;
  private portValue = 0;
  private store: Store | undefined;
  private audit: AuditService | undefined;
  private stopping: Promise<void> | undefined;
  private readonly authenticator: Authenticator;
  private bearer: BearerVerifier | undefined;
  private authorizationServer: AuthorizationServerMount | undefined;
  private apiKeyService: ApiKeyService | undefined;
  /**
   * Binds the task ids agents get to their principal. Random until start() loads the key
   * shared through the store; a gateway without a store (audit off, `auth.mode: none`) keeps
   * the random one, so its task ids do not survive a restart and no other process routes them.
   */
  private readonly taskIdKey = new TaskIdKey();
  /** The third auth tier: vault, upstream authorizer, connect page, refresh job. */
  private readonly upstreamAuth: UpstreamAuthRuntime;

  constructor(options: GatewayOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    const log = callLogLine(this.logger);
    // Telemetry subscribes to call records like the log line does; it reads gateway state lazily.
    this.telemetry = new GatewayTelemetry({
      config: options.config,
      clock: this.clock,
      sources: {
        targets: () => this.registry.health(),
        sessions: () => this.sessions.size,
        isTool: (name) => this.catalogValue.all.toolByName.has(name),
        agentLabels: () => this.snapshotValue.config.telemetry.metrics.agentLabels,
      },
      onAlertDeliveryError: (slo, err) => this.logger.warn({ kind: 'slo', slo, err }, `SLO alert webhook of ${slo} failed`),
    });
    this.recordListeners = [log, ...this.telemetry.listeners, ...(options.recordListeners ?? [])];
    this.registry = new UpstreamRegistry(this.clock, {
      onListingsChanged: (kinds) => this.rebuildCatalog(kinds),
      onResourceUpdated: (target, params) => {
        const uri = params['uri'];
        if (typeof uri === 'string') this.changes.publish({ kind: 'resource_updated', target, uri, params });
      },
      onTargetLog: (target, level, message, fields) => this.logger[level]({ kind: 'target', target, ...fields }, message),
      credentials: () => this.upstreamAuth.authorizations,
      credentialGeneration: () => this.upstreamAuth.generation,
    });
    this.upstreamAuth = new UpstreamAuthRuntime({
      clock: this.clock,
      logger: this.logger,
      config: () => this.snapshotValue.config,
      configDir: options.configDir ?? process.cwd(),
      publicBase: () => this.publicBase,
      authorizationServer: () => this.authorizationServer,
      notifySession: (id, elicitationId) =>
        this.sessions.peek(id)?.session.unsolicited?.send({ jsonrpc: '2.0', method: 'notifications/elicitation/complete', params: { elicitationId } }),
      users: this.registry,
    });
    this.inputs = new InputRequiredBroker(this.clock, options.config.sessions.inputRequiredTtlMs);
    this.catalogValue = buildCatalog([], options.config);
    this.snapshotValue = this.compile(options.config, 1);
    const s = options.config.sessions;
    this.sessions = new SessionStore({ clock: this.clock, idleTimeoutMs: s.idleTimeoutMs, maxSessions: s.maxSessions, replayBufferEvents: s.replayBufferEvents });
    this.runner = new CallRunner({
      snapshot: () => this.snapshotValue,
      clock: this.clock,
      tracer: this.telemetry.tracer,
      // Bound late: the audit service exists once start() has opened the store.
      audit: options.config.audit.enabled ? { recordCall: (record, request, session) => this.requireAudit().trail.recordCall(record, request, session) } : undefined,
      emit: (record) => {
        for (const listener of this.recordListeners) listener(record);
      },
    });
    this.authenticator = new Authenticator({
      config: () => this.snapshotValue.config,
      location: () => this.location(),
      bearer: () => this.bearer,
      apiKeys: () => (this.snapshotValue.config.auth.apiKeys.enabled ? this.apiKeyService : undefined),
    });
    const limits = (): { maxBodyBytes: number; maxJsonDepth: number } => this.snapshotValue.config.listener;
    const scopeChallenge = (toolset: string | undefined, scope: string | undefined): Record<string, string> =>
      this.authenticator.enabled ? this.authenticator.challenge(toolset, 'insufficient_scope', scope) : {};
    const endpointDeps = { runner: this.runner, sessions: this.sessions, changes: this.changes, clock: this.clock, limits, scopeChallenge };
    this.listener = new HttpListener({
      streamable: new StreamableHttpEndpoint(endpointDeps),
      legacySse: new LegacySseEndpoint(endpointDeps),
      authenticator: this.authenticator,
      authorizationServer: () => this.authorizationServer,
      upstreamAuth: () => this.upstreamAuth.routes,
      protectedResource: (toolset) => this.protectedResource(toolset),
      settings: () => this.snapshotValue.config.listener,
      hasToolset: (name) => Object.hasOwn(this.snapshotValue.config.toolsets, name),
      isToolsetVisible: (name, principal) => this.isToolsetVisible(name, principal),
      health: () => readiness(this.registry.health(), this.sessions.size, this.snapshotValue.version),
      onInternalError: (error) => this.logger.error({ kind: 'internal', correlation_id: error.correlationId, err: error.cause ?? error }, error.message),
      onAuthRefused: (error) => this.logger.debug({ kind: 'auth', reason: error.message }, 'credential refused'),
      onRejected: async (error, facts) => this.audit?.rejection(error, facts),
    });
    this.admin = new AdminListener({
      settings: () => this.snapshotValue.config.admin,
      onInternalError: (error) => this.logger.error({ kind: 'internal', correlation_id: error.correlationId, err: error.cause ?? error }, error.message),
    });
    for (const route of this.telemetry.adminRoutes()) this.admin.addRoute(route);
    for (const route of auditRoutes({ store: () => this.store, audit: () => this.audit })) this.admin.addRoute(route);
    const rotatable = (): { rotateSigningKeys(): Promise<{ kid: string }> } | undefined => {
      const as = this.authorizationServer;
      return as?.rotateSigningKeys === undefined ? undefined : { rotateSigningKeys: () => as.rotateSigningKeys!() };
    };
    for (const route of authRoutes({ authorizationServer: rotatable, audit: () => this.audit })) this.admin.addRoute(route);
    for (const route of this.upstreamAuth.adminRoutes(() => this.audit)) this.admin.addRoute(route);
  }

  get snapshot(): Snapshot {
    return this.snapshotValue;
  }

  get catalog(): Catalog {
    return this.catalogValue;
  }

  get port(): number {
    return this.portValue;
  }

  /** The admin listener's bound port (0 while it is disabled or not started). */
  get adminPort(): number {
    return this.adminPortValue;
  }

  /** The agent-facing URL of the main MCP endpoint. */
  get url(): string {
    const { host, path } = this.snapshotValue.config.listener;
    return `${this.listener.secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.portValue}${path}`;
  }

  /**
   * The base of every resource URL and of the issuer: `auth.publicUrl`, else the listener's own
   * address (loopback only; normalization refuses a routable bind without a public URL).
   */
  get publicBase(): string {
    const publicUrl = this.snapshotValue.config.auth.publicUrl;
    if (publicUrl !== undefined) return publicUrl.replace(/\/+$/, '');
    return this.url.slice(0, this.url.length - this.snapshotValue.config.listener.path.length);
  }

  /** API keys (service accounts, the development credential); undefined until start() under `auth.mode: oauth`. */
  get apiKeys(): ApiKeyService | undefined {
    return this.apiKeyService;
  }

  /**
   * Mint the development credential when the config asks for one: `auth.mode: oauth`,
   * `auth.devCredential.enabled` and a loopback bind. Returns the key, to print once.
   */
  async mintDevCredential(): Promise<string | undefined> {
    const { auth, listener } = this.snapshotValue.config;
    if (auth.mode !== 'oauth' || !auth.devCredential.enabled || !isLoopbackHost(listener.host) || this.apiKeyService === undefined) return undefined;
    const { secret } = await this.apiKeyService.mintDevKey(auth.tenants[0] ?? 'default', auth.devCredential.roles);
    return secret;
  }

  targets(): TargetHealth[] {
    return this.registry.health();
  }

  /** The call runner, for in-process downstream transports (the stdio bridge's tests). */
  get calls(): CallRunner {
    return this.runner;
  }

  /** Open the store (migrating it), connect to every target and bind the listener. */
  async start(): Promise<void> {
    const config = this.snapshotValue.config;
    // Authentication needs the store (API keys, the authorization server's state) even when
    // audit is off.
    if (config.auth.mode === 'oauth' || config.audit.enabled || config.vault.keys.length > 0) {
      const store = this.options.store ?? (await openStore(config, this.logger));
      this.store = store;
      if (this.options.store === undefined) await store.migrate();
      // Before the listener binds, so no task id is ever issued under the random key. A store
      // that cannot give it fails the start (fail closed), like a failed migration.
      if (store instanceof SqlStore) {
        const material = await store.sharedSecret(TASK_ID_KEY_SECRET, () => randomBytes(TASK_ID_KEY_BYTES).toString('base64url'), this.clock.now());
        this.taskIdKey.use(Buffer.from(material, 'base64url'));
      }
      if (config.auth.mode === 'oauth') {
        // In-memory test stores have no API key table: bearer tokens and mTLS only.
        if (store instanceof SqlStore) this.apiKeyService = new ApiKeyService(store.apiKeyStore(), this.clock, () => this.snapshotValue.config.auth.apiKeys.maxTtlDays);
      }
    }
    if (this.store !== undefined && config.audit.enabled) {
      const store = this.store;
      this.audit = new AuditService({
        store,
        config: () => this.snapshotValue.config,
        clock: this.clock,
        logger: this.logger,
        targetVersion: (target) => {
          const version = this.registry.facts(target)?.serverInfo?.['version'];
          return typeof version === 'string' ? version : null;
        },
        onCommit: (ms) => this.telemetry.metrics.observeAuditWrite(ms),
        onQueueDepth: (depth) => this.telemetry.metrics.setAuditQueueDepth(depth),
      });
      await this.audit.start();
    }
    // Before the targets connect: their credentials come from it.
    await this.upstreamAuth.start(this.store);
    await this.registry.apply(this.snapshotValue.config);
    const { host, port, tls } = this.snapshotValue.config.listener;
    this.portValue = await this.listener.listen(host, port, tls === undefined ? undefined : listenerTlsOptions(tls));
    await this.startAuthorization();
    const admin = this.snapshotValue.config.admin;
    if (admin.enabled) this.adminPortValue = await this.admin.listen(admin.host, admin.port);
  }

  /**
   * Swap in a new config: compile a new snapshot, then apply target changes. Calls in flight
   * keep the snapshot they started with. Listener address changes need a restart.
   */
  async reload(config: GatehouseConfig): Promise<void> {
    const next = this.compile(config, this.snapshotValue.version + 1);
    // First: unusable vault keys refuse the reload before anything changed.
    await this.upstreamAuth.reload(config);
    this.snapshotValue = next;
    await this.audit?.admin('config/reload', { outcome: 'ok', details: { version: next.version, targets: Object.keys(config.targets) } });
    this.listener.refreshPolicy();
    this.admin.refreshPolicy();
    this.telemetry.reload(config);
    this.rebuildCatalog(new Set(['tools', 'prompts', 'resources']));
    await this.registry.apply(config);
  }

  /** Stop accepting, end every session and stop every upstream. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.sessions.closeAll();
      this.inputs.closeAll();
      await this.listener.close();
      await this.admin.close();
      await this.registry.close();
      await this.upstreamAuth.stop();
      await this.telemetry.close();
      await this.audit?.close();
      await this.authorizationServer?.close?.();
      if (this.options.store === undefined) await this.store?.close();
    })();
    return this.stopping;
  }

  /** Audit a refused config reload (the running snapshot stays). */
  async auditRefusedReload(reason: string): Promise<void> {
    await this.audit?.admin('config/reload', { outcome: 'refused', errorType: 'config_invalid', details: { reason } });
  }

  /**
   * The issuer the bearer verifier trusts: the mounted authorization server, or the one a test
   * supplies. Until one exists, access tokens are refused (API keys and mTLS still work).
   */
  private async startAuthorization(): Promise<void> {
    if (this.snapshotValue.config.auth.mode !== 'oauth') return;
    if (this.options.authorizationServer !== undefined && this.store !== undefined) {
      this.authorizationServer = await this.options.authorizationServer({
        store: this.store,
        config: () => this.snapshotValue.config,
        publicBase: this.publicBase,
        clock: this.clock,
        logger: this.logger,
        identityTokens: this.upstreamAuth.identityTokenSink,
      });
    }
    const issuer = this.options.tokenIssuer ?? this.authorizationServer;
    if (issuer !== undefined) this.bearer = new BearerVerifier({ issuer, clock: this.clock });
  }

  private location(): ResourceLocation {
    return { publicBase: this.publicBase, path: this.snapshotValue.config.listener.path };
  }

  private protectedResource(toolset: string | undefined): Record<string, unknown> | undefined {
    const auth = this.snapshotValue.config.auth;
    if (auth.mode !== 'oauth') return undefined;
    const issuer = this.bearer === undefined ? `${this.publicBase}/oauth` : (this.options.tokenIssuer ?? this.authorizationServer)!.issuer;
    return protectedResourceMetadata(this.location(), toolset, issuer, auth.scopes);
  }

  /** A toolset endpoint belongs to one tenant; under `auth.mode: none` there is only the anonymous one. */
  private isToolsetVisible(name: string, principal: Principal): boolean {
    if (principal.method === 'none') return true;
    return isToolsetVisible(this.snapshotValue, principal, name);
  }

  private requireAudit(): AuditService {
    if (this.audit === undefined) throw new GatehouseError('AUDIT_UNAVAILABLE', 'the audit trail is not started');
    return this.audit;
  }

  private compile(config: GatehouseConfig, version: number): Snapshot {
    const pipeline = buildCallPipeline({
      // Compiled here, so an unsafe argument pattern refuses the snapshot at load.
      policy: compilePolicy(config),
      auditAccepting: config.audit.enabled ? () => this.audit?.accepting ?? false : undefined,
      dispatch: {
        registry: this.registry,
        inputs: this.inputs,
        catalog: () => this.catalogValue,
        subscriptions: this.subscriptions,
        pageSize: config.aggregation.pageSize,
        listTtlMs: config.aggregation.listTtlMs,
        instructions: undefined,
        timeoutMs: (target) => config.targets[target]?.requestTimeoutMs ?? 60_000,
        taskIdKey: this.taskIdKey,
        consent: this.upstreamAuth.elicitations,
      },
    });
    return createSnapshot(version, this.clock.now(), config, pipeline);
  }

  private rebuildCatalog(kinds: ReadonlySet<'tools' | 'prompts' | 'resources'>): void {
    const before = this.catalogValue;
    this.catalogValue = buildCatalog(this.registry.listings(), this.snapshotValue.config);
    for (const r of this.catalogValue.rejected) {
      this.logger.warn({ kind: 'catalog', target: r.target, tool: r.name, reason: r.reason }, `tool ${r.name} of ${r.target} left out of the catalog: ${r.reason}`);
    }
    const changed = (pick: (c: Catalog) => unknown[]): boolean => JSON.stringify(pick(before)) !== JSON.stringify(pick(this.catalogValue));
    if (kinds.has('tools') && changed((c) => [...c.all.toolDefinitions])) this.changes.publish({ kind: 'list_changed', list: 'tools' });
    if (kinds.has('prompts') && changed((c) => [...c.all.promptDefinitions])) this.changes.publish({ kind: 'list_changed', list: 'prompts' });
    if (kinds.has('resources') && changed((c) => [...c.all.resources, ...c.all.templateDefinitions])) {
      this.changes.publish({ kind: 'list_changed', list: 'resources' });
    }
  }
}
