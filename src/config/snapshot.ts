/**
 * The snapshot: the immutable, compiled runtime configuration the hot path reads. Built once
 * per config change and swapped atomically; a call keeps the snapshot it started with.
 */
import type { GatehouseConfig } from './schema.ts';
import type { Pipeline } from '../pipeline/stage.ts';

export interface Snapshot {
  /** Increases with every successful load. */
  readonly version: number;
  readonly loadedAt: number;
  readonly config: Readonly<GatehouseConfig>;
  readonly pipeline: Pipeline;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

export function createSnapshot(version: number, loadedAt: number, config: GatehouseConfig, pipeline: Pipeline): Snapshot {
  return Object.freeze({ version, loadedAt, config: deepFreeze(structuredClone(config)), pipeline });
}
