/**
 * The gateway's public base URL and its resource URLs (RFC 8707 resource indicators, the
 * `aud` of every access token): the main endpoint `<base><listener.path>` and one per toolset.
 */
import { isIP } from 'node:net';
import type { GatehouseConfig } from '../config/schema.ts';

/** `auth.publicUrl` without trailing slash, else `http://<listener.host>:<bound port>` (IPv6 bracketed). */
export function publicBaseOf(config: GatehouseConfig, boundPort: number): string {
  if (config.auth.publicUrl !== undefined) return config.auth.publicUrl.replace(/\/+$/, '');
  const host = config.listener.host;
  const literal = isIP(host) === 6 ? `[${host}]` : host;
  return `http://${literal}:${boundPort}`;
}

/** Every resource URL the authorization server issues tokens for. */
export function resourceUrls(config: GatehouseConfig, publicBase: string): string[] {
  const main = `${publicBase.replace(/\/+$/, '')}${config.listener.path}`;
  return [main, ...Object.keys(config.toolsets).map((toolset) => `${main}/${toolset}`)];
}
