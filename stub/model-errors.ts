/**
 * Errors of model code as the host and its clients see them: the message and the frames in the
 * model folder (see error-location.ts), a model error's code on the wire, and back (a BLS
 * caller sees the host's codes as ModelError codes).
 */
import { MODEL_ERROR_CODES, type ErrorBody } from '../src/errors.js';
import { ModelError, asModelError } from './api/errors.js';
import type { LogLevel } from './api/runtime.js';
import type { ErrorLocator } from './error-location.js';

export class ModelErrors {
  constructor(private readonly locator: () => ErrorLocator, private readonly log: (level: LogLevel, message: string) => void) {}

  /**
   * An error as a client sees it: `Name: message` and the frames in the model folder, paths
   * relative to it. The full stack is logged by the caller.
   */
  clientDescription(err: unknown): string {
    const locator = this.locator();
    if (!(err instanceof Error)) return locator.message(String(err));
    const head = `${err.name}: ${locator.message(err.message)}`;
    const frames = err.stack ? locator.frames(err.stack) : '';
    return frames ? `${head}\n${frames}` : head;
  }

  /**
   * A model error on the wire: its code, and `context: message`. An unexpected error (code
   * INTERNAL) also carries its model frames; its full stack goes to the server log.
   */
  errorBody(err: unknown, context: string): ErrorBody {
    const e = asModelError(err);
    const code = MODEL_ERROR_CODES[e.code] ?? 'STUBHOST_MODEL_ERROR';
    const text = this.locator().message(e.message);
    if (!context) return { code, message: text };
    if (e.code !== 'INTERNAL' || !(err instanceof Error) || !err.stack) return { code, message: `${context}: ${text}` };
    this.log('error', `${context}: ${err.stack}`);
    const name = err.name === 'Error' || err.name === 'ModelError' ? '' : `${err.name}: `;
    const frames = this.locator().frames(err.stack);
    return { code, message: `${context}: ${name}${text}${frames ? `\n${frames}` : ''}` };
  }

  /** The first line of what a crash says, without absolute paths (it reaches clients). */
  firstLine(err: unknown): string {
    return this.locator().message(err instanceof Error ? `${err.name}: ${err.message}` : String(err)).split('\n')[0]!;
  }
}

/** Host codes a BLS caller sees as ModelError codes (the message keeps the detail). */
const HOST_TO_MODEL_CODE: Record<string, ConstructorParameters<typeof ModelError>[1]> = {
  STUBHOST_MODEL_NOT_FOUND: 'NOT_FOUND',
  STUBHOST_MODEL_NOT_READY: 'UNAVAILABLE',
  STUBHOST_QUEUE_FULL: 'UNAVAILABLE',
  STUBHOST_CLOSED: 'UNAVAILABLE',
  STUBHOST_INVALID_INPUT: 'INVALID_ARG',
  STUBHOST_CONFIG: 'INVALID_ARG',
  STUBHOST_UNSUPPORTED: 'UNSUPPORTED',
};

export function modelCodeOf(code: string): ConstructorParameters<typeof ModelError>[1] {
  for (const [k, v] of Object.entries(MODEL_ERROR_CODES)) if (v === code) return k as ConstructorParameters<typeof ModelError>[1];
  return HOST_TO_MODEL_CODE[code] ?? 'INTERNAL';
}

/** An error with its stack, for the server log. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
