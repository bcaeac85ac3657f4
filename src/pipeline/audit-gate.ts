/**
 * Fail closed on audit: while the audit store is down (and no spool can hold rows), a call is
 * refused before it reaches any target, so nothing happens that the trail cannot answer for.
 */
import { GatehouseError } from '../protocol/errors.ts';
import type { Stage } from './stage.ts';

export function auditGateStage(accepting: () => boolean): Stage {
  return {
    name: 'audit-gate',
    async run(ctx, next) {
      if (!accepting()) throw new GatehouseError('AUDIT_UNAVAILABLE', 'the audit store is unavailable; the call was not executed', { id: ctx.request.id });
      return next();
    },
  };
}
