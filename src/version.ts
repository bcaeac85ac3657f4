/** The gateway's identity as it presents itself to upstreams and agents. */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkg = require('../package.json') as { version: string };

export const GATEWAY_VERSION: string = pkg.version;
export const GATEWAY_INFO = { name: 'gatehouse', title: 'Gatehouse MCP gateway', version: GATEWAY_VERSION };
