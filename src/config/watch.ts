/**
 * Watching the config file: a change is debounced, then handed to `onChange`, which loads,
 * validates and swaps. Editors replace files by rename, so the directory is watched.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../clock.ts';

export function watchConfigFile(file: string, clock: Clock, onChange: () => void, debounceMs = 200): () => void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  let timer: TimerHandle | undefined;
  let watcher: FSWatcher | undefined = watch(dir, (_event, name) => {
    if (name !== null && name !== base) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => {
      timer = undefined;
      onChange();
    }, debounceMs);
  });
  watcher.unref();
  return () => {
    if (timer !== undefined) clock.clearTimeout(timer);
    watcher?.close();
    watcher = undefined;
  };
}
