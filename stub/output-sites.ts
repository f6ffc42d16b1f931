/**
 * Where model code built a Tensor that may break the model's output contract: the host checks
 * every response against the config (src/model/output-contract.ts) and names this place in the
 * error (`1/model.ts:12:9`). A stack is captured only for a Tensor that could not be a correct
 * output (a name the config declares neither as an output nor as an input, another dtype,
 * another rank or fixed dim), so correct outputs cost a map lookup; tensors the stub itself
 * builds (inputs, BLS results) are not looked at.
 */
import { setTensorHook, type TensorHook } from './api/tensor-hook.js';
import type { ErrorLocator } from './error-location.js';
import { fromConfigType } from '../src/core/dtypes.js';

interface Declared {
  dtype: string;
  dims: readonly number[];
}

export class OutputSites {
  private readonly outputs = new Map<string, Declared>();
  /** Input names: tensors named so are inputs being built (concatInputs, BLS), not outputs gone wrong. */
  private readonly inputs = new Set<string>();
  private readonly batched: boolean;
  private readonly stacks = new WeakMap<object, { stack?: string }>();
  /** Any stack captured yet: until then toWire does not look. */
  private captured = false;
  /** The stub is building tensors of its own (inputs, BLS results): not model code's outputs. */
  private internal = 0;

  constructor(config: Record<string, unknown>, private readonly locator: () => ErrorLocator) {
    this.batched = Number(config.max_batch_size ?? 0) > 0;
    const list = Array.isArray(config.output) ? (config.output as { name?: unknown; data_type?: unknown; dims?: unknown; reshape?: { shape?: unknown } }[]) : [];
    for (const o of list) {
      const dtype = typeof o.data_type === 'string' ? fromConfigType(o.data_type) : undefined;
      const dims = Array.isArray(o.reshape?.shape) ? o.reshape.shape : o.dims;
      if (typeof o.name === 'string' && dtype && Array.isArray(dims)) this.outputs.set(o.name, { dtype, dims: dims as number[] });
    }
    for (const i of Array.isArray(config.input) ? (config.input as { name?: unknown }[]) : []) {
      if (typeof i.name === 'string' && !this.outputs.has(i.name)) this.inputs.add(i.name);
    }
  }

  install(): void {
    setTensorHook(this.hook);
  }

  /** Runs `build` (the stub's own tensors) without looking at what it constructs. */
  quietly<T>(build: () => T): T {
    this.internal++;
    try {
      return build();
    } finally {
      this.internal--;
    }
  }

  /** Where `tensor` was built, when it was suspect: the first frame in the model folder. */
  siteOf(tensor: unknown): string | undefined {
    if (!this.captured || typeof tensor !== 'object' || tensor === null) return undefined;
    const holder = this.stacks.get(tensor);
    if (!holder?.stack) return undefined;
    const first = this.locator().frames(holder.stack).split('\n')[0];
    if (!first) return undefined;
    // "    at fn (1/model.ts:12:9)" or "    at 1/model.ts:12:9".
    return /\(([^()]+)\)$/.exec(first)?.[1] ?? /^\s*at (.+)$/.exec(first)?.[1];
  }

  private readonly hook: TensorHook = (t) => {
    if (this.internal > 0 || this.inputs.has(t.name) || this.fits(t)) return;
    const holder: { stack?: string } = {};
    Error.captureStackTrace(holder, this.hook);
    this.stacks.set(t, holder);
    this.captured = true;
  };

  private fits(t: { name: string; dtype: string; shape: readonly number[] }): boolean {
    const d = this.outputs.get(t.name);
    if (!d || d.dtype !== t.dtype) return false;
    const offset = this.batched ? 1 : 0;
    if (t.shape.length !== d.dims.length + offset) return false;
    for (let k = 0; k < d.dims.length; k++) if (d.dims[k] !== -1 && d.dims[k] !== t.shape[k + offset]) return false;
    return true;
  }
}
