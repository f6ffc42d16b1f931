/** The authoring commands' lines of `stubhost --help`; src/cli.ts loads their code only when one runs. */
import { TYPES_FILE } from './types-file.js';

export const AUTHORING_HELP = `  stubhost types [--model-repository <dir>] [<model>...]
                                 Write each model's ${TYPES_FILE} from its config (default: every
                                 model; the repository defaults to the current folder).
  stubhost init <name> [--model-repository <dir>] [--batching] [--decoupled] [--sequence]
               [--onnx <file>]   Write a new model folder (config.pbtxt, 1/model.ts, its types)
                                 and the repository's tsconfig.json (npx tsc --noEmit -p <dir>).
`;

export const AUTHORING_COMMANDS = ['types', 'init'];
