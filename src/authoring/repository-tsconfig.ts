/**
 * The tsconfig.json `stubhost init` writes at the repository root: `tsc --noEmit -p <repo>`
 * type-checks every model of the repository wherever it lives. 'stubhost' and the packages
 * stubhost ships are mapped by absolute path to this installed stubhost (the same files the
 * stubs load), so the repository needs no node_modules of its own. The options are the ones tsx
 * compiles model.ts with (stub/tsconfig.models.json): module "preserve", bundler resolution, so
 * ESM and CommonJS model folders both check.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../tools/package-info.js';

export const TSCONFIG_FILE = 'tsconfig.json';
/** Marks a tsconfig stubhost wrote (JSON has no comments): only those are rewritten. */
const MARK = 'Written by stubhost init';

/** Packages a model may import without installing them (stub/shipped-packages.mjs). */
const SHIPPED_PACKAGES = ['onnxruntime-node'];

export function repositoryTsconfig(): Record<string, unknown> {
  const root = packageRoot();
  const require = createRequire(path.join(root, 'package.json'));
  const paths: Record<string, string[]> = { stubhost: [path.join(root, 'stub', 'api', 'index.ts')] };
  for (const pkg of SHIPPED_PACKAGES) {
    try {
      paths[pkg] = [path.dirname(require.resolve(`${pkg}/package.json`))];
    } catch {
      // not installed with this stubhost: leave it to the repository's own node_modules
    }
  }
  // The model API uses node: modules; their types come from stubhost's @types/node when it has them.
  const nodeTypes = path.join(root, 'node_modules', '@types', 'node');
  return {
    '//': `${MARK}: \`npx tsc --noEmit -p .\` type-checks the models here. 'stubhost' and ${SHIPPED_PACKAGES.join(', ')} map to the stubhost at ${root}; after moving or reinstalling it, run \`stubhost types\` to rewrite these paths.`,
    compilerOptions: {
      target: 'ES2022',
      module: 'preserve',
      moduleResolution: 'bundler',
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      esModuleInterop: true,
      isolatedModules: true,
      ...(existsSync(nodeTypes) ? { types: ['node'], typeRoots: [path.dirname(nodeTypes)] } : {}),
      paths,
    },
    include: ['**/*.ts'],
    exclude: ['**/node_modules'],
  };
}

export type TsconfigOutcome = 'written' | 'unchanged' | 'own';

/**
 * Writes `<repository>/tsconfig.json` when it is missing or is one stubhost wrote ('own': the
 * repository has its own tsconfig, left as it is). `create`: false only refreshes an existing one.
 */
export function writeRepositoryTsconfig(repository: string, create: boolean): TsconfigOutcome | undefined {
  const file = path.join(repository, TSCONFIG_FILE);
  const text = `${JSON.stringify(repositoryTsconfig(), null, 2)}\n`;
  if (!existsSync(file)) {
    if (!create) return undefined;
    writeFileSync(file, text);
    return 'written';
  }
  const old = readFileSync(file, 'utf8');
  if (!old.includes(MARK)) return 'own';
  if (old === text) return 'unchanged';
  writeFileSync(file, text);
  return 'written';
}
