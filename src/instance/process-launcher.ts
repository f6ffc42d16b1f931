/**
 * Process isolation (the default): a stub is a child process, `node dist/stub/main.js` in the
 * model's folder. Whatever model code does — crash, exhaust memory, segfault in native code, call
 * process.exit, block in a native call — ends that process only, and SIGKILL always stops it.
 * Its memory cap is its resident memory outside shared memory, polled from /proc.
 */
import { spawn } from 'node:child_process';
import { residentBytes } from './process-memory.js';
import { CHILD_DOORBELL_FD, afterStream, forwardLines, heapLimitMb, stubEnvironment, stubNodeFlags, STUB_MAIN, type LaunchEvents, type LaunchSpec, type LaunchedStub, type StubLauncher } from './stub-launcher.js';

export const processLauncher: StubLauncher = {
  launch(spec: LaunchSpec, events: LaunchEvents): LaunchedStub {
    const heapMb = heapLimitMb(spec.memoryLimitBytes);
    const child = spawn(process.execPath, [...(heapMb ? [`--max-old-space-size=${heapMb}`] : []), ...stubNodeFlags(spec.inspect), STUB_MAIN], {
      cwd: spec.modelDir,
      // The doorbell goes as an extra stdio entry: the child gets its own copy as fd 3.
      stdio: ['ignore', 'pipe', 'pipe', ...(spec.doorbellFd !== undefined ? [spec.doorbellFd] : [])],
      env: { ...process.env, ...stubEnvironment(spec, spec.doorbellFd !== undefined ? CHILD_DOORBELL_FD : undefined) },
    });
    let exited = false;
    const exit = (how: string): void => {
      if (exited) return;
      exited = true;
      events.exit(how);
    };
    forwardLines(child.stdout, child.stderr, events, (line) => {
      // V8's last words before it aborts (heap out of memory): the cause, rather than "SIGABRT".
      const fatal = /^FATAL ERROR: (.*)$/.exec(line);
      if (!fatal) return;
      const oom = /out of memory/i.test(fatal[1]!);
      // With a cap, the heap limit is the cap's (see heapLimitMb): name the cap.
      events.fault(oom && heapMb ? `exceeded its memory limit of ${spec.memoryLimitBytes} bytes (V8: ${fatal[1]})` : oom ? `out of memory (${fatal[1]})` : `fatal error: ${fatal[1]}`);
    });
    child.once('exit', (code, signal) => afterStream(child.stderr, () => exit(signal ? `killed by ${signal}` : `exited with code ${code}`)));
    child.once('error', (err) => {
      events.fault(`could not start: ${err.message}`);
      // A child that never started has no exit to wait for.
      if (child.pid === undefined) exit('not started');
      else child.kill('SIGKILL');
    });
    const pid = child.pid ?? 0;
    return {
      isolation: 'process',
      pid,
      where: `pid ${pid}`,
      memoryFault() {
        const cap = spec.memoryLimitBytes;
        if (!(cap > 0) || !pid) return undefined;
        // Polled from here, not reported by the stub: a busy or wedged stub cannot under-report.
        const rss = residentBytes(pid);
        return rss !== undefined && rss > cap ? `exceeded its memory limit of ${cap} bytes (RSS ${rss} bytes, not counting shared memory)` : undefined;
      },
      kill(signal: NodeJS.Signals = 'SIGKILL') {
        if (!exited && child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
  },
};
