import { format } from 'node:util';
import { getRuntime, type LogLevel } from './runtime.js';

function emit(level: LogLevel, args: unknown[]): void {
  const message = format(...args);
  const runtime = getRuntime();
  if (runtime) runtime.log(level, message);
  else if (level === 'error') console.error(message);
  else if (level === 'warn') console.warn(message);
  else console.log(message);
}

/** Logs reach the host's log, tagged with the model and instance names. */
export const logger = {
  error: (...args: unknown[]): void => emit('error', args),
  warn: (...args: unknown[]): void => emit('warn', args),
  info: (...args: unknown[]): void => emit('info', args),
  verbose: (...args: unknown[]): void => emit('verbose', args),
};
