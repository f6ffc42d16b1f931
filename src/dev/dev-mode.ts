/**
 * `stubhost dev`: the repository is watched (every folder, repository-watcher.ts) and a model is reloaded as its
 * files are saved. A save type-checks the model in a worker thread while its new stubs start;
 * only when both succeed does the new code serve, with drain as any reload. A type error is
 * logged with its place (`add_sub/1/model.ts:12:9`) and the old version keeps serving; so does a
 * load that fails. The repository logs the outcome ("reloaded 'add_sub' version 1 in 412 ms (dev:
 * ...)"), counted from the save; `--log-verbose 1` adds where the time went (reload-timeline.ts).
 *
 * A reload starts once the editor has finished writing (DEV_DEBOUNCE_MS without events). A
 * saved config regenerates the model's config.types.ts first, so the check sees its new types.
 * (Starting the stubs at the first event instead, as they read model.ts only once booted,
 * measured no faster: the stub's boot dominates.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ModelRepository } from '../repository/manager.js';
import { TSCONFIG_FILE } from '../authoring/repository-tsconfig.js';
import { TYPES_FILE } from '../authoring/types-file.js';
import { TypeCheckClient, type CheckReply } from './type-check-client.js';
import { ReloadTimeline } from './reload-timeline.js';
import { regenerateTypes, type WrittenFiles } from './regenerate-types.js';
import { watchRepository, type RepositoryWatcher } from './repository-watcher.js';

/**
 * Editors write a file as several events (truncate and write, temp file and rename, chmod), all
 * within a few ms: the type check waits until there has been none for this long.
 */
export const DEV_DEBOUNCE_MS = 25;

/** The files of a model folder the load reads first: a save of one waits for the editor. */
const CONFIG_FILES = new Set(['config.pbtxt', 'config.json']);

export interface DevModeOptions {
  repository: ModelRepository;
  logger: Logger;
  debounceMs?: number;
}

/** The saves of one model that one reload takes in. */
interface Batch {
  /** performance.now() of the first event of this batch: the reload time counts from it. */
  since: number;
  files: Set<string>;
  timer?: NodeJS.Timeout;
  /** Resolves once the editor is done (no event for debounceMs): the check may read the files. */
  written: Promise<void>;
  done: () => void;
}

export interface DevMode {
  close(): Promise<void>;
}

