/**
 * `npm run bench -- dev [--json] [--edits <n>]`: how long `stubhost dev` takes from saving a
 * model to serving the new code, over n edits (default 10), as a newcomer works: a repository in
 * a temporary folder outside the project scaffolded with `stubhost init`, `stubhost dev` as a
 * child process, and model.ts rewritten with a new factor each time.
 *
 *   save → serving   from writing model.ts until an HTTP infer answers with the new factor
 *                    (requests sent back to back meanwhile; all of them answered by old or new code)
 *   server reload    what the server logs ("reloaded 'echo' in N ms"), counted from the save event
 *   type error       from saving a model.ts with a type error until its file:line is logged (the
 *                    old code answers throughout)
 *
 * One edit before the measured ones warms the type checker (its first program reads the lib and
 * @types files). The median is the figure; the target is under 1 s for this small model.
 *
 * Where the time goes, per edit (medians; ms from the save): the server's reload timeline
 * (`--log-verbose 1`: load started, type check, new version ready, serving; src/dev/
 * reload-timeline.ts) and marks each stub writes through dev-stub-marks.cjs (process start, node
 * booted, model.ts import start and end), on the wall clock.
 *
 * `--gap <ms>` waits that long between the requests that probe for the new code (default 0: back
 * to back, which keeps the host and the old stub busy while the new stub boots on the same cores).
 * `--pause <ms>` waits that long after an edit is served before the next one (default 0: the
 * next save comes while the replaced stub is still being stopped; a person saves seconds apart).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, formatTable, median, nowMs, parseArgs, percentile, progress, report } from './common.js';
import { freePort } from './lib/servers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(repoRoot, 'bin', 'stubhost.js');

/** The model.ts `stubhost init echo` writes, with OUTPUT = factor × INPUT; `broken` adds a type error. */
function modelSource(template: string, factor: number, broken = false): string {
  const out = template.replace(/input\.data\.map\(\(x\) => [^)]*\)/, `input.data.map((x) => ${factor} * x${broken ? " + 'x'" : ''})`);
  if (out === template && factor !== 2) throw new Error('the scaffolded model.ts no longer has the line this benchmark edits: input.data.map((x) => 2 * x)');
  return out;
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const editsAt = args.rest.indexOf('--edits');
  const edits = editsAt >= 0 ? Number(args.rest[editsAt + 1]) : 10;
  if (!Number.isInteger(edits) || edits < 1) throw new Error('--edits <n>: a positive whole number');
  const gapAt = args.rest.indexOf('--gap');
  const gapMs = gapAt >= 0 ? Number(args.rest[gapAt + 1]) : 0;
  if (!(gapMs >= 0)) throw new Error('--gap <ms>: a number of ms, 0 or more');
  const pauseAt = args.rest.indexOf('--pause');
  const pauseMs = pauseAt >= 0 ? Number(args.rest[pauseAt + 1]) : 0;
  if (!(pauseMs >= 0)) throw new Error('--pause <ms>: a number of ms, 0 or more');

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bench-dev-'));
  let child: ChildProcess | undefined;
  try {
    const init = spawn(process.execPath, [BIN, 'init', 'echo', '--model-repository', root], { stdio: ['ignore', 'ignore', 'inherit'] });
    const initCode = await new Promise<number | null>((resolve) => init.once('exit', resolve));
    if (initCode !== 0) throw new Error(`stubhost init exited with ${initCode}`);
    const file = path.join(root, 'echo', '1', 'model.ts');
    const template = fs.readFileSync(file, 'utf8');
    modelSource(template, 3); // fails early when the scaffold changed

    const port = await freePort();
    progress(`stubhost dev on port ${port}, repository ${root}`);
    const marksFile = path.join(root, '.stub-marks.jsonl');
    child = spawn(process.execPath, [BIN, 'dev', '--model-repository', root, '--http-port', String(port), '--allow-grpc', 'false', '--allow-metrics', 'false', '--log-format', 'json', '--log-verbose', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, STUBHOST_STUB_NODE_ARGS: `--require ${path.join(repoRoot, 'scripts', 'bench', 'dev-stub-marks.cjs')}`, STUBHOST_BENCH_MARKS: marksFile },
    });
    const marks = (): StubMark[] => (fs.existsSync(marksFile) ? fs.readFileSync(marksFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StubMark) : []);
    const lines: LogLine[] = [];
    let buffered = '';
    child.stderr!.on('data', (c: Buffer) => {
      buffered += c.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          lines.push({ msg: line });
        }
      }
    });
    const waitLine = async (test: (l: LogLine) => boolean, from: number, timeoutMs = 60_000): Promise<LogLine> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.slice(from).find(test);
        if (hit) return hit;
        if (Date.now() > deadline || child!.exitCode !== null) throw new Error(`no log line in time; the log:\n${lines.map((l) => l.msg).join('\n')}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await waitLine((l) => l.msg.startsWith('dev: watching'), 0);

    const url = `http://127.0.0.1:${port}/v2/models/echo/infer`;
    const body = JSON.stringify({ inputs: [{ name: 'INPUT', shape: [1], datatype: 'FP32', data: [1] }] });
    const answer = async (): Promise<number> => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const json = (await res.json()) as { outputs?: { data: number[] }[]; error?: string };
      if (res.status !== 200) throw new Error(`infer answered ${res.status}: ${json.error}`);
      return json.outputs![0]!.data[0]!;
    };
    /** Saves factor `k` and resolves with save → serving ms, the server's reload figure and the phases. */
    const edit = async (k: number): Promise<{ serving: number; server: number; phases: Phases }> => {
      const from = lines.length;
      const marksFrom = marks().length;
      const t0 = nowMs();
      const t0Epoch = performance.timeOrigin + t0;
      fs.writeFileSync(file, modelSource(template, k));
      // Back to back (or --gap apart): the first answer of the new code ends it.
      while ((await answer()) !== k) {
        if (nowMs() - t0 > 30_000) throw new Error(`the edit to factor ${k} was not served within 30 s; the log:\n${lines.slice(from).map((l) => l.msg).join('\n')}`);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
      const serving = nowMs() - t0;
      const line = await waitLine((l) => l.msg.startsWith("reloaded 'echo' in "), from);
      // A stubhost without the timeline (an older build measured as the baseline): no phases.
      const timeline = await waitLine((l) => l.msg.startsWith("dev: 'echo' reload, ms from the save"), from, 3000).catch(() => ({ msg: '' }));
      return { serving, server: line.ms ?? NaN, phases: phasesOf(t0Epoch, serving, timeline, marks().slice(marksFrom)) };
    };

    progress('warm-up edit (the type checker reads lib and @types once)');
    await edit(3);
    const serving: number[] = [];
    const server: number[] = [];
    const phases: Phases[] = [];
    for (let i = 0; i < edits; i++) {
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      const r = await edit(4 + i);
      serving.push(r.serving);
      server.push(r.server);
      phases.push(r.phases);
      progress(`edit ${i + 1}/${edits}: save → serving ${fmt(r.serving)} ms (server: ${fmt(r.server)} ms)`);
    }

    // A type error: logged with its place, the old code keeps answering.
    const last = 3 + edits;
    const from = lines.length;
    const t0 = nowMs();
    fs.writeFileSync(file, modelSource(template, last + 1, true));
    const logged = await waitLine((l) => l.msg.startsWith('type error: echo/1/model.ts:'), from);
    const typeErrorMs = nowMs() - t0;
    await waitLine((l) => l.msg.startsWith("model 'echo' failed to reload: "), from);
    if ((await answer()) !== last) throw new Error('after a type error the old version should still answer');
    progress(`type error logged after ${fmt(typeErrorMs)} ms: ${logged.msg}`);

    const row = (name: string, v: number[]): string[] => [name, fmt(median(v)), fmt(percentile(v, 90)), fmt(Math.min(...v)), fmt(Math.max(...v))];
    const phaseRows = PHASES.map(([key, name]) => row(name, phases.map((p) => p[key]).filter((v) => Number.isFinite(v))));
    const text = [
      `stubhost dev: ${edits} edits of a small model.ts (stubhost init echo), ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${gapMs > 0 ? `, probes ${gapMs} ms apart` : ''}${pauseMs > 0 ? `, ${pauseMs} ms between edits` : ''}`,
      formatTable(['ms', 'median', 'p90', 'min', 'max'], [row('save → serving', serving), row('server reload', server), row('type error → logged', [typeErrorMs])]),
      '',
      'where the time goes (each phase in ms; the type check runs beside the stub start):',
      formatTable(['ms', 'median', 'p90', 'min', 'max'], phaseRows),
      `target: save → serving under 1000 ms (median ${fmt(median(serving))} ms)`,
    ].join('\n');
    report(args, text, {
      edits,
      gap_ms: gapMs,
      pause_ms: pauseMs,
      save_to_serving_ms_median: median(serving),
      save_to_serving_ms_p90: percentile(serving, 90),
      server_reload_ms_median: median(server),
      type_error_logged_ms: typeErrorMs,
      ...Object.fromEntries(PHASES.map(([key]) => [`phase_${key}_ms_median`, median(phases.map((p) => p[key]).filter((v) => Number.isFinite(v)))])),
    });
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
}

