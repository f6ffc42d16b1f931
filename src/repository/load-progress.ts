/**
 * Progress lines for slow loads: every `intervalMs` while a load runs longer than that, one log
 * line naming the models still loading and for how long ("still loading: big (12 s), ocr (5 s)"),
 * so a start-up (or a reload) waiting on one slow initialize says what it waits for.
 */
import type { Logger } from '../log/logger.js';

/** Default interval of the progress lines. */
export const LOAD_PROGRESS_INTERVAL_MS = 5000;

export function reportSlowLoads(loads: () => { name: string; ms: number }[], logger: Logger, intervalMs = LOAD_PROGRESS_INTERVAL_MS): { stop(): void } {
  const timer = setInterval(() => {
    const slow = loads().filter((l) => l.ms >= intervalMs).sort((a, b) => b.ms - a.ms);
    if (slow.length === 0) return;
    logger.info(`still loading: ${slow.map((l) => `${l.name} (${Math.round(l.ms / 1000)} s)`).join(', ')}`, { loading: slow.map((l) => l.name) });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
