/**
 * Server→client requests and the client capability each needs (2025-11-25 client features;
 * 2026-07-28 mrtr): a gateway never asks an agent for something it did not declare.
 */
import { GatehouseError } from './errors.ts';
import { isPlainObject, type JsonObject } from './jsonrpc.ts';

const REQUIRED_CAPABILITY: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** The typed refusal when `capabilities` lacks what `method` needs; undefined when it may be sent. */
export function missingCapability(method: string, capabilities: JsonObject): GatehouseError | undefined {
  const capability = REQUIRED_CAPABILITY[method];
  if (capability === undefined || isPlainObject(capabilities[capability])) return undefined;
  return new GatehouseError('MISSING_CLIENT_CAPABILITY', `the agent did not declare the ${capability} capability`, {
    // basic/index: `requiredCapabilities` is a ClientCapabilities object, not a list of names.
    data: { requiredCapabilities: { [capability]: {} } },
  });
}
