/**
 * oidc-provider's storage adapter over the gateway database (table gatehouse_oauth_model): one
 * instance per model name (Session, Interaction, AuthorizationCode, RefreshToken, Grant,
 * Client for dynamic registrations, …). Expiry is checked with the injected clock; expired
 * rows are pruned by the authorization server's maintenance timer.
 */
import type { Adapter } from 'oidc-provider';
import type { Clock } from '../clock.ts';
import type { OAuthStore, StoredModel } from '../storage/oauth-store.ts';

function optionalString(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

export class OAuthAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly store: OAuthStore,
    private readonly clock: Clock,
  ) {}

  async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
    await this.store.upsertModel(this.model, id, {
      payload: JSON.stringify(payload),
      grantId: optionalString(payload['grantId']),
      uid: optionalString(payload['uid']),
      userCode: optionalString(payload['userCode']),
      expiresAt: expiresIn === undefined || !Number.isFinite(expiresIn) ? null : this.clock.now() + expiresIn * 1000,
    });
  }

  async find(id: string): Promise<Record<string, unknown> | undefined> {
    return this.live(await this.store.findModel(this.model, id));
  }

  async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
    return this.live(await this.store.findModelBy(this.model, 'uid', uid));
  }

  async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
    return this.live(await this.store.findModelBy(this.model, 'user_code', userCode));
  }

  async consume(id: string): Promise<void> {
    await this.store.consumeModel(this.model, id, this.clock.now());
  }

  async destroy(id: string): Promise<void> {
    await this.store.destroyModel(this.model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.store.destroyModelsOfGrant(this.model, grantId);
  }

  private live(row: StoredModel | undefined): Record<string, unknown> | undefined {
    if (row === undefined) return undefined;
    if (row.expiresAt !== null && row.expiresAt <= this.clock.now()) return undefined;
    const payload = JSON.parse(row.payload) as Record<string, unknown>;
    // oidc-provider reads `consumed` (epoch seconds) to detect replayed codes and refresh tokens.
    return row.consumedAt === null ? payload : { ...payload, consumed: Math.floor(row.consumedAt / 1000) };
  }
}
