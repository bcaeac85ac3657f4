/** `npm run schema`: write the config's JSON Schema for editors to docs/config.schema.json. */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema } from './schema.ts';

const file = new URL('../../docs/config.schema.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(z.toJSONSchema(configSchema, { io: 'input' }), null, 2)}\n`);
process.stdout.write(`wrote ${file.pathname}\n`);
