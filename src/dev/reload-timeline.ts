/**
 * Where the time of one dev reload went, counted from the save (the batch's first event):
 * logged at `--log-verbose 1` after each reload, with the figures as fields (the dev benchmark
 * reads them). Starting the stubs is the gap between `loadStart` and `ready`.
 */
import type { Logger } from '../log/logger.js';

export type ReloadMark = 'loadStart' | 'checkStart' | 'checkDone' | 'ready' | 'serving' | 'refused';

export class ReloadTimeline {
  private readonly at = new Map<ReloadMark, number>();
  /** The worker's own figure for the check (the rest of checkStart..checkDone is queueing). */
  private checkMs?: number;

  constructor(private readonly model: string, private readonly since: number) {}

  mark(what: ReloadMark, checkMs?: number): void {
    this.at.set(what, performance.now() - this.since);
    if (checkMs !== undefined) this.checkMs = checkMs;
  }

  /** The figures, in ms from the save; `saveEpochMs` places the save on the wall clock. */
  fields(): Record<string, number> {
    const out: Record<string, number> = { saveEpochMs: Math.round(performance.timeOrigin + this.since) };
    for (const [k, v] of this.at) out[`${k}Ms`] = Math.round(v);
    if (this.checkMs !== undefined) out.checkWorkerMs = Math.round(this.checkMs);
    return out;
  }

  log(logger: Logger): void {
    const f = this.fields();
    const parts = [`load started ${f.loadStartMs ?? '-'}`];
    if (f.checkStartMs !== undefined) parts.push(`type check ${f.checkStartMs}–${f.checkDoneMs ?? '?'}${f.checkWorkerMs !== undefined ? ` (${f.checkWorkerMs} in the worker)` : ''}`);
    if (f.readyMs !== undefined) parts.push(`new version ready ${f.readyMs}`);
    parts.push(f.servingMs !== undefined ? `serving ${f.servingMs}` : `refused ${f.refusedMs}`);
    logger.verbose(`dev: '${this.model}' reload, ms from the save: ${parts.join(', ')}`, { model: this.model, ...f }, 1);
  }
}
