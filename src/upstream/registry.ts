/**
 * The fleet of upstream connections: one shared connection per target (plus per-session ones
 * where a target asks for them), discovery of what each advertises, and health. Config
 * changes are applied as a diff: untouched targets keep their connection.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Clock } from '../clock.ts';
import type { GatehouseConfig, TargetConfig } from '../config/schema.ts';
import type { TargetListing } from '../catalog/catalog.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject, JsonRpcNotification } from '../protocol/jsonrpc.ts';
import type { DownstreamSession } from '../downstream/session.ts';
import type { Principal } from '../auth/principal.ts';
import { UpstreamConnection, type ConnectionState, type ServerFacts } from './connection.ts';
import { createTransport, type TransportCredentials } from './transports.ts';
import { listAll } from './discovery.ts';
import { ChangeListener } from './change-listener.ts';
import type { UpstreamAuthorizations, UserRef } from '../upstream-auth/upstream-credential.ts';
import { userRefFor } from '../upstream-auth/user-subject.ts';
import { UserConnections, type UserTargetState } from './user-connections.ts';

export interface TargetHealth {
  name: string;
  transport: TargetConfig['transport'];
  state: ConnectionState | 'disabled' | 'failed';
  era: ServerFacts['era'] | undefined;
  protocolVersion: string | undefined;
  serverInfo: JsonObject | undefined;
  lastError: string | undefined;
  restarts: number;
  skippedLines: number;
  inFlight: number;
  tools: number;
  prompts: number;
  resources: number;
  templates: number;
}

export interface RegistryEvents {
  /** Discovery results changed: rebuild the catalog. `kinds` says which lists changed. */
  onListingsChanged(kinds: ReadonlySet<'tools' | 'prompts' | 'resources'>): void;
  /** A target sent `notifications/resources/updated`. */
  onResourceUpdated(target: string, params: JsonObject): void;
  /** A log line about a target (stderr, skipped output, state changes). */
  onTargetLog(target: string, level: 'info' | 'warn', message: string, fields?: JsonObject): void;
  /**
   * The third auth tier for the current snapshot: credentials for connections. Undefined while
   * none is built (no vault, tests); then `static`/`client-credentials` targets connect without
   * one only if their mode is `none`, and `user-oauth` targets fail closed.
   */
  credentials?(): UpstreamAuthorizations | undefined;
  /** Bumped when the credential service is rebuilt: connections holding older credentials reconnect. */
  credentialGeneration?(): number;
}

interface TargetEntry extends UserTargetState {
  config: TargetConfig;
  connection: UpstreamConnection | undefined;
  listing: TargetListing;
  lastError: string | undefined;
  failed: boolean;
  /** Discovery generation: a slow, stale discovery must not overwrite a newer one. */
  generation: number;
  /** Modern targets: the subscription stream that tells of list changes. */
  listener: ChangeListener | undefined;
  /** The discovery after the latest handshake; start() waits for the first. */
  discovery: Promise<void> | undefined;
  /** `user-oauth` targets: the per-user connections (user-connections.ts); `connection` is then the discovery one. */
  users: Map<string, Promise<UpstreamConnection>>;
  usersLastUsed: Map<string, number>;
  usersClosed: boolean;
  /** The credential service generation the connections were built with. */
  credentialGeneration: number;
}

export class UpstreamRegistry {
  private readonly targets = new Map<string, TargetEntry>();
  private readonly perSession = new Map<string, Map<string, Promise<UpstreamConnection>>>();
  private readonly clock: Clock;
  private readonly events: RegistryEvents;
  private closed = false;
  private readonly userConnections: UserConnections;

  constructor(clock: Clock, events: RegistryEvents) {
    this.clock = clock;
    this.events = events;
    this.userConnections = new UserConnections({
      credentials: () => this.events.credentials?.(),
      connect: (name, entry, credential, onNotification, onReady, stream) => this.createConnection(name, entry.config, onNotification, onReady, { credential, standaloneStream: stream }),
      adopt: (name, entry, facts) => {
        const target = entry as TargetEntry;
        this.listen(name, target, facts);
        target.discovery = this.discover(name, target, new Set(['tools', 'prompts', 'resources']));
      },
      notification: (name, entry, message) => this.onSharedNotification(name, entry as TargetEntry, message),
      log: (name, level, message) => this.events.onTargetLog(name, level, message),
      now: () => this.clock.now(),
    });
  }

