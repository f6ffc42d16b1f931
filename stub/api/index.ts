/**
 * The model API: what a model.ts imports as 'stubhost'. README.md, "The model API", lists it.
 */
export { Tensor } from './tensor.js';
export type { DataType, TypedArray, TensorData, TensorConstructor } from './tensor.js';
export type { DataByType, DataOf, DtypeOfArray, InputName, InputTensor, ModelSpec, OutputName, OutputTensor, OutputTensorNamed, TensorSpec } from './spec.js';
export { InferenceRequest, ResponseSender } from './request.js';
export type { InferenceRequestOptions } from './request.js';
export { InferenceResponse } from './response.js';
export type { ParameterValue } from './response.js';
export { ModelError } from './errors.js';
export type { ModelErrorCode } from './errors.js';
export { logger } from './logger.js';
export type { AutoCompleteContext, Model, ModelClass, ModelConfig, ModelInitArgs } from './model.js';
export { concatInputs, splitOutput, type HasInputs } from './batching.js';
export type { AutoCompleteInput, AutoCompleteModelConfig, AutoCompleteOutput } from './auto-complete.js';
export { MetricFamily, Metric } from './metrics.js';
export type { MetricFamilyOptions, MetricKind } from './metrics.js';
export { loadModel, unloadModel, isModelReady } from './models.js';
export type { LoadModelOptions } from './models.js';

import type { ModelConfig as ModelConfigType } from './model.js';
declare global {
  /**
   * A model may declare `static autoCompleteConfig?(config: ModelConfig): ModelConfig` without
   * importing ModelConfig: importing 'stubhost' makes the name available (test/api-types.test.ts
   * checks such a model). `import type { ModelConfig } from 'stubhost'` is the same type.
   */
  type ModelConfig = ModelConfigType;
}
