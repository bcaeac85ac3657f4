/**
 * The answers for a name that is not in the caller's view. One constructor per kind, used by
 * dispatch (the name does not exist) and by authorization (the name exists but the caller may
 * not see it), so the two answers cannot drift apart: a denied name must look exactly like an
 * unknown one.
 */
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcId } from '../protocol/jsonrpc.ts';

export function unknownTool(name: string, id: JsonRpcId): GatehouseError {
  return new GatehouseError('TOOL_NOT_FOUND', `Unknown tool: ${name}`, { id });
}

export function unknownPrompt(name: string, id: JsonRpcId): GatehouseError {
  return new GatehouseError('PROMPT_NOT_FOUND', `Unknown prompt: ${name}`, { id });
}

export function unknownResource(uri: string, id: JsonRpcId): GatehouseError {
  return new GatehouseError('RESOURCE_NOT_FOUND', `Resource not found: ${uri}`, { id, data: { uri } });
}

export function unknownTask(taskId: string, id: JsonRpcId): GatehouseError {
  return new GatehouseError('TASK_NOT_FOUND', `Unknown task: ${taskId}`, { id });
}
