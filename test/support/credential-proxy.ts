/**
 * A loopback forwarding proxy that adds `Authorization: Bearer <credential>` to every request
 * and otherwise forwards bytes unchanged, for clients that cannot send custom headers (the
 * official conformance suite) against a gateway under `auth.mode: oauth`.
 *
 * - Any Authorization the client sent is replaced; every other header goes as sent, Host and
 *   Origin included, so DNS-rebinding checks still hit the gateway's own guard (the gateway
 *   lists this proxy's loopback authority in `listener.allowedHosts`/`allowedOrigins`, as it
 *   would a load balancer's public name).
 * - Request bodies and responses stream through (SSE is never buffered); a client that goes
 *   away ends the upstream exchange, and an upstream that goes away ends the client's.
 * - The credential is asked for on each request, so the caller may renew it (short-lived
 *   access tokens) without restarting anything.
 */
import { createServer, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CredentialProxyOptions {
  /** The origin to forward to (`http://127.0.0.1:<port>`); read per request, so it may be set after the proxy listens. */
  readonly upstream: () => string;
  /** The bearer credential to add (an access token or an API key). */
  readonly credential: () => string | Promise<string>;
}

export interface CredentialProxy {
  /** `127.0.0.1:<port>`: the authority clients address. */
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Requests forwarded so far. */
  readonly forwarded: number;
  stop(): Promise<void>;
}

export async function startCredentialProxy(options: CredentialProxyOptions): Promise<CredentialProxy> {
  let forwarded = 0;
  const server = createServer((req, res) => {
    req.pause();
    Promise.resolve(options.credential()).then(
      (credential) => {
        const upstream = new URL(options.upstream());
        const headers: OutgoingHttpHeaders = withoutAuthorization(req.headers);
        headers['authorization'] = `Bearer ${credential}`;
        forwarded++;
        const outgoing = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers);
          // Send the head now: an SSE answer may not have a first byte for a while.
          res.flushHeaders();
          answer.pipe(res);
          answer.on('error', () => res.destroy());
          answer.on('aborted', () => res.destroy());
        });
        outgoing.on('error', () => {
          if (!res.headersSent) {
            res.writeHead(502);
            res.end();
          } else res.destroy();
        });
        // A client that goes away (a closed SSE stream, an aborted POST) closes the upstream exchange too.
        res.on('close', () => outgoing.destroy());
        req.pipe(outgoing);
        req.resume();
      },
      () => {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('credential-proxy: no credential available');
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    origin: `http://127.0.0.1:${port}`,
    get forwarded() {
      return forwarded;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function withoutAuthorization(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (name !== 'authorization' && value !== undefined) out[name] = value;
  return out;
}
