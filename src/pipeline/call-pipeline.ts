/**
 * THE order of the call pipeline. Every downstream request passes these stages top to
 * bottom; the reason for each position is beside it. Later issues add rate limits and more
 * here, and nowhere else.
 */
import { compose, type Pipeline } from './stage.ts';
import { errorBoundaryStage } from './error-boundary.ts';
import { dispatchStage, type DispatchDeps } from '../routing/dispatch.ts';
import { auditGateStage } from './audit-gate.ts';
import { authorizeStage } from './authorize-stage.ts';
import type { CompiledPolicy } from '../auth/policy.ts';

export interface CallPipelineDeps {
  dispatch: DispatchDeps;
  /** The snapshot's compiled policy (auth/policy.ts `compilePolicy`). */
  policy: CompiledPolicy;
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
    // After the audit gate, so a denial is itself audited (its row carries the decision);
    // before dispatch, so nothing the caller may not call reaches a target.
    authorizeStage({ policy: deps.policy, catalog: deps.dispatch.catalog }),
    // Last: answers gateway-owned methods or forwards to the owning target (terminal). It lists
    // and routes through the same policy's views, so lists show only what may be called.
    dispatchStage(deps.dispatch, deps.policy),
  ]);
}
