/**
 * `npx tsx scripts/cpuprofile-top.ts <file.cpuprofile> [--top <n>] [--callers <name>]`: the
 * functions with the most self time in a V8 CPU profile (node --cpu-prof), then the same summed
 * per source file, as a share of the sampled time that was not idle. --callers: the call paths
 * (three frames up) that lead to functions named <name>, by their self time.
 *
 * The profiler samples wall time while the thread runs JavaScript or native code: time the
 * process spends preempted inside a call (a futex wake that lets the woken peer run on the same
 * CPU) is charged to that call. Profile a host whose stubs run on another CPU for a CPU view.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: npx tsx scripts/cpuprofile-top.ts <file.cpuprofile> [--top <n>]\n');
  process.exit(2);
}
const flag = (name: string) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
const top = Number(flag('--top') ?? 40);
const callersOf = flag('--callers');
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map<number, number>();
// timeDeltas[i] is the time before sample i; it is charged to sample i, as DevTools does.
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i] ?? 0));
}

const shortUrl = (url: string) => {
  if (!url) return '';
  const p = url.replace(/^file:\/\//, '');
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) return p.slice(nm + 'node_modules/'.length);
  const d = p.search(/\/(dist|src|stub)\//);
  return d >= 0 ? p.slice(d + 1) : path.basename(p);
};

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  if (functionName === '(idle)') {
    idle += us;
    continue;
  }
  total += us;
  const where = shortUrl(url);
  const key = `${functionName || '(anonymous)'}${where ? `  ${where}:${lineNumber + 1}` : ''}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const fileKey = where || functionName;
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}

const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
  }
};
process.stdout.write(`${(total / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle, ${profile.samples.length} samples\n`);
print('self time by function', byFunction);
print('self time by file', byFile);

if (callersOf) {
  const paths = new Map<string, number>();
  for (const [id, us] of selfUs) {
    if (byId.get(id)!.callFrame.functionName !== callersOf) continue;
    const frames: string[] = [];
    for (let p = parent.get(id), i = 0; p !== undefined && i < 3; p = parent.get(p), i++) {
      const f = byId.get(p)!.callFrame;
      frames.push(`${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`);
    }
    const key = frames.join(' ← ');
    paths.set(key, (paths.get(key) ?? 0) + us);
  }
  print(`callers of ${callersOf}`, paths);
}
