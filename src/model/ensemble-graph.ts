/**
 * Cycles between ensembles. An ensemble whose steps lead back to itself (a → b → a, or a → a)
 * would run forever — each step a new request to the next ensemble — so it is refused at load, as
 * Triton's model_repository_manager.cc CircularDependencyCheck refuses it ("circular dependency
 * between ensembles: a -> ... -> b -> a"); here the whole path is named.
 */

/**
 * The first cycle reachable from ensemble `start` (whose steps name `startSteps`), as the list
 * of model names from the repeated one back to it (`['a', 'b', 'a']`), or undefined.
 * `stepsOf(model)` gives the step models of another ensemble, undefined for a model that is not
 * an ensemble (or cannot be read; its own load reports that).
 */
export function findEnsembleCycle(start: string, startSteps: readonly string[], stepsOf: (model: string) => readonly string[] | undefined): string[] | undefined {
  const onPath: string[] = [start];
  const clear = new Set<string>();
  const visit = (steps: readonly string[]): string[] | undefined => {
    for (const model of new Set(steps)) {
      const at = onPath.indexOf(model);
      if (at >= 0) return [...onPath.slice(at), model];
      if (clear.has(model)) continue;
      const next = model === start ? startSteps : stepsOf(model);
      if (next) {
        onPath.push(model);
        const cycle = visit(next);
        onPath.pop();
        if (cycle) return cycle;
      }
      clear.add(model);
    }
    return undefined;
  };
  return visit(startSteps);
}

/** Triton's words for a cycle, with the whole path. */
export function cycleMessage(cycle: readonly string[]): string {
  return `circular dependency between ensembles: ${cycle.join(' -> ')}; an ensemble cannot contain itself, directly or through other ensembles`;
}
