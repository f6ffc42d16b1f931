/**
 * The model parameter `debug_inspect_port`: starts the model's stubs with
 * `--inspect=127.0.0.1:<port>` so a debugger (Chrome DevTools, VS Code "attach") can attach to
 * the model code. Port 0 lets each stub pick a free port (it logs "Debugger listening on ws://...").
 * Only loopback: the inspector runs any code it is sent.
 */
import { StubhostError } from '../errors.js';
import { DEBUG_INSPECT_PORT_PARAMETER } from '../core/model-parameters.js';

export const DEBUG_INSPECT_PORT = DEBUG_INSPECT_PORT_PARAMETER;

/** The node flag for this model's stubs, or none when the parameter is not set. */
export function inspectFlags(modelName: string, parameters: unknown): string[] {
  const value = (parameters as Record<string, { string_value?: unknown }> | undefined)?.[DEBUG_INSPECT_PORT]?.string_value;
  if (value === undefined || value === '') return [];
  const port = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim()) || port > 65535) {
    throw new StubhostError('STUBHOST_CONFIG', `model '${modelName}': parameters["${DEBUG_INSPECT_PORT}"]: ${JSON.stringify(value)} is not a port; give 0..65535 (0 = any free port)`);
  }
  return [`--inspect=127.0.0.1:${port}`];
}
