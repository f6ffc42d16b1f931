/**
 * A hook the stub sets to see every Tensor model code builds, so it can remember where one was
 * built that may break the model's output contract (src/model/output-contract.ts) and name that
 * place in the error. It lives on globalThis under a registered symbol, so the copy of the API
 * a CommonJS model.ts gets reaches it too. Unset (tests, tools), constructing a Tensor costs
 * one property read more.
 */
export interface TensorHook {
  (tensor: { readonly name: string; readonly dtype: string; readonly shape: readonly number[] }): void;
}

const HOOK = Symbol.for('stubhost.tensor-hook');

export function tensorHook(): TensorHook | undefined {
  return (globalThis as Record<symbol, TensorHook | undefined>)[HOOK];
}

export function setTensorHook(hook: TensorHook | undefined): void {
  (globalThis as Record<symbol, TensorHook | undefined>)[HOOK] = hook;
}
