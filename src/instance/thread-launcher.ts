/**
 * Thread isolation (model parameter `isolation: "thread"`): a stub is a worker thread of the
 * server running the same dist/stub/main.js, which maps the region by name and speaks the same
 * queues and arenas as a process stub. It starts faster and costs one V8 isolate instead of a
 * process, and protects less:
 *   - an uncaught exception, an unhandled rejection, process.exit() in model code, a V8 heap out
 *     of memory: end the thread only (the instance restarts as after a crash);
 *   - the memory cap is the thread's V8 heap limit (resourceLimits.maxOldGenerationSizeMb):
 *     ArrayBuffers, Buffers and native allocations are not capped and count against the server;
 *   - stopping it is worker.terminate(), which cannot interrupt native code: a thread blocked in
 *     a native call is given up on after TERMINATE_GRACE_MS and left to end on its own;
 *   - a segfault or abort in native code, process.kill(process.pid), or exhausting the process's
 *     memory take the whole server down. Process isolation protects against those.
 */
import { Worker } from 'node:worker_threads';
import { afterStream, forwardLines, heapLimitMb, stubEnvironment, stubNodeFlags, STUB_MAIN, type LaunchEvents, type LaunchSpec, type LaunchedStub, type StubLauncher } from './stub-launcher.js';

/** How long terminate() may take before the thread counts as gone (it is stuck in native code). */
export const TERMINATE_GRACE_MS = 1000;

export const threadLauncher: StubLauncher = {
  launch(spec: LaunchSpec, events: LaunchEvents): LaunchedStub {
    const heapMb = heapLimitMb(spec.memoryLimitBytes);
    const worker = new Worker(STUB_MAIN, {
      // The worker's own copy: the region name is not put in the server's environment.
      // The doorbell: the same fd number (one fd table); the stub takes its own copy of it.
      env: { ...process.env, ...stubEnvironment(spec, spec.doorbellFd) },
      // No inspector flags: the model parameter debug_inspect_port is refused with threads.
      execArgv: stubNodeFlags([]),
      argv: [],
      stdout: true,
      stderr: true,
      ...(heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {}),
    });
    let exited = false;
    let terminating = false;
    let giveUp: NodeJS.Timeout | undefined;
    const exit = (how: string): void => {
      if (exited) return;
      exited = true;
      if (giveUp) clearTimeout(giveUp);
      events.exit(how);
    };
    forwardLines(worker.stdout, worker.stderr, events);
    worker.on('error', (err: Error & { code?: string }) => {
      // The stub catches its own uncaught exceptions; what arrives here escaped before it could
      // (a module that fails to load) or is the thread's heap running out.
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        events.fault(heapMb ? `exceeded its memory limit of ${spec.memoryLimitBytes} bytes (the V8 heap limit of a thread stub: ${err.message})` : `out of memory (${err.message})`);
      } else {
        // The cause (it may reach clients) without the stack's absolute paths; the log gets it whole.
        events.fault(`the stub thread failed: ${err.name}: ${err.message}`);
        events.output(`the stub thread failed: ${err.stack ?? err.message}`, 'warn');
      }
    });
    // A cause the stub names as it ends the thread (process.exit in model code): see stub/launch.ts.
    worker.on('message', (m: { stubhostFault?: unknown }) => {
      if (typeof m?.stubhostFault === 'string') events.fault(m.stubhostFault);
    });
    worker.once('exit', (code) => afterStream(worker.stderr, () => exit(terminating ? 'terminated' : `exited with code ${code}`)));
    const where = `thread ${worker.threadId}`;
    return {
      isolation: 'thread',
      pid: process.pid,
      where,
      // The heap limit is enforced by V8 (an 'error' with ERR_WORKER_OUT_OF_MEMORY); this
      // process's RSS is the server's, not the stub's.
      memoryFault: () => undefined,
      kill() {
        if (exited || terminating) return;
        terminating = true;
        void worker.terminate().catch(() => {});
        giveUp = setTimeout(() => {
          // Still running: blocked in native code, which terminate() cannot interrupt. Its
          // requests fail now and the instance restarts; the thread keeps its (unlinked) shared
          // memory until it returns to JavaScript, where it ends.
          worker.unref();
          events.output(`${where} did not stop within ${TERMINATE_GRACE_MS} ms of worker.terminate() (blocked in native code); it is left to end on its own`, 'warn');
          exit('terminated');
        }, TERMINATE_GRACE_MS);
        giveUp.unref();
      },
    };
  },
};