  /** Close per-user connections idle for `idleMs` (the gateway runs this with the session idle timeout). */
  async sweepIdleUsers(idleMs: number): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const entry of this.targets.values()) closing.push(...this.userConnections.sweep(entry, idleMs));
    await Promise.all(closing);
  }

  /** Apply a new config: start added targets, restart changed ones, stop removed ones. */
  async apply(config: GatehouseConfig): Promise<void> {
    const stops: Promise<void>[] = [];
    for (const [name, entry] of this.targets) {
      const next = config.targets[name];
      const staleCredentials = next?.credentials.mode !== 'none' && entry.credentialGeneration !== this.credentialGeneration();
      if (next === undefined || staleCredentials || !isDeepStrictEqual(next, entry.config)) {
        this.targets.delete(name);
        entry.listener?.stop();
        if (entry.connection) stops.push(entry.connection.close());
        stops.push(...this.userConnections.closeAll(entry));
      }
    }
    const starts: Promise<void>[] = [];
    for (const [name, target] of Object.entries(config.targets)) {
      if (this.targets.has(name)) continue;
      const entry: TargetEntry = { config: target, connection: undefined, listing: emptyListing(name), lastError: undefined, failed: false, generation: 0, listener: undefined, discovery: undefined, users: new Map(), usersLastUsed: new Map(), usersClosed: false, credentialGeneration: this.credentialGeneration() };
      this.targets.set(name, entry);
      if (target.enabled) starts.push(target.credentials.mode === 'user-oauth' ? this.userConnections.start(name, entry) : this.startTarget(name, entry));
    }
    await Promise.all(stops);
    this.events.onListingsChanged(new Set(['tools', 'prompts', 'resources']));
    await Promise.all(starts);
  }

  private credentialGeneration(): number {
    return this.events.credentialGeneration?.() ?? 0;
  }

  /** Listings of every target, in config (name) order. */
  listings(): TargetListing[] {
    return [...this.targets.values()].map((e) => e.listing);
  }

  facts(target: string): ServerFacts | undefined {
    return this.targets.get(target)?.connection?.facts;
  }

  health(): TargetHealth[] {
    return [...this.targets.entries()].map(([name, e]) => ({
      name,
      transport: e.config.transport,
      state: !e.config.enabled ? 'disabled' : e.failed ? 'failed' : (e.connection?.state ?? 'idle'),
      era: e.connection?.facts?.era,
      protocolVersion: e.connection?.facts?.protocolVersion,
      serverInfo: e.connection?.facts?.serverInfo,
      lastError: e.lastError,
      restarts: e.connection?.stats.restarts ?? 0,
      skippedLines: e.connection?.stats.skippedLines ?? 0,
      inFlight: e.connection?.inFlight ?? 0,
      tools: e.listing.tools.length,
      prompts: e.listing.prompts.length,
      resources: e.listing.resources.length,
      templates: e.listing.templates.length,
    }));
  }

  /** The connection a call from `session` to `target` uses. */
  async connectionFor(target: string, session: DownstreamSession, principal: Principal = session.principal): Promise<UpstreamConnection> {
    const entry = this.targets.get(target);
    if (entry === undefined || !entry.config.enabled) throw new GatehouseError('UPSTREAM_UNAVAILABLE', `target ${target} is not available`);
    if (entry.config.credentials.mode === 'user-oauth') {
      // A user's upstream identity belongs to a signed-in human: an API key or certificate
      // naming the same user id must not borrow it (their users are operator-chosen names).
      if (principal.method === 'api-key' || principal.method === 'mtls') {
        throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `target ${target} acts as each signed-in user; ${principal.method} callers have no upstream identity there`);
      }
      return this.userConnections.connection(target, entry, userRefFor(entry.config.credentials, { tenant: principal.tenant, user: principal.user, agent: principal.agent }));
    }
    if (entry.config.sessionMode === 'per-session' && session.era === 'legacy') return this.sessionConnection(target, entry, session);
    if (entry.connection === undefined) throw new GatehouseError('UPSTREAM_UNAVAILABLE', `target ${target} is not connected`);
    return entry.connection;
  }

  /**
   * Drop the shared connection's subscription to a URI nobody watches any more. Best effort:
   * a target that is gone or down has no subscription left to drop.
   */
  unsubscribe(target: string, uri: string): void {
    const entry = this.targets.get(target);
    const connection = entry?.connection;
    if (entry === undefined || connection?.state !== 'ready' || connection.facts?.era !== 'legacy') return;
    // A user-oauth target's subscriptions live on each user's connection; another user's token must not end them.
    if (entry.config.credentials.mode === 'user-oauth') return;
    const signal = AbortSignal.timeout(entry.config.requestTimeoutMs);
    connection.request({ method: 'resources/unsubscribe', params: { uri }, signal }).catch((err: unknown) => {
      this.events.onTargetLog(target, 'info', `resources/unsubscribe for an abandoned subscription failed: ${(err as Error).message}`);
    });
  }

  /** `who` just authorized `target`: reconnect them on the new token (and discover a target nobody had authorized). */
  async userAuthorized(target: string, who: UserRef): Promise<void> {
    const entry = this.targets.get(target);
    if (entry === undefined || !entry.config.enabled || entry.config.credentials.mode !== 'user-oauth') return;
    await this.userConnections.authorized(target, entry, who);
  }

  /** Close `who`'s connection to `target` (their credential was revoked). */
  async forgetUser(target: string, who: UserRef): Promise<void> {
    const entry = this.targets.get(target);
    if (entry !== undefined) await this.userConnections.forget(entry, who);
  }

  /**
   * Targets whose shared connection is ready (for fan-out such as logging/setLevel). Not the
   * user-oauth ones: their connections carry one user's token, not to be spent on another's request.
   */
  readyConnections(): UpstreamConnection[] {
    return [...this.targets.values()].flatMap((e) => (e.connection?.state === 'ready' && e.config.credentials.mode !== 'user-oauth' ? [e.connection] : []));
  }

  /** Whether calls to `target` go over per-user connections (user-oauth): nothing upstream is shared between users. */
  isPerUser(target: string): boolean {
    return this.targets.get(target)?.config.credentials.mode === 'user-oauth';
  }

  async close(): Promise<void> {
    this.closed = true;
    const all: Promise<void>[] = [];
    for (const entry of this.targets.values()) {
      entry.listener?.stop();
      if (entry.connection) all.push(entry.connection.close());
      all.push(...this.userConnections.closeAll(entry));
    }
    for (const conns of this.perSession.values()) for (const c of conns.values()) all.push(c.then((x) => x.close(), () => undefined));
    this.targets.clear();
    this.perSession.clear();
    await Promise.all(all);
  }

  private createConnection(
    name: string,
    config: TargetConfig,
    onNotification: (m: JsonRpcNotification) => void,
    onReady: (facts: ServerFacts | undefined) => void,
    credentials: TransportCredentials = this.transportCredentials(name, config),
  ): UpstreamConnection {
    return new UpstreamConnection({
      target: name,
      transport: createTransport(config, this.clock, process.env, credentials),
      era: config.era,
      connectTimeoutMs: config.connectTimeoutMs,
      clock: this.clock,
      onNotification,
      onStateChange: (state, facts) => {
        if (state === 'ready') onReady(facts);
        if (state === 'reconnecting' || state === 'closed') this.events.onTargetLog(name, 'warn', `upstream ${state}`);
      },
      onDiagnostic: (line) => this.events.onTargetLog(name, 'info', line),
    });
  }

  /**
   * What the transport of a connection to `name` authenticates with. A mode that needs the
   * credential service while there is none fails closed: the connection is not attempted.
   */
  private transportCredentials(name: string, config: TargetConfig): TransportCredentials {
    const mode = config.credentials.mode;
    if (mode === 'none') return {};
    const service = this.events.credentials?.();
    if (service === undefined) throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `target ${name} needs upstream credentials but no credential service is running`);
    if (config.transport === 'stdio') return { secretEnv: service.childEnvironment(name) };
    return { credential: service.serviceCredential(name) };
  }

  private async startTarget(name: string, entry: TargetEntry): Promise<void> {
    try {
      const connection = this.createConnection(
        name,
        entry.config,
        (message) => this.onSharedNotification(name, entry, message),
        (facts) => {
          this.listen(name, entry, facts);
          entry.discovery = this.discover(name, entry, new Set(['tools', 'prompts', 'resources']));
        },
      );
      entry.connection = connection;
      await connection.start();
      entry.failed = false;
      entry.lastError = undefined;
      // Start resolves with the catalog filled, so the first agent (and the start banner)
      // sees what the target offers. discover() never rejects: failures are logged.
      await entry.discovery;
    } catch (err) {
      entry.failed = true;
      entry.lastError = (err as Error).message;
      entry.connection = undefined;
      this.events.onTargetLog(name, 'warn', `target failed to start: ${entry.lastError}`);
    }
  }

  /** (Re)open the change stream of a modern target after each handshake. */
  private listen(name: string, entry: TargetEntry, facts: ServerFacts | undefined): void {
    entry.listener?.stop();
    entry.listener = undefined;
    if (entry.connection === undefined || facts?.era !== 'modern' || this.closed) return;
    entry.listener = new ChangeListener(entry.connection, this.clock, (line) => this.events.onTargetLog(name, 'info', line));
    entry.listener.start(facts.capabilities);
  }

  private onSharedNotification(name: string, entry: TargetEntry, message: JsonRpcNotification): void {
    switch (message.method) {
      case 'notifications/tools/list_changed':
        void this.discover(name, entry, new Set(['tools']));
        return;
      case 'notifications/prompts/list_changed':
        void this.discover(name, entry, new Set(['prompts']));
        return;
      case 'notifications/resources/list_changed':
        void this.discover(name, entry, new Set(['resources']));
        return;
      case 'notifications/resources/updated':
        this.events.onResourceUpdated(name, message.params ?? {});
        return;
      case 'notifications/message':
        // Not attributable to a call: it goes to the gateway's log, never to an arbitrary agent.
        this.events.onTargetLog(name, 'info', 'upstream log message', { upstreamLog: message.params ?? {} });
        return;
      default:
        return;
    }
  }

  private async discover(name: string, entry: TargetEntry, kinds: Set<'tools' | 'prompts' | 'resources'>): Promise<void> {
    const connection = entry.connection;
    const facts = connection?.facts;
    if (connection === undefined || facts === undefined || this.closed) return;
    const generation = ++entry.generation;
    const caps = facts.capabilities;
    // A user-oauth target is listed from one user's connection and shown to every user who may
    // see it: tools describe the server, but prompts and resources are that user's data (file
    // names, mail subjects). Only tools are listed for such targets.
    if (entry.config.credentials.mode === 'user-oauth') kinds = new Set([...kinds].filter((k) => k === 'tools'));
    if (kinds.size === 0) return;
    const listing = { ...entry.listing };
    try {
      if (kinds.has('tools')) listing.tools = caps['tools'] ? await listAll(connection, 'tools/list', 'tools') : [];
      if (kinds.has('prompts')) listing.prompts = caps['prompts'] ? await listAll(connection, 'prompts/list', 'prompts') : [];
      if (kinds.has('resources')) {
        listing.resources = caps['resources'] ? await listAll(connection, 'resources/list', 'resources') : [];
        listing.templates = caps['resources'] ? await listAll(connection, 'resources/templates/list', 'resourceTemplates') : [];
      }
    } catch (err) {
      entry.lastError = `discovery failed: ${(err as Error).message}`;
      this.events.onTargetLog(name, 'warn', entry.lastError);
      return;
    }
    if (generation !== entry.generation || this.targets.get(name) !== entry) return;
    entry.listing = listing;
    this.events.onListingsChanged(kinds);
  }

  private sessionConnection(name: string, entry: TargetEntry, session: DownstreamSession): Promise<UpstreamConnection> {
    let conns = this.perSession.get(session.id);
    if (conns === undefined) {
      conns = new Map();
      this.perSession.set(session.id, conns);
      session.onClose(() => {
        const mine = this.perSession.get(session.id);
        this.perSession.delete(session.id);
        for (const c of mine?.values() ?? []) void c.then((x) => x.close(), () => undefined);
      });
    }
    let pending = conns.get(name);
    if (pending === undefined) {
      const connection = this.createConnection(
        name,
        entry.config,
        (message) => {
          // A per-session connection belongs to one agent: its notifications are that agent's.
          if (message.method === 'notifications/message' && session.wantsLog(message.params?.['level'])) session.unsolicited?.send(message);
          else if (message.method === 'notifications/resources/updated') this.events.onResourceUpdated(name, message.params ?? {});
        },
        () => undefined,
      );
      pending = connection.start().then(() => connection);
      pending.catch(() => conns!.delete(name));
      conns.set(name, pending);
    }
    return pending;
  }
}

function emptyListing(target: string): TargetListing {
  return { target, tools: [], prompts: [], resources: [], templates: [] };
}

