/**
 * Error boundary stage: turns anything thrown below it into a JSON-RPC error response from
 * the one error table, and writes the outcome onto the call record. Runs first, so every
 * stage below it may simply throw.
 */
import { toGatehouseError } from '../protocol/errors.ts';
import type { Stage } from './stage.ts';

export function errorBoundaryStage(): Stage {
  return {
    name: 'error-boundary',
    async run(ctx, next) {
      try {
        const response = await next();
        if ('error' in response) {
          ctx.record.outcome = 'upstream_error';
          const data = response.error.data;
          ctx.record.errorType = typeof data === 'object' && data !== null && typeof (data as { type?: unknown }).type === 'string'
            ? (data as { type: string }).type
            : `rpc_${response.error.code}`;
        }
        return response;
      } catch (err) {
        const error = toGatehouseError(err);
        ctx.record.outcome = error.code === 'REQUEST_CANCELLED' ? 'cancelled' : 'error';
        ctx.record.errorType = error.spec.type;
        ctx.record.correlationId = error.correlationId;
        return { jsonrpc: '2.0', id: ctx.request.id, error: error.toRpcError(ctx.session.era) };
      }
    },
  };
}

