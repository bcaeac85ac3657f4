#!/usr/bin/env node
// The `gatehouse` command: runs the TypeScript entry point through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
await main(process.argv);
