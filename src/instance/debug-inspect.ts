/**
 * The model parameter `debug_inspect_port`: starts the model's stubs with
 * `--inspect=127.0.0.1:<port>` so a debugger (Chrome DevTools, VS Code "attach") can attach to
 * the model code. Port 0 lets each stub pick a free port (it logs "Debugger listening on ws://...").
 * Only loopback: the inspector runs any code it is sent.
 */
import { StubhostError } from '../errors.js';
import { DEBUG_INSPECT_PORT_PARAMETER, debugInspectPortOf, type ParameterMap } from '../core/model-parameters.js';

export const DEBUG_INSPECT_PORT = DEBUG_INSPECT_PORT_PARAMETER;

/**
 * The node flag for this model's stubs, or none when the parameter is not set. ModelVersion
 * refuses a bad port at load (InitArgs.settings.debugInspectPort); the check here covers a stub
 * started on its own.
 */
export function inspectFlags(modelName: string, parameters: unknown): string[] {
  let port: number | undefined;
  try {
    port = debugInspectPortOf(parameters as ParameterMap);
  } catch (err) {
    throw new StubhostError('STUBHOST_CONFIG', `model '${modelName}': ${(err as Error).message}`);
  }
  return port === undefined ? [] : [`--inspect=127.0.0.1:${port}`];
}
