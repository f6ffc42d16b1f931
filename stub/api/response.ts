import { ModelError, asModelError } from './errors.js';
import type { ModelSpec, OutputName, OutputTensor, OutputTensorNamed } from './spec.js';
import type { Tensor } from './tensor.js';

export type ParameterValue = string | number | boolean;

/** Marks which spec a response was built for (types only: no such property exists at run time). */
declare const SPEC: unique symbol;

/**
 * One response: outputs, or an error that fails only its own request. `InferenceResponse<Spec>`
 * accepts only the outputs the config declares, each with its dtype; where a typed response is
 * expected (a typed execute's return type) `new InferenceResponse({...})` infers the spec.
 */
export class InferenceResponse<S extends ModelSpec = ModelSpec> {
  declare readonly [SPEC]?: S;
  readonly outputs: Tensor[];
  readonly error?: ModelError;
  readonly parameters: Record<string, ParameterValue>;

  constructor(opts: { outputs?: OutputTensor<S>[]; error?: ModelError | string; parameters?: Record<string, ParameterValue> } = {}) {
    this.outputs = opts.outputs ?? [];
    this.error = opts.error === undefined ? undefined : asModelError(opts.error);
    this.parameters = opts.parameters ?? {};
  }

  output<K extends OutputName<S>>(name: K): OutputTensorNamed<S, K> {
    return (this.outputs as Tensor[]).find((t) => t.name === name) as OutputTensorNamed<S, K>;
  }

  hasError(): boolean {
    return this.error !== undefined;
  }
}
