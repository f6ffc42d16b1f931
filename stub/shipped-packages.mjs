// Loaded into every stub (node --import) after tsx: a model.ts anywhere on disk can import the
// packages stubhost ships without installing them. Resolution is the usual one first (the model
// folder's own node_modules win); only when that finds nothing is the import resolved again from
// stubhost's own folder. Plain JavaScript, like health-worker.mjs: it must not need tsx.
import Module, { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Packages stubhost depends on that model code may import. */
export const SHIPPED_PACKAGES = ['onnxruntime-node'];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shipped = new Set(SHIPPED_PACKAGES);
const packageOf = (specifier) => {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
};
const isShipped = (specifier) => typeof specifier === 'string' && shipped.has(packageOf(specifier));

// ES modules (a model folder whose package.json says "type": "module").
register('./shipped-packages-hooks.mjs', import.meta.url, {
  data: { shipped: SHIPPED_PACKAGES, parentURL: pathToFileURL(path.join(root, 'package.json')).href },
});

// CommonJS (tsx compiles model.ts as CommonJS where no package.json says "type": "module").
const fallbackParent = new Module(path.join(root, 'package.json'));
fallbackParent.filename = path.join(root, 'package.json');
fallbackParent.paths = Module._nodeModulePaths(root);
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, parent, isMain, options) {
  try {
    return resolveFilename.call(this, request, parent, isMain, options);
  } catch (err) {
    if (err?.code !== 'MODULE_NOT_FOUND' || !isShipped(request)) throw err;
    return resolveFilename.call(this, request, fallbackParent, isMain, options);
  }
};

// `import ort from 'onnxruntime-node'` compiled to CommonJS reads exports.default, which a
// TypeScript-built package marked __esModule lacks (it was undefined); as ES modules the default
// import is the whole module, so give the CommonJS form the same: default = the module itself.
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const exports = load.call(this, request, parent, isMain);
  if (isShipped(request) && exports !== null && typeof exports === 'object' && exports.__esModule && !Object.hasOwn(exports, 'default') && Object.isExtensible(exports)) {
    Object.defineProperty(exports, 'default', { value: exports, enumerable: false, configurable: true });
  }
  return exports;
};
