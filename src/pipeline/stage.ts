/**
 * The stage interface and its composition. A stage is onion-style: it may act before and
 * after `next`, or short-circuit by returning without calling it. Stages are built once per
 * config snapshot; `compose` runs per call and allocates nothing but the closure chain.
 */
import type { CallContext } from './call-context.ts';
import type { JsonRpcResponse } from '../protocol/jsonrpc.ts';

export type Next = () => Promise<JsonRpcResponse>;

export interface Stage {
  /** Short name used in docs and traces. */
  readonly name: string;
  run(ctx: CallContext, next: Next): Promise<JsonRpcResponse>;
}

/** A composed, ready-to-run pipeline. */
export interface Pipeline {
  readonly stages: readonly Stage[];
  run(ctx: CallContext): Promise<JsonRpcResponse>;
}

/**
 * Compose stages into one pipeline. The last stage is terminal: calling `next` from it is a
 * programming error and rejects.
 */
export function compose(stages: readonly Stage[]): Pipeline {
  const frozen = Object.freeze([...stages]);
  const run = (ctx: CallContext): Promise<JsonRpcResponse> => {
    const step = (i: number): Promise<JsonRpcResponse> => {
      const stage = frozen[i];
      if (stage === undefined) return Promise.reject(new Error('pipeline fell through its terminal stage'));
      return stage.run(ctx, () => step(i + 1));
    };
    return step(0);
  };
  return { stages: frozen, run };
}
