/**
 * `gatehouse connect URL`: a local stdio MCP server that relays every message to a remote
 * gateway over Streamable HTTP, for desktop clients that only speak stdio. Framing and the
 * HTTP session (ids, SSE, reconnection) come from the SDK transports; the bridge only relays.
 */
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Readable, Writable } from 'node:stream';

export interface BridgeOptions {
  url: string;
  headers?: Record<string, string>;
  stdin?: Readable;
  stdout?: Writable;
  /** Diagnostics go to stderr: stdout belongs to the protocol. */
  onDiagnostic?: (line: string) => void;
}

export interface BridgeHandle {
  /** Resolves when either side closes. */
  closed: Promise<void>;
  close(): Promise<void>;
}

export async function startStdioBridge(options: BridgeOptions): Promise<BridgeHandle> {
  const local = new StdioServerTransport(options.stdin, options.stdout);
  const remote = new StreamableHTTPClientTransport(new URL(options.url), options.headers ? { requestInit: { headers: options.headers } } : undefined);
  const say = options.onDiagnostic ?? ((line: string) => process.stderr.write(`gatehouse connect: ${line}\n`));
  const initializeIds = new Set<string | number>();
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const close = (): Promise<void> => {
    if (closing !== undefined) return closing;
    // Each transport's close() fires its onclose, which calls back into here: the promise
    // must be in place before either close() runs, or the two recurse without end.
    let done!: () => void;
    closing = new Promise<void>((resolve) => {
      done = resolve;
    });
    void Promise.allSettled([remote.close(), local.close()]).then(() => {
      resolveClosed();
      done();
    });
    return closing;
  };

  local.onmessage = (message) => {
    if ('method' in message && message.method === 'initialize' && 'id' in message) initializeIds.add(message.id);
    remote.send(message).catch((err: unknown) => {
      say(`relay to gateway failed: ${(err as Error).message}`);
      // A request that cannot be delivered still gets an answer, so the client does not hang.
      if ('method' in message && 'id' in message) {
        void local.send({ jsonrpc: '2.0', id: message.id, error: { code: -32603, message: 'Gatehouse is unreachable' } });
      }
    });
  };
  remote.onmessage = (message) => {
    // Later requests must carry the negotiated version header (2025-11-25 transports).
    if ('result' in message && initializeIds.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') remote.setProtocolVersion?.(version);
    }
    void local.send(message);
  };
  remote.onerror = (err) => say(err.message);
  local.onclose = () => void close();
  remote.onclose = () => void close();
  await remote.start();
  await local.start();
  return { closed, close };
}