export async function startDevMode(opts: DevModeOptions): Promise<DevMode> {
  const { repository, logger } = opts;
  const root = repository.root;
  const debounceMs = opts.debounceMs ?? DEV_DEBOUNCE_MS;
  let checker = new TypeCheckClient(root);
  /** The batch of each model still taking in saves (its debounce has not passed). */
  const open = new Map<string, Batch>();
  /** The batch of each model waiting for the running reload of that model. */
  const next = new Map<string, Batch>();
  const running = new Map<string, Promise<void>>();
  /** What dev wrote itself (config.types.ts): its own write is no save. */
  const written: WrittenFiles = new Map();
  let closed = false;

  const logProblems = (model: string, reply: CheckReply): void => {
    if (reply.failed) logger.warn(`dev: type check of '${model}' could not run: ${reply.failed}`, { model });
    for (const p of reply.problems) logger.error(`type error: ${p.where ? `${p.where}: ` : ''}${p.message}`, { model, file: p.where });
  };

  const reload = async (model: string, batch: Batch): Promise<void> => {
    const timeline = new ReloadTimeline(model, batch.since);
    const dir = path.join(root, model);
    if (!isModelFolder(dir)) {
      if (repository.index().some((e) => e.name === model && e.state === 'READY')) {
        await repository.unloadModel(model, { reason: `dev: ${model} removed` }).catch(() => {});
      }
      return;
    }
    if ([...batch.files].some((f) => CONFIG_FILES.has(f.slice(model.length + 1)))) {
      // A config saved (such a batch starts once written): config.types.ts follows it before the check reads it.
      await batch.written;
      await regenerateTypes(root, model, written, logger);
    }
    // Editors save through temporary files (sed's, vim's): name the files that are still there.
    const files = [...batch.files].filter((f) => fs.existsSync(path.join(root, f))).sort();
    const what = files.length === 0 ? `files of '${model}'` : files.length > 3 ? `${files.slice(0, 3).join(', ')} and ${files.length - 3} more` : files.join(', ');
    const check = batch.written.then(async () => {
      timeline.mark('checkStart');
      const reply = await checker.check(model);
      timeline.mark('checkDone', reply.ms);
      logProblems(model, reply);
      return reply;
    });
    timeline.mark('loadStart');
    let ok = false;
    try {
      await repository.loadModel(model, {
        reason: `dev: ${what} changed`,
        startedAt: batch.since,
        approve: async () => {
          timeline.mark('ready');
          const reply = await check;
          const n = reply.problems.length;
          if (n === 0) return;
          const first = reply.problems[0]!;
          throw new StubhostError('STUBHOST_LOAD_FAILED', `${n} type error${n > 1 ? 's' : ''} (first: ${first.where ? `${first.where}: ` : ''}${first.message}); fix ${n > 1 ? 'them' : 'it'} and save again`);
        },
      });
      ok = true;
    } catch {
      // Logged by the repository with its reason (and the type errors above).
    }
    timeline.mark(ok ? 'serving' : 'refused');
    await check;
    timeline.log(logger);
  };

  /** Runs one reload of `model` at a time; saves during it make one more afterwards. */
  const run = (model: string, batch: Batch): void => {
    if (closed) return;
    if (running.has(model)) {
      next.set(model, mergeInto(batch, next.get(model)));
      return;
    }
    const done = reload(model, batch).finally(() => {
      running.delete(model);
      let queued = next.get(model);
      next.delete(model);
      if (!queued) return;
      // A save being written: its batch runs when the editor is done, with the queued saves.
      const writing = open.get(model);
      if (writing) mergeInto(writing, queued);
      else run(model, queued);
    });
    running.set(model, done);
  };

  const onEvent = (rel: string): void => {
    if (closed) return;
    if (rel === TSCONFIG_FILE) {
      // New compiler options: a new checker reads them.
      const old = checker;
      checker = new TypeCheckClient(root);
      void old.close();
      logger.info(`dev: ${TSCONFIG_FILE} changed; models are type-checked with its options from now on`);
      return;
    }
    const parts = rel.split('/');
    if (parts.length < 2 || parts.some((p) => p.startsWith('.') || p === 'node_modules') || isEditorScratch(parts[parts.length - 1]!)) return;
    if (isOwnWrite(written, root, rel)) return;
    const model = parts[0]!;
    // A batch leaves `open` when its debounce passes, before its reload starts: one still open
    // has not been read by any load.
    let batch = open.get(model);
    if (!batch) {
      batch = openBatch(performance.now());
      open.set(model, batch);
    }
    batch.files.add(rel);
    if (batch.timer) clearTimeout(batch.timer);
    const b = batch;
    b.timer = setTimeout(() => {
      b.timer = undefined;
      open.delete(model);
      b.done();
      run(model, b);
    }, debounceMs);
  };

  let watcher: RepositoryWatcher;
  try {
    watcher = watchRepository(root, onEvent, (err) => logger.error(`dev: watching ${root} failed: ${err.message}; restart stubhost dev`));
  } catch (err) {
    await checker.close();
    throw new StubhostError('STUBHOST_UNAVAILABLE', `stubhost dev cannot watch ${root}: ${(err as Error).message}`);
  }
  const source = await checker.ready;
  logger.info(`dev: watching ${root}; a saved model is type-checked (${source}) and reloaded; a saved config.pbtxt regenerates the model's ${TYPES_FILE}`, { repository: root });

  // Warm the checker (its first program reads the lib and @types files) and report what does
  // not type-check now, so the first save is checked in tens of ms.
  void (async () => {
    for (const name of new Set(repository.index().map((e) => e.name))) {
      if (closed) return;
      if (!isModelFolder(path.join(root, name)) || running.has(name)) continue;
      const reply = await checker.check(name);
      if (!closed && reply.problems.length > 0) logProblems(name, reply);
    }
  })();

  return {
    async close() {
      closed = true;
      watcher.close();
      for (const batch of open.values()) {
        if (batch.timer) clearTimeout(batch.timer);
        batch.done();
      }
      open.clear();
      next.clear();
      await Promise.all(running.values());
      await checker.close();
    },
  };
}

function openBatch(since: number): Batch {
  let done!: () => void;
  const written = new Promise<void>((resolve) => (done = resolve));
  return { since, files: new Set(), written, done };
}

/** `batch` takes in the saves of `older` (its files, its first event); returns `batch`. */
function mergeInto(batch: Batch, older: Batch | undefined): Batch {
  if (!older || older === batch) return batch;
  batch.since = Math.min(batch.since, older.since);
  for (const f of older.files) batch.files.add(f);
  return batch;
}

/** An event of a file dev wrote itself, still as dev wrote it. */
function isOwnWrite(written: WrittenFiles, root: string, rel: string): boolean {
  const mine = written.get(rel);
  if (mine === undefined) return false;
  try {
    if (fs.readFileSync(path.join(root, rel), 'utf8') === mine) return true;
  } catch {
    // Gone: a save like any other.
  }
  written.delete(rel);
  return false;
}

/** A config file or a numeric version folder: what makes a folder a model (as scan.ts). */
function isModelFolder(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((f) => f === 'config.pbtxt' || f === 'config.json' || /^\d+$/.test(f));
  } catch {
    return false;
  }
}

/** Files editors write beside the one saved (vim's 4913 and .swp, emacs' #file# and file~). */
function isEditorScratch(name: string): boolean {
  return name === '4913' || name.endsWith('~') || name.endsWith('.swp') || name.endsWith('.swx') || (name.startsWith('#') && name.endsWith('#'));
}
