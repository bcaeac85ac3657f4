/**
 * The per-user side of the registry. A `user-oauth` target has no shared connection: each
 * user's calls go over a connection carrying their own upstream token (per user × agent at
 * token-exchange targets, whose tokens name the agent as actor). The first of them to come up
 * serves discovery for the target; the listing is per target (docs/upstream-credentials.md).
 *
 * A target nobody has authorized yet is probed once, without a token: its 401 (RFC 9728
 * `resource_metadata`, `scope`) is what the first authorization needs to find the
 * authorization server and the scope, and no call can reach a target that lists nothing.
 */
import type { TargetConfig } from '../config/schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcNotification } from '../protocol/jsonrpc.ts';
import type { UpstreamAuthorizations, UpstreamCredential, UserRef } from '../upstream-auth/upstream-credential.ts';
import { userKey, userRefFor } from '../upstream-auth/user-subject.ts';
import type { ServerFacts, UpstreamConnection } from './connection.ts';
import { listAll } from './discovery.ts';

/** What of a registry entry the per-user side reads and writes. */
export interface UserTargetState {
  readonly config: TargetConfig;
  /** The target's discovery connection: for a user-oauth target, one of the users'. */
  connection: UpstreamConnection | undefined;
  /** Discovery after the latest handshake of the discovery connection. */
  discovery: Promise<void> | undefined;
  failed: boolean;
  lastError: string | undefined;
  /** Per-user connections, by `userKey`. */
  readonly users: Map<string, Promise<UpstreamConnection>>;
  /** When each user's connection last carried a call (epoch ms), for the idle sweep. */
  readonly usersLastUsed: Map<string, number>;
  /** Set when the target is removed, changed or shut down: nothing opened after that may stay. */
  usersClosed: boolean;
}

/** What the per-user side needs of the registry. */
export interface UserConnectionHost {
  credentials(): UpstreamAuthorizations | undefined;
  /** A connection to `name` whose transport presents `credential` (and opens the standalone stream when `stream`). */
  connect(name: string, entry: UserTargetState, credential: UpstreamCredential, onNotification: (m: JsonRpcNotification) => void, onReady: (facts: ServerFacts | undefined) => void, stream: boolean): UpstreamConnection;
  /** `entry.connection` is now the discovery connection: open its change stream and discover. */
  adopt(name: string, entry: UserTargetState, facts: ServerFacts | undefined): void;
  /** A notification of the discovery connection (list changes, resource updates). */
  notification(name: string, entry: UserTargetState, message: JsonRpcNotification): void;
  log(name: string, level: 'info' | 'warn', message: string): void;
  now(): number;
}

/** Authorized users tried at start before giving up (each may wait out the connect timeout). */
const START_ATTEMPTS = 3;

const noService = (name: string): GatehouseError =>
  new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `target ${name} needs upstream credentials but no credential service is running`);

export class UserConnections {
  constructor(private readonly host: UserConnectionHost) {}

