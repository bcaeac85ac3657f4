#!/usr/bin/env node
// The `gatehouse` command. It runs the compiled JavaScript in dist/ (`npm run build`, also run
// by `npm install` through the `prepare` script) when every compiled file is at least as new
// as its TypeScript source; otherwise it runs the sources through tsx's loader, so an edited
// checkout never runs stale code. Why prefer dist: the loader costs ~50 MB of resident memory,
// and its transform wraps every closure the hot path creates in a naming helper.
// GATEHOUSE_FROM_SOURCE=1 forces the sources.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Whether dist/ holds a compiled file, no older than its source, for every source file. */
function isDistFresh() {
  const srcDir = path.join(root, 'src');
  const distDir = path.join(root, 'dist');
  // A package shipped with dist/ only has nothing to be stale against.
  if (statSync(srcDir, { throwIfNoEntry: false }) === undefined) return statSync(path.join(distDir, 'main.js'), { throwIfNoEntry: false }) !== undefined;
  const stack = [''];
  while (stack.length > 0) {
    const dir = stack.pop();
    for (const entry of readdirSync(path.join(srcDir, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        stack.push(rel);
        continue;
      }
      if (!entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts') || entry.name.endsWith('.d.ts')) continue;
      const compiled = statSync(path.join(distDir, `${rel.slice(0, -3)}.js`), { throwIfNoEntry: false });
      if (compiled === undefined || compiled.mtimeMs < statSync(path.join(srcDir, rel)).mtimeMs) return false;
    }
  }
  return true;
}

let fresh = false;
if (process.env.GATEHOUSE_FROM_SOURCE !== '1') {
  try {
    fresh = isDistFresh();
  } catch {
    fresh = false; // unreadable tree: the sources decide
  }
}

let entry;
if (fresh) {
  entry = await import('../dist/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  entry = await import('../src/main.ts');
}
await entry.main(process.argv);
