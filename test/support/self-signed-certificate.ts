/**
 * A throwaway self-signed P-256 certificate for loopback HTTPS in tests (the openssl CLI; CI
 * installs it when missing). It is its own CA: pass `cert` as the trusted CA to the client.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export function selfSignedCertificate(dir: string, subjectAltName = 'IP:127.0.0.1'): { key: Buffer; cert: string } {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', `subjectAltName=${subjectAltName}`, '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile), cert: readFileSync(certFile, 'utf8') };
}