interface LogLine {
  msg: string;
  ms?: number;
  saveEpochMs?: number;
  loadStartMs?: number;
  checkStartMs?: number;
  checkDoneMs?: number;
  checkWorkerMs?: number;
  readyMs?: number;
  servingMs?: number;
}

interface StubMark {
  pid: number;
  what: 'start' | 'booted' | 'importStart' | 'importEnd';
  at: number;
}

const PHASES = [
  ['detect', 'save → load starts (fs.watch event)'],
  ['hostPrep', 'load starts → stub spawned (config, scan)'],
  ['nodeBoot', 'stub spawned → node booted'],
  ['stubStart', 'node booted → model.ts import (stub modules, loader thread, tsx, health thread, init)'],
  ['import', 'model.ts import (tsx compiles it)'],
  ['initialize', 'import done → new version ready (initialize, init-ok)'],
  ['swap', 'ready → serving (approve: type check; swap)'],
  ['answer', 'serving → the bench sees the new answer'],
  ['typeCheck', 'type check (beside the above)'],
  ['typeCheckDone', 'save → type check done'],
] as const;

type Phases = Record<(typeof PHASES)[number][0], number>;

/** The phases of one edit: the server's timeline (ms from its save event) and the new stub's marks (wall clock). */
function phasesOf(t0Epoch: number, serving: number, t: LogLine, stubMarks: StubMark[]): Phases {
  const save = t.saveEpochMs ?? NaN;
  const at = (what: StubMark['what']): number => (stubMarks.find((m) => m.what === what)?.at ?? NaN) - save;
  const start = at('start');
  const booted = at('booted');
  const importStart = at('importStart');
  const importEnd = at('importEnd');
  const n = (v: number | undefined): number => v ?? NaN;
  return {
    detect: save - t0Epoch + n(t.loadStartMs),
    hostPrep: start - n(t.loadStartMs),
    nodeBoot: booted - start,
    stubStart: importStart - booted,
    import: importEnd - importStart,
    initialize: n(t.readyMs) - importEnd,
    swap: n(t.servingMs) - n(t.readyMs),
    answer: serving - (save - t0Epoch) - n(t.servingMs),
    typeCheck: n(t.checkDoneMs) - n(t.checkStartMs),
    typeCheckDone: n(t.checkDoneMs),
  };
}
