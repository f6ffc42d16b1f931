/**
 * tsx, registered in a stub only when it loads a model.ts: the stub itself is compiled
 * JavaScript (dist/stub), so only model code and what it imports go through tsx, and an ONNX
 * model's stub never loads it. Both hooks, as `node --import tsx` gives: a model.ts in a folder
 * without "type": "module" is CommonJS, and its require() calls need the CommonJS hook. tsx
 * reads the tsconfig the host names in TSX_TSCONFIG_PATH (stub/tsconfig.models.json), which
 * resolves 'stubhost' to the compiled model API, the same module instance the stub uses.
 */
let registered: Promise<void> | undefined;

export function registerTypeScript(): Promise<void> {
  registered ??= (async () => {
    const [esm, cjs] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]);
    cjs.register();
    esm.register();
  })();
  return registered;
}
