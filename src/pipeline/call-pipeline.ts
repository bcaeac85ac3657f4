/**
 * THE order of the call pipeline. Every downstream request passes these stages top to
 * bottom; the reason for each position is beside it. Later issues add authentication,
 * authorization, rate limits and audit here, and nowhere else.
 */
import { compose, type Pipeline } from './stage.ts';
import { errorBoundaryStage } from './error-boundary.ts';
import { dispatchStage, type DispatchDeps } from '../routing/dispatch.ts';

export interface CallPipelineDeps {
  dispatch: DispatchDeps;
}

/** Build the pipeline for one config snapshot. */
export function buildCallPipeline(deps: CallPipelineDeps): Pipeline {
  return compose([
    // First: every failure below becomes a typed JSON-RPC error and an outcome on the record.
    errorBoundaryStage(),
    // Last: answers gateway-owned methods or forwards to the owning target (terminal).
    dispatchStage(deps.dispatch),
  ]);
}
