/**
 * Reading a config file: YAML → zod validation → normalization. Every refusal names the file,
 * the path inside it and the reason, so an operator can fix it without reading code.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type GatehouseConfig } from './schema.ts';
import { normalizeConfig, type NormalizeEnv } from './normalize.ts';

export interface ConfigIssue {
  /** Dotted path inside the file, e.g. `targets.everything.command`. Empty for the root. */
  path: string;
  reason: string;
}

/** A config that cannot be used, with every problem found. */
export class ConfigError extends Error {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: ConfigIssue[]) {
    super(`${file}: invalid configuration\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.reason}`).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), reason: issue.message }));
}

/** Validate and normalize an already-parsed value; `file` is used for messages only. */
export function parseConfig(raw: unknown, file: string, env: NormalizeEnv): GatehouseConfig {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(file, issuesFromZod(parsed.error));
  const result = normalizeConfig(parsed.data, env);
  if (result.issues.length > 0) throw new ConfigError(file, result.issues);
  return result.config;
}

/** Parse YAML text, reporting syntax errors with their line. */
export function parseConfigText(text: string, file: string, env: NormalizeEnv): GatehouseConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({ path: '', reason: `YAML ${e.linePos?.[0] ? `line ${e.linePos[0].line}: ` : ''}${e.message.split('\n')[0]}` })),
    );
  }
  return parseConfig(doc.toJS(), file, env);
}

/** Read, parse, validate and normalize a config file. */
export async function loadConfigFile(file: string, env: NormalizeEnv): Promise<GatehouseConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(file, [{ path: '', reason: `cannot read file (${code})` }]);
  }
  return parseConfigText(text, file, env);
}
