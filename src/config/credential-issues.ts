/**
 * What each target's `credentials` mode needs beyond the schema: checked at load, so a
 * misconfigured credential refuses the config instead of failing on the first call.
 */
import type { GatehouseConfig } from './schema.ts';
import type { ConfigIssue } from './load.ts';
import { isLoopbackHost } from './normalize.ts';

export function credentialIssues(input: GatehouseConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { vault } = input;
  const keyIds = vault.keys.map((k) => k.id);
  if (new Set(keyIds).size !== keyIds.length) issues.push({ path: 'vault.keys', reason: 'vault key ids must be unique' });
  if (vault.activeKey !== undefined && !keyIds.includes(vault.activeKey)) issues.push({ path: 'vault.activeKey', reason: `vault.activeKey "${vault.activeKey}" is not in vault.keys` });
  // Loopback http authorization servers are for development: on a routable gateway, an
  // upstream's metadata could aim the gateway's requests at its own loopback services.
  if (vault.allowLoopbackAuthorizationServers && !isLoopbackHost(input.listener.host)) {
    issues.push({ path: 'vault.allowLoopbackAuthorizationServers', reason: 'loopback authorization servers are allowed only for a gateway bound to loopback (development and tests)' });
  }
  if (vault.refresh.maxBackoffMs < vault.refresh.initialBackoffMs) issues.push({ path: 'vault.refresh.maxBackoffMs', reason: 'maxBackoffMs must be at least initialBackoffMs' });

  for (const [name, target] of Object.entries(input.targets)) {
    const where = `targets.${name}.credentials`;
    const credentials = target.credentials;
    switch (credentials.mode) {
      case 'none':
        break;
      case 'static':
        if (target.transport === 'stdio' && credentials.envVar === undefined) {
          issues.push({ path: `${where}.envVar`, reason: 'a stdio target receives its static secret in an environment variable: name it in envVar' });
        }
        if (target.transport !== 'stdio' && credentials.envVar !== undefined) {
          issues.push({ path: `${where}.envVar`, reason: 'envVar is for stdio targets; an HTTP target gets the secret in a header' });
        }
        if (target.transport === 'stdio' && credentials.envVar !== undefined && Object.hasOwn(target.env, credentials.envVar)) {
          issues.push({ path: `${where}.envVar`, reason: `${credentials.envVar} is also set in targets.${name}.env: the secret would be shadowed or exposed in config` });
        }
        break;
      case 'client-credentials':
      case 'user-oauth':
        // Tokens are stored encrypted or not at all: without a key there is nowhere safe to keep them.
        if (vault.keys.length === 0) issues.push({ path: where, reason: `credentials mode ${credentials.mode} stores tokens encrypted at rest: configure vault.keys` });
        if (target.transport === 'stdio') issues.push({ path: where, reason: `credentials mode ${credentials.mode} needs an HTTP target (a stdio server has no HTTP authorization)` });
        if (credentials.mode === 'client-credentials' && credentials.client.secret === undefined && credentials.client.privateKey === undefined) {
          issues.push({ path: `${where}.client`, reason: 'client credentials need client.secret or client.privateKey' });
        }
        // A client secret, a signing key and the user assertions of a token exchange go to the
        // authorization server: which one must not be up to the upstream's own metadata, which
        // a compromised or malicious server controls.
        {
          const client = credentials.client;
          const holdsSecret = client !== undefined && (client.secret !== undefined || client.privateKey !== undefined);
          const exchanges = credentials.mode === 'user-oauth' && credentials.tokenExchange !== undefined;
          if ((holdsSecret || exchanges) && credentials.authorizationServer === undefined) {
            issues.push({ path: `${where}.authorizationServer`, reason: 'a pre-registered client with a secret or key (or a token exchange) needs authorizationServer: the issuer it was registered at' });
          }
        }
        break;
    }
  }
  return issues;
}
