import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminListener } from './admin-listener.ts';
import { parseConfigText } from '../config/load.ts';

/** A raw request, so the Host header can be set freely (fetch would not allow it). */
function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, allow: res.headers.allow }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin listener', () => {
  const admin = new AdminListener({ settings: () => ({ allowedHosts: ['admin.internal'], allowedOrigins: [] }), onInternalError: () => undefined });
  let port = 0;

  beforeAll(async () => {
    admin.addRoute({ method: 'GET', path: '/hello', handle: (_req, res) => void res.writeHead(200).end('hi') });
    admin.addRoute({ method: 'POST', path: '/hello', handle: (_req, res) => void res.writeHead(201).end('made') });
    admin.addRoute({ method: 'GET', path: '/rows/*', handle: (_req, res, url) => void res.writeHead(200).end(url.pathname.slice('/rows/'.length)) });
    admin.addRoute({
      method: 'GET',
      path: '/broken',
      handle: () => {
        throw new Error('secret detail');
      },
    });
    port = await admin.listen('127.0.0.1', 0);
  });

  afterAll(async () => {
    await admin.close();
    await admin.close();
  });

  it('serves the routes in its table, exact and by prefix', async () => {
    expect(await get(port, '/hello')).toMatchObject({ status: 200, body: 'hi' });
    expect(await get(port, '/hello', {}, 'POST')).toMatchObject({ status: 201, body: 'made' });
    expect(await get(port, '/rows/42?x=1')).toMatchObject({ status: 200, body: '42' });
  });

  it('answers 404 for unknown paths and 405 with Allow for other methods', async () => {
    expect((await get(port, '/nope')).status).toBe(404);
    const wrong = await get(port, '/hello', {}, 'DELETE');
    expect(wrong.status).toBe(405);
    expect(wrong.allow).toBe('GET, POST');
  });

  it('refuses foreign Host and Origin values (DNS rebinding) and accepts configured ones', async () => {
    expect((await get(port, '/hello', { host: 'evil.example' })).status).toBe(403);
    expect((await get(port, '/hello', { origin: 'http://evil.example' })).status).toBe(403);
    expect((await get(port, '/hello', { host: 'admin.internal' })).status).toBe(200);
  });

  it('turns a handler failure into a 500 without its detail', async () => {
    const res = await get(port, '/broken');
    expect(res.status).toBe(500);
    expect(res.body).not.toContain('secret detail');
  });

  it('refuses a second route for the same method and path', () => {
    expect(() => admin.addRoute({ method: 'GET', path: '/hello', handle: () => undefined })).toThrow(/already registered/);
  });
});

describe('admin and telemetry config', () => {
  const env = { configDir: '/etc/gatehouse' };
  const minimal = 'targets:\n  one:\n    transport: stdio\n    command: node\n';

  it('defaults to an enabled admin listener on 127.0.0.1:9090 with metrics on and tracing off', () => {
    const config = parseConfigText(minimal, 'g.yaml', env);
    expect(config.admin).toMatchObject({ enabled: true, host: '127.0.0.1', port: 9090 });
    expect(config.telemetry.metrics).toEqual({ enabled: true, agentLabels: [] });
    expect(config.telemetry.tracing.otlpEndpoint).toBeUndefined();
    expect(config.telemetry.slos).toEqual([]);
  });

  it('refuses a non-loopback admin bind (the admin API has no authentication yet)', () => {
    expect(() => parseConfigText(`admin:\n  host: 0.0.0.0\n${minimal}`, 'g.yaml', env)).toThrow(/admin\.host: binding the admin listener to 0\.0\.0\.0 is refused: the admin API has no authentication yet/);
    expect(() => parseConfigText(`admin:\n  host: 0.0.0.0\n  enabled: false\n${minimal}`, 'g.yaml', env)).not.toThrow();
  });

  it('checks SLOs: an objective, known targets, unique names, ordered windows', () => {
    const slos = (body: string) => `${minimal}telemetry:\n  slos:\n${body}`;
    expect(() => parseConfigText(slos('    - name: a\n      window: 1h\n'), 'g.yaml', env)).toThrow(/availability or latencyP95Ms/);
    expect(() => parseConfigText(slos('    - name: a\n      target: ghost\n      availability: 0.99\n'), 'g.yaml', env)).toThrow(/telemetry\.slos\.0\.target: unknown target "ghost"/);
    expect(() => parseConfigText(slos('    - name: a\n      availability: 0.99\n    - name: a\n      latencyP95Ms: 100\n'), 'g.yaml', env)).toThrow(/duplicate SLO name/);
    expect(() => parseConfigText(slos('    - name: a\n      availability: 0.99\n      window: 1h\n      burnRateAlert: { rate: 2, webhook: "http://127.0.0.1:9/x", longWindow: 2h }\n'), 'g.yaml', env)).toThrow(/longWindow: must not be longer/);
    expect(() => parseConfigText(slos('    - name: a\n      availability: 0.99\n      window: 5x\n'), 'g.yaml', env)).toThrow(/a duration such as/);
    const ok = parseConfigText(slos('    - name: a\n      target: one\n      tool: search\n      availability: 0.999\n      latencyP95Ms: 250\n      window: 30d\n      burnRateAlert: { rate: 14.4, webhook: "http://127.0.0.1:9/x" }\n'), 'g.yaml', env);
    expect(ok.telemetry.slos[0]).toMatchObject({ name: 'a', target: 'one', window: '30d', burnRateAlert: { rate: 14.4, minCalls: 10 } });
  });
});
