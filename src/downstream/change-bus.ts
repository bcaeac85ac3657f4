/**
 * Changes every interested downstream stream must hear about: aggregated list changes and
 * resource updates. Legacy sessions and 2026-07-28 `subscriptions/listen` streams subscribe.
 */
import type { JsonObject } from '../protocol/jsonrpc.ts';

export type ChangeEvent =
  | { kind: 'list_changed'; list: 'tools' | 'prompts' | 'resources' }
  | { kind: 'resource_updated'; target: string; uri: string; params: JsonObject };

export type ChangeListener = (event: ChangeEvent) => void;

export class ChangeBus {
  private readonly listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  publish(event: ChangeEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // One broken stream must not starve the others.
      }
    }
  }
}

export const LIST_CHANGED_METHOD = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
} as const;
