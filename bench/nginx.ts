/**
 * nginx (the Debian package, when installed) as a plain reverse proxy in front of the echo
 * server: config in the run's temp dir, loopback only, one worker, keep-alive upstream pool,
 * no buffering (SSE streams pass), access log on to a file, like the gateway's log line.
 * Runs in the foreground (`daemon off`) so the PID we hold is the master.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The nginx binary and its version, or undefined when `command -v nginx` finds nothing. */
export function findNginx(): { binary: string; version: string } | undefined {
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  const binary = which.stdout.trim();
  if (which.status !== 0 || binary === '') return undefined;
  const version = spawnSync(binary, ['-v'], { encoding: 'utf8' });
  const text = `${version.stderr}${version.stdout}`.trim();
  return { binary, version: /nginx\/(\S+)/.exec(text)?.[1] ?? text };
}

/** Write the config; returns the argv that runs nginx with it. */
export function nginxCommand(binary: string, dir: string, port: number, upstream: URL): { command: string; args: string[] } {
  const prefix = path.join(dir, 'nginx');
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  mkdirSync(path.join(prefix, 'temp'), { recursive: true });
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const conf = `
${asRoot ? 'user root;' : ''}
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${prefix}/logs/access.log;
  client_body_temp_path ${prefix}/temp/body;
  proxy_temp_path ${prefix}/temp/proxy;
  fastcgi_temp_path ${prefix}/temp/fastcgi;
  uwsgi_temp_path ${prefix}/temp/uwsgi;
  scgi_temp_path ${prefix}/temp/scgi;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_max_body_size 8m;
  upstream echo {
    server ${upstream.hostname}:${upstream.port};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
`;
  const file = path.join(prefix, 'nginx.conf');
  writeFileSync(file, conf);
  return { command: binary, args: ['-p', prefix, '-c', file, '-g', 'daemon off;'] };
}
