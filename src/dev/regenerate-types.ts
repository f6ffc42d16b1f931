/**
 * A saved config.pbtxt (or config.json) regenerates the model's config.types.ts in dev mode, as
 * `stubhost types` would write it, so the type check of the reload that follows sees the new
 * inputs and outputs. Only for a model that has the file or a model.ts; a types file someone
 * wrote by hand is left alone (writeModelTypes refuses it), and that is logged.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { writeModelTypes } from '../authoring/model-types.js';
import { TYPES_FILE } from '../authoring/types-file.js';

/** Files dev mode wrote, by path relative to the repository, with the text written: their events are its own. */
export type WrittenFiles = Map<string, string>;

export async function regenerateTypes(root: string, model: string, written: WrittenFiles, logger: Logger): Promise<void> {
  const dir = path.join(root, model);
  const rel = `${model}/${TYPES_FILE}`;
  if (!fs.existsSync(path.join(dir, TYPES_FILE)) && !hasModelTs(dir)) return;
  const outcome = await writeModelTypes(dir);
  if (outcome.error) logger.warn(`dev: ${rel} not regenerated: ${outcome.error}`, { model });
  else if (outcome.skipped) logger.info(`dev: ${rel} not regenerated: ${outcome.skipped}`, { model });
  else if (outcome.changed) {
    written.set(rel, fs.readFileSync(path.join(dir, TYPES_FILE), 'utf8'));
    logger.info(`dev: regenerated ${rel} from the saved config`, { model, file: rel });
  }
}

function hasModelTs(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((v) => /^\d+$/.test(v) && fs.existsSync(path.join(dir, v, 'model.ts')));
  } catch {
    return false;
  }
}
