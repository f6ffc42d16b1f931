// Module resolution hooks (node:module register) for shipped-packages.mjs: an import of a package
// stubhost ships that the model's own folders cannot resolve is resolved from stubhost's folder.
let shipped = new Set();
let parentURL = '';

export function initialize(data) {
  shipped = new Set(data.shipped);
  parentURL = data.parentURL;
}

const packageOf = (specifier) => {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
};

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !shipped.has(packageOf(specifier))) throw err;
    return nextResolve(specifier, { ...context, parentURL });
  }
}
