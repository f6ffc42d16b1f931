/**
 * The class labels of a model's outputs (`label_filename`), read once when a version loads, for
 * the classification extension. As Triton's core (src/model.cc, Model::Init with
 * src/label_provider.cc): the file is relative to the model's folder and must stay inside it, one
 * label per line (a final line without a newline counts, an empty line is an empty label, which
 * classification leaves out).
 */
import fs from 'node:fs';
import { StubhostError } from '../errors.js';
import { confinedPath } from '../config/model-paths.js';
import type { ModelConfig } from '../config/schema.js';

/** Labels by output name; outputs without a label file are absent. */
export type { OutputLabels } from '../core/types.js';
import type { OutputLabels } from '../core/types.js';

export const NO_LABELS: OutputLabels = new Map();

/** Splits a label file as std::getline does: on '\n' only, no empty last line after a final newline. */
export function splitLabels(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Reads every output's label file; a missing or unreadable one fails the load naming the field. */
export function readOutputLabels(modelDir: string, config: Pick<ModelConfig, 'name' | 'output'>): OutputLabels {
  const labels = new Map<string, string[]>();
  config.output.forEach((t, i) => {
    if (!t.label_filename) return;
    const field = `model '${config.name}': output[${i}] '${t.name}' label_filename`;
    const file = confinedPath(modelDir, modelDir, t.label_filename, field);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new StubhostError('STUBHOST_CONFIG', `${field}: cannot read ${JSON.stringify(t.label_filename)} (${why}); put the label file, one label per line, in the model's folder`);
    }
    labels.set(t.name, splitLabels(text));
  });
  return labels.size === 0 ? NO_LABELS : labels;
}
