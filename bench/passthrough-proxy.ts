/**
 * The floor for one Node hop: a minimal HTTP pass-through proxy (node:http server, an
 * http.Agent with keep-alive to the upstream). Bodies are piped, never parsed; hop-by-hop
 * headers are dropped; SSE streams flow through as they come.
 *
 *   passthrough-proxy --upstream http://127.0.0.1:PORT [--port 0]
 *
 * Binds 127.0.0.1 and prints one `LISTENING <url>` line (the upstream's path on this port).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

function forwardHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [key, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(key)) out[key] = value;
  return out;
}

export function createPassthroughProxy(upstream: URL): http.Server {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
  return http.createServer((req, res) => {
    const outgoing = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...forwardHeaders(req.headers), host: upstream.host },
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, forwardHeaders(answer.headers));
        answer.pipe(res);
      },
    );
    outgoing.setNoDelay(true);
    outgoing.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    // The agent went away mid-stream (a closed GET stream): release the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished) outgoing.destroy();
    });
    req.pipe(outgoing);
  });
}

function main(): void {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const upstreamText = arg('--upstream');
  if (upstreamText === undefined) throw new Error('--upstream URL is required');
  const upstream = new URL(upstreamText);
  const server = createPassthroughProxy(upstream);
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket) => socket.setNoDelay(true));
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1_000).unref();
  });
  server.listen(Number(arg('--port') ?? 0), '127.0.0.1', () => {
    process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}${upstream.pathname}\n`);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
