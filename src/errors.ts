/**
 * The one error catalogue: stable codes, an HTTP status and a gRPC status for each.
 * Errors cross the shared-memory queues as `{ code, message }` and become statuses only at the
 * HTTP/gRPC edge (see `httpStatusOf` / `grpcStatusOf`).
 */

export const ERROR_CODES = {
  STUBHOST_INVALID_ARG: { http: 400, grpc: 3 /* INVALID_ARGUMENT */ },
  STUBHOST_INVALID_INPUT: { http: 400, grpc: 3 },
  STUBHOST_NOT_FOUND: { http: 404, grpc: 5 /* NOT_FOUND */ },
  STUBHOST_MODEL_NOT_FOUND: { http: 404, grpc: 5 },
  STUBHOST_MODEL_NOT_READY: { http: 503, grpc: 14 /* UNAVAILABLE */ },
  STUBHOST_UNAVAILABLE: { http: 503, grpc: 14 },
  STUBHOST_QUEUE_FULL: { http: 503, grpc: 14 },
  STUBHOST_BODY_TOO_LARGE: { http: 413, grpc: 8 /* RESOURCE_EXHAUSTED */ },
  STUBHOST_ARENA_FULL: { http: 503, grpc: 8 },
  STUBHOST_TIMEOUT: { http: 504, grpc: 4 /* DEADLINE_EXCEEDED */ },
  STUBHOST_CANCELLED: { http: 499, grpc: 1 /* CANCELLED */ },
  STUBHOST_UNSUPPORTED: { http: 400, grpc: 12 /* UNIMPLEMENTED */ },
  /** A model's ModelError 'UNSUPPORTED': 501 Not Implemented, as Triton maps TRITONSERVER_ERROR_UNSUPPORTED. */
  STUBHOST_MODEL_UNSUPPORTED: { http: 501, grpc: 12 },
  /** Triton's TRITONSERVER_ERROR_UNSUPPORTED where its front-ends answer it: 501 / UNIMPLEMENTED (src/http_server.cc HttpCodeFromError). */
  STUBHOST_NOT_IMPLEMENTED: { http: 501, grpc: 12 },
  /** Client shared memory off (--allow-client-shm false): Triton's TRITONSERVER_ERROR_UNSUPPORTED, 501 / UNIMPLEMENTED. */
  STUBHOST_CLIENT_SHM_DISABLED: { http: 501, grpc: 12 },
  /** A server-wide bound reached (e.g. --client-shm-max-regions): retry after releasing something. */
  STUBHOST_RESOURCE_EXHAUSTED: { http: 503, grpc: 8 /* RESOURCE_EXHAUSTED */ },
  STUBHOST_STUB_DIED: { http: 500, grpc: 13 /* INTERNAL */ },
  STUBHOST_STUB_UNHEALTHY: { http: 500, grpc: 13 },
  STUBHOST_MODEL_ERROR: { http: 500, grpc: 13 },
  STUBHOST_CONFIG: { http: 400, grpc: 3 },
  STUBHOST_LOAD_FAILED: { http: 400, grpc: 13 },
  STUBHOST_PROTOCOL: { http: 500, grpc: 13 },
  STUBHOST_CLOSED: { http: 503, grpc: 14 },
  STUBHOST_INTERNAL: { http: 500, grpc: 13 },
  /** A server feature Triton answers TRITONSERVER_ERROR_UNSUPPORTED for (e.g. log_file over the network): 501 / UNIMPLEMENTED. */
  STUBHOST_SERVER_UNSUPPORTED: { http: 501, grpc: 12 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The form an error takes on the shared-memory queues and in logs. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export class StubhostError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StubhostError';
    this.code = code;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get grpcStatus(): number {
    return ERROR_CODES[this.code].grpc;
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }

  static fromBody(body: ErrorBody): StubhostError {
    const code = body.code in ERROR_CODES ? body.code : 'STUBHOST_INTERNAL';
    return new StubhostError(code, body.message);
  }
}

/** Model code reports errors with ModelError codes (stub/api/errors.ts); this maps them to the catalogue. */
export const MODEL_ERROR_CODES: Record<string, ErrorCode> = {
  INVALID_ARG: 'STUBHOST_INVALID_ARG',
  INTERNAL: 'STUBHOST_MODEL_ERROR',
  NOT_FOUND: 'STUBHOST_NOT_FOUND',
  UNAVAILABLE: 'STUBHOST_UNAVAILABLE',
  UNSUPPORTED: 'STUBHOST_MODEL_UNSUPPORTED',
  CANCELLED: 'STUBHOST_CANCELLED',
  TIMEOUT: 'STUBHOST_TIMEOUT',
};

export function toStubhostError(err: unknown, fallback: ErrorCode = 'STUBHOST_INTERNAL'): StubhostError {
  if (err instanceof StubhostError) return err;
  if (err instanceof Error) return new StubhostError(fallback, err.message, { cause: err });
  return new StubhostError(fallback, String(err));
}

export function httpStatusOf(err: unknown): number {
  return err instanceof StubhostError ? err.httpStatus : 500;
}

export function grpcStatusOf(err: unknown): number {
  return err instanceof StubhostError ? err.grpcStatus : 13;
}

/**
 * An error made in bulk (a cancel storm, a queue timing out): its stack would only name the
 * scheduler, and capturing it is most of the cost of failing a queued request.
 */
export function stacklessError(code: 'STUBHOST_CANCELLED' | 'STUBHOST_TIMEOUT', message: string): StubhostError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new StubhostError(code, message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
