/**
 * Helpers shared by the benchmarks in scripts/bench/: statistics, a plain-text table, progress
 * on stderr, and the `--json` contract (the last line of stdout is exactly one JSON object, so
 * tools can take `tail -n 1`; everything human-readable goes before it or to stderr).
 */

export interface BenchArgs {
  json: boolean;
  /** Arguments other than the flags this module knows. */
  rest: string[];
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  const rest: string[] = [];
  let json = false;
  for (const a of argv) {
    if (a === '--json') json = true;
    else rest.push(a);
  }
  return { json, rest };
}

/** Progress for the person watching; never on stdout, which carries the results. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Linear-interpolated percentile, p in [0, 100]. NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export function percentiles(values: readonly number[], ps: readonly number[] = [50, 90, 99]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of ps) out[`p${p}`] = percentile(values, p);
  return out;
}

/** Milliseconds since an arbitrary origin, sub-microsecond resolution. */
export function nowMs(): number {
  return performance.now();
}

/** Formats a number for a table: 3 significant digits, thousands separated when large. */
export function fmt(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 10 ** digits) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(digits)).toString();
}

/** A left-aligned first column, right-aligned others, a rule under the header. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Prints the human-readable report, then (with --json) the one-line JSON object last. */
export function report(args: BenchArgs, text: string, result: Record<string, number>): void {
  process.stdout.write(`${text}\n`);
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Runs `fn` `rounds` times and returns the per-round results (for a median across rounds). */
export async function rounds<T>(count: number, label: string, fn: (round: number) => Promise<T> | T): Promise<T[]> {
  const out: T[] = [];
  for (let r = 0; r < count; r++) {
    out.push(await fn(r));
    progress(`${label}: round ${r + 1}/${count}`);
  }
  return out;
}
