import { ModelError, asModelError } from './errors.js';
import type { Tensor } from './tensor.js';

export type ParameterValue = string | number | boolean;

/** One response: outputs, or an error that fails only its own request. */
export class InferenceResponse {
  readonly outputs: Tensor[];
  readonly error?: ModelError;
  readonly parameters: Record<string, ParameterValue>;

  constructor(opts: { outputs?: Tensor[]; error?: ModelError | string; parameters?: Record<string, ParameterValue> } = {}) {
    this.outputs = opts.outputs ?? [];
    this.error = opts.error === undefined ? undefined : asModelError(opts.error);
    this.parameters = opts.parameters ?? {};
  }

  output(name: string): Tensor | undefined {
    return this.outputs.find((t) => t.name === name);
  }

  hasError(): boolean {
    return this.error !== undefined;
  }
}
