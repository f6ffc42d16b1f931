/**
 * Types that tie the model API to one model's config. `stubhost types` writes a `ModelSpec` per
 * model (its `config.types.ts`); `Model<Spec>`, `InferenceRequest<Spec>` and
 * `InferenceResponse<Spec>` then know the model's inputs and outputs by name and dtype, so
 * `request.input('INPUT0')` is a `Tensor<'FP32'>` whose `.data` is a Float32Array, and an output
 * with a name or dtype the config does not declare is a compile error.
 *
 * Every generic parameter defaults to the untyped `ModelSpec`, under which the API is exactly the
 * untyped one (`input(name)` is `Tensor | undefined`, outputs are any `Tensor`). Types only: this
 * module has no run-time part.
 */
import type { DataType } from '../../src/core/dtypes.js';
import type { Tensor } from './tensor.js';

/** One input or output as the config declares it. */
export interface TensorSpec {
  dtype: DataType;
  /** The shape execute sees: the batch dim (-1) first when max_batch_size > 0, then dims (or reshape); -1 = any size. */
  shape: readonly number[];
  /** Inputs only: the request may leave it out (`optional: true` in the config). */
  optional?: boolean;
}

/** A model's inputs and outputs, as `stubhost types` derives them from its config. */
export interface ModelSpec {
  name: string;
  maxBatchSize: number;
  decoupled: boolean;
  inputs: Record<string, TensorSpec>;
  outputs: Record<string, TensorSpec>;
}

export type { DataByType, DataOf, DtypeOfArray } from './data-types.js';

export type InputName<S extends ModelSpec> = keyof S['inputs'] & string;
export type OutputName<S extends ModelSpec> = keyof S['outputs'] & string;

/**
 * What `request.input(name)` returns: the input's tensor, `| undefined` for an input the config
 * marks optional (the server rejects requests that lack a required input before execute sees
 * them). Untyped (`optional?: boolean`), that is `Tensor | undefined`.
 *
 * No conditional on S itself (only on its parts): TypeScript then measures S as covariant, so a
 * typed request or response is assignable to the untyped one.
 */
export type InputTensor<S extends ModelSpec, K extends string> =
  S['inputs'][K] extends { dtype: DataType; optional?: false } ? Tensor<S['inputs'][K]['dtype'], K> : Tensor<S['inputs'][K]['dtype'], K> | undefined;

/** A tensor the model may return: one of the config's outputs with its dtype (untyped: any Tensor). */
export type OutputTensor<S extends ModelSpec> = { [K in OutputName<S>]: Tensor<S['outputs'][K]['dtype'], K> }[OutputName<S>];

/** What `response.output(name)` returns. */
export type OutputTensorNamed<S extends ModelSpec, K extends string> = Tensor<S['outputs'][K]['dtype'], K> | undefined;
