/**
 * Admin routes of the authorization server: `POST /auth/signing-keys/rotate` makes a new
 * access-token signing key current; the retired one keeps verifying until every token it
 * signed has expired. An admin action, audited as one (the key itself never leaves the store).
 */
import { GatehouseError } from '../protocol/errors.ts';
import { sendJson } from '../downstream/http-answers.ts';
import type { AuditService } from '../audit/audit-service.ts';
import type { AdminRoute } from './admin-listener.ts';

export interface SigningKeyRotation {
  rotateSigningKeys(): Promise<{ kid: string }>;
}

export function authRoutes(deps: { authorizationServer: () => SigningKeyRotation | undefined; audit: () => AuditService | undefined }): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/auth/signing-keys/rotate',
      async handle(_req, res) {
        const as = deps.authorizationServer();
        if (as === undefined) throw new GatehouseError('NOT_FOUND', 'no authorization server runs here (auth.mode is not oauth)');
        const { kid } = await as.rotateSigningKeys();
        await deps.audit()?.admin('auth/signing-keys/rotate', { outcome: 'ok', details: { kid } });
        sendJson(res, 200, { kid }, { 'cache-control': 'no-store' });
      },
    },
  ];
}
