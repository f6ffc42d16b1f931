/**
 * The authoring commands: `stubhost types` and `stubhost init`. src/cli.ts dispatches here.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { initModel, InitError } from './init-model.js';
import { writeRepositoryTypes } from './model-types.js';
import { writeRepositoryTsconfig } from './repository-tsconfig.js';


const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`stubhost: ${line}\n`);

export async function runAuthoringCommand(argv: string[]): Promise<number> {
  const command = argv[0];
  let args;
  try {
    args = parseArgs({
      args: argv.slice(1),
      allowPositionals: true,
      options: {
        'model-repository': { type: 'string' },
        onnx: { type: 'string' },
        batching: { type: 'boolean' },
        decoupled: { type: 'boolean' },
        sequence: { type: 'boolean' },
      },
    });
  } catch (e) {
    err(`${(e as Error).message}\nRun stubhost --help for the options.`);
    return 2;
  }
  const o = args.values;
  const repository = o['model-repository'] ?? '.';
  if (command === 'types') {
    const misplaced = (['onnx', 'batching', 'decoupled', 'sequence'] as const).find((k) => o[k] !== undefined);
    if (misplaced) {
      err(`--${misplaced} is an option of stubhost init, not of stubhost types`);
      return 2;
    }
    let results;
    try {
      results = await writeRepositoryTypes(repository, args.positionals);
    } catch (e) {
      err((e as Error).message);
      return 1;
    }
    if (results.length === 0) out(`no models in ${path.resolve(repository)}`);
    for (const r of results) {
      if (r.error) err(`${r.model}: ${r.error}`);
      else if (r.skipped) out(`${r.model}: skipped: ${r.skipped}`);
      else out(`${r.model}: ${r.changed ? 'wrote' : 'up to date:'} ${r.file}`);
    }
    const tsconfig = writeRepositoryTsconfig(repository, false);
    if (tsconfig === 'written') out(`rewrote ${path.resolve(repository, 'tsconfig.json')} (the paths of this stubhost)`);
    return results.some((r) => r.error) ? 1 : 0;
  }
  // init
  if (args.positionals.length !== 1) {
    err(args.positionals.length === 0 ? 'stubhost init needs a model name: stubhost init <name> [--model-repository <dir>]' : `stubhost init takes one model name, got ${args.positionals.join(' ')}`);
    return 2;
  }
  try {
    const result = await initModel({
      repository,
      name: args.positionals[0]!,
      onnx: o.onnx,
      batching: o.batching === true,
      decoupled: o.decoupled === true,
      sequence: o.sequence === true,
    });
    for (const f of result.files) out(`wrote ${f}`);
    const tsconfig = path.resolve(repository, 'tsconfig.json');
    if (result.tsconfig === 'written') out(`wrote ${tsconfig}`);
    if (result.tsconfig === 'own') out(`${tsconfig} is your own: map 'stubhost' to this stubhost's stub/api/index.ts there to type-check the model (see the README, "Writing a model")`);
    out(`type-check: npx tsc --noEmit -p ${repository}    serve: stubhost serve --model-repository ${repository}`);
    return 0;
  } catch (e) {
    err((e as Error).message);
    return e instanceof InitError ? 2 : 1;
  }
}
