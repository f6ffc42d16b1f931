/**
 * The model parameter debug_inspect_port: the model's stub runs with --inspect on that port, a
 * debugger attaches, and a stub paused in the debugger (as at a breakpoint) for longer than its
 * stub timeout is not declared dead: the health word comes from the health worker thread, which
 * the debugger does not pause. After resuming, the paused request is answered.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ROOT } from './helpers/cli.js';

const MODEL = `import { InferenceResponse, Tensor } from 'stubhost';
import type { InferenceRequest } from 'stubhost';
export default class {
  execute(requests: InferenceRequest[]) {
    return requests.map(() => new InferenceResponse({ outputs: [new Tensor('PID', Int32Array.of(process.pid))] }));
  }
}
`;
const config = (port: string) => `backend: "typescript"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "PID" data_type: TYPE_INT32 dims: [ 1 ] } ]
parameters { key: "debug_inspect_port" value: { string_value: "${port}" } }
parameters { key: "stub_timeout_seconds" value: { string_value: "1" } }
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

let server: RepositoryServer;
let port: number;

beforeAll(async () => {
  port = await freePort();
  server = await startRepositoryServer({
    debugged: { 'config.pbtxt': config(String(port)), '1/model.ts': MODEL },
    bad_port: { 'config.pbtxt': config('http'), '1/model.ts': MODEL },
  });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
});

const infer = (model: string) => http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'X', shape: [1], datatype: 'FP32', data: [1] }] });

describe('debug_inspect_port', () => {
  it('a port that is not a number fails that model\'s load, naming the parameter', () => {
    expect(server.failed.get('bad_port')).toMatch(/parameters\["debug_inspect_port"\]: "http" is not a port; give 0\.\.65535/);
    expect(server.failed.has('debugged')).toBe(false);
  });

  it('the stub listens for a debugger; paused longer than its stub timeout it is not restarted, and answers after resuming', async () => {
    const before = await infer('debugged');
    expect(before.status, before.text).toBe(200);
    const stubPid = before.json.outputs[0].data[0];

    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    expect(targets).toHaveLength(1);
    const client = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', path.join(ROOT, 'test', 'helpers', 'inspector-client.mjs'), targets[0]!.webSocketDebuggerUrl], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const seen = (word: string) => waitFor(() => lines.includes(word), 30_000);
    readline.createInterface({ input: client.stdout! }).on('line', (l) => lines.push(l));
    try {
      expect(await seen('attached')).toBe(true);
      // The stub's main thread pauses as soon as it runs JavaScript: when this request reaches it.
      let settled = false;
      const pending = infer('debugged').finally(() => (settled = true));
      expect(await seen('paused')).toBe(true);
      // Stay paused for three stub timeouts: a stub whose health word stopped would be killed.
      await new Promise((r) => setTimeout(r, 3000));
      const metrics = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
      expect(metrics).toMatch(/stubhost_stub_healthy\{model="debugged",[^}]*\} 1/);
      expect(metrics).not.toMatch(/stubhost_stub_restarts_total\{model="debugged",[^}]*\} [1-9]/);
      expect(settled, 'the request waits while the stub is paused').toBe(false);
      client.stdin!.write('resume\n');
      const after = await pending;
      expect(after.status, after.text).toBe(200);
      expect(after.json.outputs[0].data[0]).toBe(stubPid);
    } finally {
      client.stdin!.write('exit\n');
      await new Promise((r) => (client.exitCode !== null ? r(undefined) : client.once('exit', r)));
    }
  }, 90_000);
});
