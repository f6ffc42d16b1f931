/**
 * Ensembles and the models they are composed of, for model control as Triton's core does it
 * (src/model_repository_manager/model_repository_manager.cc): loading an ensemble loads its
 * composing models too (PollModels follows the steps; those models are not "explicitly loaded"),
 * and unloading with `unload_dependents` also unloads the composing models that were loaded only
 * along with it — not explicitly loaded, and used by no other loaded ensemble
 * (DependencyGraph::RemoveNodes with cascading removal), step by step down nested ensembles.
 */
import { findEnsembleCycle } from '../model/ensemble-graph.js';

/** The step models of an ensemble, undefined for a model that is not one (or cannot be read). */
export type StepsOf = (model: string) => readonly string[] | undefined;

/**
 * The models `ensemble` is composed of, directly or through nested ensembles, in an order that
 * loads a nested ensemble after its own steps. Empty when the steps form a cycle: the ensemble's
 * own load refuses it, naming the cycle.
 */
export function composingModels(ensemble: string, stepsOf: StepsOf): string[] {
  const steps = stepsOf(ensemble);
  if (!steps || findEnsembleCycle(ensemble, steps, stepsOf)) return [];
  const order: string[] = [];
  const seen = new Set<string>([ensemble]);
  const visit = (model: string): void => {
    if (seen.has(model)) return;
    seen.add(model);
    for (const step of stepsOf(model) ?? []) visit(step);
    order.push(model);
  };
  for (const step of steps) visit(step);
  return order;
}

export interface LoadedView {
  stepsOf: StepsOf;
  /** Names with versions loaded. */
  loaded(): Iterable<string>;
  /** Loaded by a request or at start, not only along with an ensemble. */
  isExplicit(model: string): boolean;
}

/**
 * The composing models to unload after `ensemble` (which is being unloaded) when the request asks
 * for unload_dependents: each one not explicitly loaded and no longer a step of any other loaded
 * ensemble, then the same for their own steps.
 */
export function dependentsToUnload(ensemble: string, view: LoadedView): string[] {
  const removed = new Set<string>([ensemble]);
  const order: string[] = [];
  let current = [...new Set(view.stepsOf(ensemble) ?? [])];
  while (current.length > 0) {
    const next: string[] = [];
    for (const model of current) {
      if (removed.has(model) || view.isExplicit(model)) continue;
      if (![...view.loaded()].includes(model)) continue;
      const stillUsed = [...view.loaded()].some((other) => !removed.has(other) && (view.stepsOf(other) ?? []).includes(model));
      if (stillUsed) continue;
      removed.add(model);
      order.push(model);
      next.push(...(view.stepsOf(model) ?? []));
    }
    current = [...new Set(next)];
  }
  return order;
}
