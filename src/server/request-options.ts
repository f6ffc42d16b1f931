/**
 * The protocol adapter for parameters the protocol itself consumes, shared by the HTTP infer,
 * generate and gRPC front-ends: request options (priority, timeout, sequence_*, binary data and
 * empty-final-response flags) and the repository API's load / unload parameters. Each protocol
 * only says how its values are typed (a `ValueReader`: JSON values, or gRPC's typed
 * InferParameter fields, with each protocol's words for a wrong type); which names are reserved,
 * what they mean and which values are refused is decided here, once.
 *
 * As Triton's front-ends (server src/http_server.cc and src/grpc/infer_handler.cc
 * SetInferenceRequestMetadata): 0 as sequence_id means "not part of a sequence", the reserved
 * names never reach the model.
 */
import { StubhostError } from '../errors.js';
import type { InferRequest } from '../core/types.js';
import { invalidInput, isNonNegativeInt } from '../core/validate.js';

/** Request parameters the protocols consume; the rest are passed to the model as given. */
export const RESERVED_REQUEST_PARAMETERS: ReadonlySet<string> = new Set([
  'priority', 'timeout', 'sequence_id', 'sequence_start', 'sequence_end', 'binary_data_output', 'triton_enable_empty_final_response',
]);

/** How one protocol's parameter values are read; each method throws that protocol's error for a value of the wrong type. */
export interface ValueReader<V> {
  /** A non-negative integer (bigint beyond 2^53). */
  uint(name: string, value: V): number | bigint;
  bool(name: string, value: V): boolean;
  /** sequence_id: a non-negative integer or a string. */
  sequenceId(value: V): number | bigint | string;
}

/** The request options that are not InferRequest fields: they shape the answer, not the run. */
export interface AnswerOptions {
  /** HTTP `binary_data_output`. */
  binaryDataOutput: boolean;
  /** gRPC `triton_enable_empty_final_response`. */
  emptyFinalResponse: boolean;
}

export function defaultAnswerOptions(): AnswerOptions {
  return { binaryDataOutput: false, emptyFinalResponse: false };
}

/**
 * Applies one request parameter: a reserved name sets its field of `request` (or of `answer`)
 * and true is returned; any other name is left to the caller (false), which passes it on to the model.
 */
export function applyRequestParameter<V>(request: InferRequest, answer: AnswerOptions, key: string, value: V, reader: ValueReader<V>): boolean {
  switch (key) {
    case 'priority':
      request.priority = Number(reader.uint(key, value));
      return true;
    case 'timeout':
      request.timeoutUs = Number(reader.uint(key, value));
      return true;
    case 'sequence_id': {
      const id = reader.sequenceId(value);
      if (typeof id === 'string') {
        if (id !== '') request.correlationId = id;
      } else if (id !== 0 && id !== 0n) {
        request.correlationId = BigInt(id);
      }
      return true;
    }
    case 'sequence_start':
      request.sequenceStart = reader.bool(key, value);
      return true;
    case 'sequence_end':
      request.sequenceEnd = reader.bool(key, value);
      return true;
    case 'binary_data_output':
      answer.binaryDataOutput = reader.bool(key, value);
      return true;
    case 'triton_enable_empty_final_response':
      answer.emptyFinalResponse = reader.bool(key, value);
      return true;
    default:
      return false;
  }
}

/** JSON parameters (HTTP infer and generate): the words the HTTP front-end has always used; 400 INVALID_INPUT as a bad tensor. */
export const JSON_VALUES: ValueReader<unknown> = {
  uint(name, value) {
    if (!isNonNegativeInt(value)) {
      throw invalidInput(`parameter '${name}' must be a non-negative integer${name === 'timeout' ? ' (microseconds)' : ''}, got ${JSON.stringify(value)}`);
    }
    return value;
  },
  bool(name, value) {
    if (typeof value !== 'boolean') throw invalidInput(`parameter '${name}' must be true or false, got ${JSON.stringify(value)}`);
    return value;
  },
  sequenceId(value) {
    if (typeof value === 'string' || isNonNegativeInt(value)) return value;
    throw invalidInput(`parameter 'sequence_id' must be a non-negative integer or a string, got ${JSON.stringify(value)}`);
  },
};

/** The repository API's refusals: INVALID_ARG, as Triton's. */
function invalid(message: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_ARG', message);
}

// ---- the repository API's load / unload ----

export interface LoadOptions {
  config?: string;
  files?: Record<string, Uint8Array>;
}

/** How one protocol carries the load parameters' values. */
export interface LoadValueReader<V> {
  /** The `config` parameter as the model config's JSON text. */
  config(value: V): string;
  /** A `file:<path>` parameter as the file's bytes. */
  file(key: string, value: V): Uint8Array;
}

/**
 * RepositoryModelLoad / POST .../load parameters: "config" (the JSON config) and "file:<path>"
 * (a file's content), as Triton defines them; other names are ignored, as Triton's. Undefined
 * when neither is given (a plain load). Model files override only together with a config
 * (Triton's rule, core src/model_repository_manager/model_repository_manager.cc).
 */
export function loadOptions<V>(params: Record<string, V>, reader: LoadValueReader<V>): LoadOptions | undefined {
  const out: LoadOptions = {};
  for (const key in params) {
    const value = params[key]!;
    if (key === 'config') out.config = reader.config(value);
    else if (key.startsWith('file:')) (out.files ??= {})[key.slice('file:'.length)] = reader.file(key, value);
  }
  if (out.files && out.config === undefined) {
    throw invalid(`'file:' parameters need a 'config' parameter as well`);
  }
  return out.config === undefined && !out.files ? undefined : out;
}

/** The unload parameter `unload_dependents`; undefined when absent. */
export function unloadOptions<V>(params: Record<string, V>, bool: (name: string, value: V) => boolean): { unloadDependents: boolean } | undefined {
  const value = params.unload_dependents;
  return value === undefined ? undefined : { unloadDependents: bool('unload_dependents', value) };
}

/** HTTP's JSON load parameters: the config as a JSON string (an object is accepted for convenience), files in base64. */
export const JSON_LOAD_VALUES: LoadValueReader<unknown> = {
  config(value) {
    if (typeof value === 'string') return value;
    if (typeof value === 'object' && value !== null) return JSON.stringify(value);
    throw invalid(`parameter 'config' must be the model config as a JSON string`);
  },
  file(key, value) {
    if (typeof value !== 'string') throw invalid(`parameter '${key}' must be the file content in base64`);
    return new Uint8Array(Buffer.from(value, 'base64'));
  },
};

/** HTTP's JSON unload_dependents. */
export function jsonBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(`parameter '${name}' must be true or false`);
  return value;
}
