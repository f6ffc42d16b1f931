import type { InferenceRequest } from './request.js';
import type { InferenceResponse } from './response.js';
import type { ModelSpec } from './spec.js';

/** The model's config as Triton's JSON form (snake_case), completed and validated by the host. */
export interface ModelConfig {
  name: string;
  backend?: string;
  platform?: string;
  max_batch_size: number;
  input: { name: string; data_type: string; dims: number[]; optional?: boolean; reshape?: { shape: number[] } }[];
  output: { name: string; data_type: string; dims: number[]; reshape?: { shape: number[] } }[];
  parameters?: Record<string, { string_value: string }>;
  // The scheduling fields a model reads most, typed loosely (Triton's names; the host validated them).
  dynamic_batching?: { preferred_batch_size?: number[]; max_queue_delay_microseconds?: number; priority_levels?: number; [field: string]: unknown };
  sequence_batching?: {
    max_sequence_idle_microseconds?: number;
    control_input?: { name: string; control: { kind: string; data_type?: string; [field: string]: unknown }[] }[];
    state?: { input_name: string; output_name: string; data_type?: string; dims: number[]; [field: string]: unknown }[];
    [field: string]: unknown;
  };
  model_transaction_policy?: { decoupled?: boolean };
  instance_group?: { name?: string; kind?: string; count?: number; [field: string]: unknown }[];
  [field: string]: unknown;
}

export interface ModelInitArgs {
  modelConfig: ModelConfig;
  modelName: string;
  modelVersion: number;
  modelRepository: string;
  instanceName: string;
  instanceKind: string;
  instanceDeviceId: number;
  /** The model file this instance serves (`<version>/model.ts`, `model.onnx`, ...). */
  modelFile?: string;
  /** The model's folder in the repository. */
  modelDir?: string;
}

/**
 * What a model.ts default-exports (a class implementing this). `Model<Spec>` with the Spec of the
 * model's generated config.types.ts types its requests and responses by the config.
 */
export interface Model<S extends ModelSpec = ModelSpec> {
  initialize?(args: ModelInitArgs): void | Promise<void>;
  /** One response per request, in order; decoupled models send through responseSender() and return nothing. */
  execute(requests: InferenceRequest<S>[]): InferenceResponse<S>[] | void | Promise<InferenceResponse<S>[] | void>;
  finalize?(): void | Promise<void>;
  /**
   * Optional, as Triton's python backend `is_ready`: asked on every model readiness check
   * (`/v2/models/{m}/ready`, gRPC ModelReady, and server readiness with --strict-readiness). It
   * must return a boolean soon (5 s, as Triton): false, a throw, another value or no answer in
   * time make the model not ready for that check. Concurrent checks share one call per instance.
   * Readiness only: requests are still scheduled to the instance.
   */
  isReady?(): boolean | Promise<boolean>;
}

/** Where the model lives, for backends that complete the config from their files. */
export interface AutoCompleteContext {
  /** The model file the version folder names (`<version>/model.ts`, `model.onnx`, ...). */
  modelFile: string;
  /** The model's folder in the repository. */
  modelDir: string;
}

export interface ModelClass {
  new (): Model;
  /**
   * Completes a config that lacks fields (inputs, outputs, max_batch_size), like Triton's. The
   * config it receives is an `AutoCompleteModelConfig` (declare the parameter so to use them):
   * `addInput`, `addOutput`, `setMaxBatchSize`, `setDynamicBatching`, `setModelTransactionPolicy`.
   */
  autoCompleteConfig?(config: ModelConfig, context?: AutoCompleteContext): ModelConfig | Promise<ModelConfig>;
}
