/**
 * THE order of the call pipeline. Every downstream request passes these stages top to
 * bottom; the reason for each position is beside it. Later issues add authentication,
 * authorization, rate limits and audit here, and nowhere else.
 */
import { compose, type Pipeline } from './stage.ts';
import { errorBoundaryStage } from './error-boundary.ts';
import { dispatchStage, type DispatchDeps } from '../routing/dispatch.ts';
import { auditGateStage } from './audit-gate.ts';

export interface CallPipelineDeps {
  dispatch: DispatchDeps;
  /** Whether a call's audit row can be kept (store up, or a spool); absent when audit is off. */
  auditAccepting?: (() => boolean) | undefined;
}

/** Build the pipeline for one config snapshot. */
export function buildCallPipeline(deps: CallPipelineDeps): Pipeline {
  return compose([
    // First: every failure below becomes a typed JSON-RPC error and an outcome on the record.
    errorBoundaryStage(),
    // Before anything acts: fail closed when the call could not be audited. (The row itself is
    // written at delivery, by the call runner, once the answer's size is known and before it
    // leaves; see CallRunner.deliver.)
    ...(deps.auditAccepting ? [auditGateStage(deps.auditAccepting)] : []),
    // Last: answers gateway-owned methods or forwards to the owning target (terminal).
    dispatchStage(deps.dispatch),
  ]);
}