  /**
   * Start a user-oauth target: after a restart, the first user of the target's tenant who
   * still holds an active token opens the discovery connection; with none, the probe.
   */
  async start(name: string, entry: UserTargetState): Promise<void> {
    const service = this.host.credentials();
    if (service === undefined) {
      entry.failed = true;
      entry.lastError = 'user-oauth target without a credential service (configure vault.keys)';
      this.host.log(name, 'warn', `target failed to start: ${entry.lastError}`);
      return;
    }
    let users: UserRef[];
    try {
      users = await service.authorizedUsers(name, entry.config.tenant);
    } catch (err) {
      entry.lastError = `authorized users could not be read: ${(err as Error).message}`;
      this.host.log(name, 'warn', entry.lastError);
      return;
    }
    for (const who of users.slice(0, START_ATTEMPTS)) {
      if (entry.usersClosed) return;
      try {
        await this.connection(name, entry, who);
        await entry.discovery;
        return;
      } catch (err) {
        this.host.log(name, 'info', `discovery as an authorized user failed: ${(err as Error).message}`);
        // An upstream that is down fails every user alike: the first call of any user tries again.
        if (!(err instanceof GatehouseError && (err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' || err.code === 'UPSTREAM_CREDENTIAL_UNAVAILABLE'))) {
          entry.lastError = `discovery failed: ${(err as Error).message}`;
          return;
        }
      }
    }
    if (users.length === 0) {
      await this.probe(name, entry, service);
      this.host.log(name, 'info', 'no user has authorized this target yet: it lists nothing until one does');
    }
  }

  /** The connection carrying `who`'s upstream token; refused before any network when they hold none. */
  connection(name: string, entry: UserTargetState, who: UserRef): Promise<UpstreamConnection> {
    const key = userKey(who);
    entry.usersLastUsed.set(key, this.host.now());
    const existing = entry.users.get(key);
    if (existing !== undefined) return existing;
    const pending = this.open(name, entry, who);
    entry.users.set(key, pending);
    // A failed or closed connection is forgotten, so the next call checks the vault again
    // (the user may have authorized in the meantime).
    pending.then(
      (connection) => {
        const forget = (): void => {
          if (entry.users.get(key) === pending) {
            entry.users.delete(key);
            entry.usersLastUsed.delete(key);
          }
          if (entry.connection === connection) entry.connection = undefined;
        };
        if (connection.state === 'closed') forget();
        else connection.onClosed(forget);
      },
      () => {
        if (entry.users.get(key) === pending) entry.users.delete(key);
      },
    );
    return pending;
  }

  /**
   * `who` just authorized the target (a connect flow completed). Their old connection goes, so
   * the next call starts on the new token; a target nobody had authorized is discovered now.
   */
  async authorized(name: string, entry: UserTargetState, whoever: UserRef): Promise<void> {
    const who = userRefFor(entry.config.credentials, whoever);
    await this.forget(entry, who);
    if (entry.connection !== undefined && entry.connection.state !== 'closed') return;
    try {
      await this.connection(name, entry, who);
      await entry.discovery;
    } catch (err) {
      this.host.log(name, 'warn', `discovery after a user's authorization failed: ${(err as Error).message}`);
    }
  }

  /** Close `who`'s connection (their credential was revoked or replaced). */
  async forget(entry: UserTargetState, who: UserRef): Promise<void> {
    const key = userKey(userRefFor(entry.config.credentials, who));
    const pending = entry.users.get(key);
    if (pending === undefined) return;
    entry.users.delete(key);
    await pending.then((c) => c.close(), () => undefined);
  }

  /**
   * Close the connections of users who made no call for `idleMs`: each holds an upstream
   * socket pool (and a stream, on servers that offer one), and users come and go. The next
   * call of that user opens a new one on the token in the vault.
   */
  sweep(entry: UserTargetState, idleMs: number): Promise<void>[] {
    const closing: Promise<void>[] = [];
    const before = this.host.now() - idleMs;
    for (const [key, last] of entry.usersLastUsed) {
      const pending = entry.users.get(key);
      if (last > before) continue;
      if (pending === undefined) {
        entry.usersLastUsed.delete(key);
        continue;
      }
      closing.push(
        pending.then(
          async (connection) => {
            // A call still running (a long tool call) keeps its connection.
            if (connection.inFlight > 0 || entry.users.get(key) !== pending) return;
            entry.users.delete(key);
            entry.usersLastUsed.delete(key);
            await connection.close();
          },
          () => undefined,
        ),
      );
    }
    return closing;
  }

  /** Close every user's connection of a target (removed, changed, shutdown). */
  closeAll(entry: UserTargetState): Promise<void>[] {
    entry.usersClosed = true;
    const all = [...entry.users.values()].map((c) => c.then((x) => x.close(), () => undefined));
    entry.users.clear();
    entry.usersLastUsed.clear();
    return all;
  }

  private async open(name: string, entry: UserTargetState, who: UserRef): Promise<UpstreamConnection> {
    if (entry.usersClosed) throw new GatehouseError('UPSTREAM_UNAVAILABLE', `target ${name} is not available`);
    const service = this.host.credentials();
    if (service === undefined) throw noService(name);
    const state = await service.userAuthorization(name, who);
    if (state !== 'active') {
      throw new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', `${name} needs your authorization before the gateway can call it for you`, {
        data: { target: name, reason: state === 'absent' ? 'not_authorized' : 'reconsent' },
      });
    }
    // Only the connection that will serve discovery listens for list changes on a stream of its own.
    const discovers = entry.connection === undefined || entry.connection.state === 'closed';
    const connection = this.host.connect(
      name,
      entry,
      service.userCredential(name, who),
      (message) => {
        // List changes matter once per target (the discovery connection's). Resource updates
        // come on the connection of the user who subscribed: each user subscribes on their own.
        if (entry.connection === connection || message.method === 'notifications/resources/updated') this.host.notification(name, entry, message);
      },
      (facts) => {
        // The first user connection up serves discovery (and list-change streams) for the target.
        if (entry.connection !== undefined && entry.connection !== connection && entry.connection.state !== 'closed') return;
        entry.connection = connection;
        this.host.adopt(name, entry, facts);
      },
      discovers,
    );
    try {
      await connection.start();
    } catch (err) {
      if (entry.connection === connection) entry.connection = undefined;
      throw err;
    }
    if (entry.usersClosed) {
      // The target went away while this connection was starting: it must not outlive it.
      await connection.close();
      throw new GatehouseError('UPSTREAM_UNAVAILABLE', `target ${name} is not available`);
    }
    return connection;
  }

  /**
   * One tokenless handshake and `tools/list`, to meet the upstream's 401 (some servers let
   * `initialize` through and guard only the lists). The probe credential records the
   * challenge for the target; every failure here is expected and only logged.
   */
  private async probe(name: string, entry: UserTargetState, service: UpstreamAuthorizations): Promise<void> {
    const credential = service.probeCredential?.(name);
    if (credential === undefined) return;
    let connection: UpstreamConnection | undefined;
    try {
      connection = this.host.connect(name, entry, credential, () => undefined, () => undefined, false);
      await connection.start();
      await listAll(connection, 'tools/list', 'tools');
      this.host.log(name, 'info', 'the upstream answered without authorization');
    } catch (err) {
      const expected = err instanceof GatehouseError && err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED';
      this.host.log(name, 'info', expected ? 'the upstream asks for authorization; its challenge is kept for the first user' : `probing the upstream failed: ${(err as Error).message}`);
    } finally {
      await connection?.close();
    }
  }
}
