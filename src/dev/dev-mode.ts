/**
 * `stubhost dev`: the repository is watched (fs.watch, recursive) and a model is reloaded as its
 * files are saved. A save (debounced: editors write a file in several steps) type-checks the
 * model in a worker thread while its new stubs start; only when both succeed does the new code
 * serve, with drain as any reload. A type error is logged with its place
 * (`add_sub/1/model.ts:12:9`) and the old version keeps serving; so does a load that fails.
 * The repository logs the outcome ("reloaded 'add_sub' version 1 in 412 ms (dev: ...)"),
 * counted from the save.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ModelRepository } from '../repository/manager.js';
import { TSCONFIG_FILE } from '../authoring/repository-tsconfig.js';
import { TypeCheckClient, type CheckReply } from './type-check-client.js';

/** Editors write a file as several events (temp file, rename, chmod): one reload for them. */
export const DEV_DEBOUNCE_MS = 40;

export interface DevModeOptions {
  repository: ModelRepository;
  logger: Logger;
  debounceMs?: number;
}

interface Pending {
  /** performance.now() of the first event of this batch: the reload time counts from it. */
  since: number;
  files: Set<string>;
  timer?: NodeJS.Timeout;
}

export interface DevMode {
  close(): Promise<void>;
}

export async function startDevMode(opts: DevModeOptions): Promise<DevMode> {
  const { repository, logger } = opts;
  const root = repository.root;
  const debounceMs = opts.debounceMs ?? DEV_DEBOUNCE_MS;
  let checker = new TypeCheckClient(root);
  const pending = new Map<string, Pending>();
  const running = new Map<string, Promise<void>>();
  let closed = false;

  const logProblems = (model: string, reply: CheckReply): void => {
    if (reply.failed) logger.warn(`dev: type check of '${model}' could not run: ${reply.failed}`, { model });
    for (const p of reply.problems) logger.error(`type error: ${p.where ? `${p.where}: ` : ''}${p.message}`, { model, file: p.where });
  };

  const reload = async (model: string, batch: Pending): Promise<void> => {
    // Editors save through temporary files (sed's, vim's): name the files that are still there.
    const files = [...batch.files].filter((f) => fs.existsSync(path.join(root, f))).sort();
    const what = files.length === 0 ? `files of '${model}'` : files.length > 3 ? `${files.slice(0, 3).join(', ')} and ${files.length - 3} more` : files.join(', ');
    const reason = `dev: ${what} changed`;
    if (!isModelFolder(path.join(root, model))) {
      if (repository.index().some((e) => e.name === model && e.state === 'READY')) {
        await repository.unloadModel(model, { reason: `dev: ${model} removed` }).catch(() => {});
      }
      return;
    }
    const check = checker.check(model).then((reply) => {
      logProblems(model, reply);
      return reply;
    });
    try {
      await repository.loadModel(model, {
        reason,
        startedAt: batch.since,
        approve: async () => {
          const reply = await check;
          const n = reply.problems.length;
          if (n === 0) return;
          const first = reply.problems[0]!;
          throw new StubhostError('STUBHOST_LOAD_FAILED', `${n} type error${n > 1 ? 's' : ''} (first: ${first.where ? `${first.where}: ` : ''}${first.message}); fix ${n > 1 ? 'them' : 'it'} and save again`);
        },
      });
    } catch {
      // Logged by the repository with its reason (and the type errors above).
    }
    await check;
  };

  /** Runs one reload of `model` at a time; saves during it make one more afterwards. */
  const run = (model: string): void => {
    if (closed || running.has(model)) return;
    const batch = pending.get(model);
    if (!batch) return;
    pending.delete(model);
    const done = reload(model, batch).finally(() => {
      running.delete(model);
      const next = pending.get(model);
      if (next && !next.timer) run(model);
    });
    running.set(model, done);
  };

  const onEvent = (filename: string | null): void => {
    if (closed || !filename) return;
    const rel = filename.split(path.sep).join('/');
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
    const model = parts[0]!;
    let batch = pending.get(model);
    if (!batch) pending.set(model, (batch = { since: performance.now(), files: new Set() }));
    batch.files.add(rel);
    if (batch.timer) clearTimeout(batch.timer);
    batch.timer = setTimeout(() => {
      batch!.timer = undefined;
      run(model);
    }, debounceMs);
  };

  let watcher: fs.FSWatcher;
  try {
    watcher = fs.watch(root, { recursive: true }, (_event, filename) => onEvent(filename));
  } catch (err) {
    await checker.close();
    throw new StubhostError('STUBHOST_UNAVAILABLE', `stubhost dev cannot watch ${root}: ${(err as Error).message}`);
  }
  watcher.on('error', (err) => logger.error(`dev: watching ${root} failed: ${err.message}; restart stubhost dev`));
  const source = await checker.ready;
  logger.info(`dev: watching ${root}; a saved model is type-checked (${source}) and reloaded`, { repository: root });

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
      for (const batch of pending.values()) if (batch.timer) clearTimeout(batch.timer);
      pending.clear();
      await Promise.all(running.values());
      await checker.close();
    },
  };
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
