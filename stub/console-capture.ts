/** Model code's console output goes to the host's log (as log messages), not to the stub's stdout. */
import { format } from 'node:util';
import type { LogLevel } from './api/runtime.js';

export function captureConsole(log: (level: LogLevel, message: string) => void): void {
  const send = (level: LogLevel) => (...args: unknown[]) => log(level, format(...args));
  console.log = send('info');
  console.info = send('info');
  console.warn = send('warn');
  console.error = send('error');
  console.debug = send('verbose');
}
