/**
 * `stubhost dev`'s type check of one model: its version folders' `model.ts` files (and what they
 * import) through the TypeScript compiler API, with the repository's tsconfig.json when it has
 * one, else the options `stubhost init` writes (src/authoring/repository-tsconfig.ts). Errors are
 * reported with their place, relative to the repository (`add_sub/1/model.ts:12:9`).
 *
 * Kept warm between checks: the previous program is handed to the next one and parsed source
 * files are cached by modification time, so a check after a save re-reads only what changed
 * (lib and @types files are parsed and bound once).
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { repositoryTsconfig, TSCONFIG_FILE } from '../authoring/repository-tsconfig.js';

export interface TypeProblem {
  /** `model/1/model.ts:12:9`, relative to the repository; '' for an options error. */
  where: string;
  /** `TS2322: Type 'string' is not assignable to type 'number'.` */
  message: string;
}

export class ModelTypeChecker {
  private readonly options: ts.CompilerOptions;
  private readonly optionErrors: TypeProblem[] = [];
  /** What the options come from, for the log. */
  readonly source: string;
  private readonly host: ts.CompilerHost;
  private readonly cache = new Map<string, { mtimeMs: number; file: ts.SourceFile }>();
  private last?: ts.Program;

  constructor(private readonly repository: string) {
    const own = path.join(repository, TSCONFIG_FILE);
    let options: ts.CompilerOptions;
    if (fs.existsSync(own)) {
      const parsed = ts.getParsedCommandLineOfConfigFile(own, {}, {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => this.optionErrors.push(this.toError(d)),
      });
      options = parsed?.options ?? {};
      for (const d of parsed?.errors ?? []) {
        // "No inputs were found" concerns include/files, which a check of one model does not use.
        if (d.code !== 18003) this.optionErrors.push(this.toError(d));
      }
      this.source = own;
    } else {
      const json = repositoryTsconfig() as { compilerOptions: Record<string, unknown> };
      const converted = ts.convertCompilerOptionsFromJson(json.compilerOptions, repository);
      options = converted.options;
      for (const d of converted.errors) this.optionErrors.push(this.toError(d));
      this.source = "stubhost's default options (the tsconfig.json stubhost init writes)";
    }
    this.options = { ...options, noEmit: true };
    const host = ts.createCompilerHost(this.options, true);
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      let mtimeMs: number;
      try {
        mtimeMs = fs.statSync(fileName).mtimeMs;
      } catch {
        this.cache.delete(fileName);
        return undefined;
      }
      const hit = this.cache.get(fileName);
      if (hit && hit.mtimeMs === mtimeMs && !shouldCreate) return hit.file;
      const file = read(fileName, languageVersion, onError, shouldCreate);
      if (file) this.cache.set(fileName, { mtimeMs, file });
      return file;
    };
    this.host = host;
  }

  /** The errors of model `name` (its folder under the repository); [] when it type-checks. */
  check(name: string): TypeProblem[] {
    const dir = path.join(this.repository, name);
    const roots = modelSources(dir);
    if (roots.length === 0) return [];
    const program = ts.createProgram({ rootNames: roots, options: this.options, host: this.host, oldProgram: this.last });
    this.last = program;
    const errors: TypeProblem[] = [...this.optionErrors];
    for (const d of program.getOptionsDiagnostics()) errors.push(this.toError(d));
    for (const d of program.getGlobalDiagnostics()) errors.push(this.toError(d));
    const inside = path.resolve(dir) + path.sep;
    for (const sf of program.getSourceFiles()) {
      // The model's own files: its imports of stubhost or of packages are not its errors to fix.
      if (!path.resolve(sf.fileName).startsWith(inside) || sf.fileName.includes(`${path.sep}node_modules${path.sep}`)) continue;
      for (const d of program.getSyntacticDiagnostics(sf)) errors.push(this.toError(d));
      for (const d of program.getSemanticDiagnostics(sf)) errors.push(this.toError(d));
    }
    return errors;
  }

  private toError(d: ts.Diagnostic): TypeProblem {
    const message = `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    if (!d.file || d.start === undefined) return { where: '', message };
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    const rel = path.relative(this.repository, d.file.fileName);
    return { where: `${rel.startsWith('..') ? d.file.fileName : rel}:${line + 1}:${character + 1}`, message };
  }
}

/** The `model.ts` of every numeric version folder of a model folder. */
function modelSources(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^\d+$/.test(n)).map((n) => path.join(dir, n, 'model.ts')).filter((f) => fs.existsSync(f));
}
