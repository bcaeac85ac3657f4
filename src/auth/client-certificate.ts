/**
 * Client certificates (mTLS on the listener) as agent credentials: a certificate the listener's
 * client CA verified, whose SHA-256 fingerprint is listed in `auth.mtls`, authenticates the
 * agent it names. Verification is the TLS stack's; this module only maps the result.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TLSSocket, type TlsOptions } from 'node:tls';
import type { AuthConfig } from '../config/auth-schema.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { Principal } from './principal.ts';

/** Fingerprints compare as upper-case hex without colons. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replaceAll(':', '').toUpperCase();
}

/** The principal of a verified, configured client certificate on this connection, if any. */
export function certificatePrincipal(socket: Socket, mtls: AuthConfig['mtls']): Principal | undefined {
  // `authorized` is true only when the certificate chains to the configured client CA.
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  if (certificate === null || typeof certificate.fingerprint256 !== 'string') return undefined;
  const fingerprint = normalizeFingerprint(certificate.fingerprint256);
  for (const [listed, identity] of Object.entries(mtls)) {
    if (normalizeFingerprint(listed) === fingerprint) {
      return { tenant: identity.tenant, user: identity.agent, agent: identity.agent, roles: identity.roles, scopes: [], method: 'mtls', credentialId: `cert:${fingerprint.slice(0, 16)}` };
    }
  }
  return undefined;
}

/**
 * The node:https options of `listener.tls` (paths already absolute, see normalize.ts). With a
 * client CA the server asks for a certificate; `requireClientCert` refuses the handshake
 * without a valid one, otherwise an unverified or absent certificate falls back to bearer auth.
 */
export function listenerTlsOptions(tls: NonNullable<GatehouseConfig['listener']['tls']>): TlsOptions {
  const options: TlsOptions = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), minVersion: 'TLSv1.2' };
  if (tls.clientCaFile !== undefined) {
    options.ca = readFileSync(tls.clientCaFile);
    options.requestCert = true;
    options.rejectUnauthorized = tls.requireClientCert;
  }
  return options;
}
