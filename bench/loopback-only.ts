/**
 * Preloaded (`node --import`) into peer processes that have no bind-address option
 * (supergateway listens on every interface): any listen() without a host, or on a wildcard
 * host, binds 127.0.0.1 instead. The benchmark must never listen beyond loopback.
 */
import net from 'node:net';

const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);
const listen = net.Server.prototype.listen;

function loopbackArgs(args: unknown[]): unknown[] {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const host = args[1];
    if (typeof host === 'string' && !WILDCARD.has(host)) return args;
    const rest = typeof host === 'string' ? args.slice(2) : args.slice(1);
    return [first, '127.0.0.1', ...rest];
  }
  if (first !== null && typeof first === 'object' && 'port' in first) {
    const options = first as { host?: string };
    if (options.host === undefined || WILDCARD.has(options.host)) return [{ ...options, host: '127.0.0.1' }, ...args.slice(1)];
  }
  return args;
}

net.Server.prototype.listen = function patchedListen(this: net.Server, ...args: unknown[]) {
  return (listen as (...a: unknown[]) => net.Server).apply(this, loopbackArgs(args));
} as typeof net.Server.prototype.listen;
