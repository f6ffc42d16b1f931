/** The error model code raises or returns; its code maps to a gRPC/HTTP status at the server's edge. */
export type ModelErrorCode = 'INVALID_ARG' | 'INTERNAL' | 'NOT_FOUND' | 'UNAVAILABLE' | 'UNSUPPORTED' | 'CANCELLED' | 'TIMEOUT';

const CODES: readonly string[] = ['INVALID_ARG', 'INTERNAL', 'NOT_FOUND', 'UNAVAILABLE', 'UNSUPPORTED', 'CANCELLED', 'TIMEOUT'];

export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(message: string, code: ModelErrorCode = 'INTERNAL') {
    super(message);
    this.name = 'ModelError';
    this.code = CODES.includes(code) ? code : 'INTERNAL';
  }
}

/**
 * Reads an error made by either copy of this module (a CommonJS model gets its own copy, so
 * `instanceof` cannot be trusted): anything with a message and an optional known code.
 */
export function asModelError(value: unknown): ModelError {
  if (value instanceof ModelError) return value;
  if (typeof value === 'string') return new ModelError(value);
  if (value && typeof value === 'object' && 'message' in value) {
    const v = value as { message: unknown; code?: unknown };
    const code = typeof v.code === 'string' && CODES.includes(v.code) ? (v.code as ModelErrorCode) : 'INTERNAL';
    return new ModelError(String(v.message), code);
  }
  return new ModelError(String(value));
}
