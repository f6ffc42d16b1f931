/** The HTTP front-end's routes, error mapping, body limit, keep-alive and disconnects, over real HTTP. */
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpServer } from '../src/server/http/server.js';
import { TestService } from './fixtures/http/service.js';
import { bytesOf, json, request } from './fixtures/http/client.js';

let service: TestService;
let server: HttpServer;
let port: number;

beforeAll(async () => {
  service = new TestService();
  server = new HttpServer(service, { port: 0, host: '127.0.0.1', maxBodyBytes: 64 * 1024 });
  port = await server.start();
});

afterAll(async () => {
  await server.close();
});

const X1 = JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [1] }] });

describe('health and metadata', () => {
  it('live and ready follow the service, with empty bodies', async () => {
    let r = await request(port, 'GET', '/v2/health/live');
    expect([r.status, r.body.length]).toEqual([200, 0]);
    r = await request(port, 'GET', '/v2/health/ready');
    expect(r.status).toBe(200);
    service.ready = false;
    service.live = false;
    try {
      expect((await request(port, 'GET', '/v2/health/ready')).status).toBe(400);
      expect((await request(port, 'GET', '/v2/health/live')).status).toBe(400);
    } finally {
      service.ready = true;
      service.live = true;
    }
  });

  it('GET /v2 is the server metadata', async () => {
    const r = await request(port, 'GET', '/v2');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(json(r)).toMatchObject({ name: 'stubhost', extensions: expect.arrayContaining(['binary_tensor_data']) });
  });

  it('model metadata, with and without a version, and a query string', async () => {
    const r = await request(port, 'GET', '/v2/models/add_sub?x=1');
    expect(r.status).toBe(200);
    expect(json(r)).toMatchObject({ name: 'add_sub', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [-1, 4] }, { name: 'INPUT1' }] });
    expect(json(await request(port, 'GET', '/v2/models/add_sub/versions/1')).name).toBe('add_sub');
    const missing = await request(port, 'GET', '/v2/models/add_sub/versions/7');
    expect(missing.status).toBe(404);
    expect(json(missing).error).toMatch(/version 7/);
  });

  it('model ready, config and unknown models', async () => {
    expect((await request(port, 'GET', '/v2/models/add_sub/ready')).status).toBe(200);
    expect((await request(port, 'GET', '/v2/models/add_sub/versions/1/ready')).status).toBe(200);
    expect((await request(port, 'GET', '/v2/models/failing/ready')).status).toBe(400);
    const cfg = await request(port, 'GET', '/v2/models/add_sub/config');
    expect(json(cfg)).toEqual({ name: 'add_sub', backend: 'typescript', max_batch_size: 8 });
    const nf = await request(port, 'GET', '/v2/models/nope/config');
    expect(nf.status).toBe(404);
    expect(json(nf)).toEqual({ error: `model 'nope' is not found` });
  });

  it('percent-encoded model names are decoded', async () => {
    const nf = await request(port, 'GET', '/v2/models/a%20b');
    expect(json(nf).error).toContain(`'a b'`);
  });

  it('statistics for every model, one model and one version', async () => {
    const all = json(await request(port, 'GET', '/v2/models/stats'));
    expect(all.model_stats.map((s: { name: string }) => s.name)).toContain('echo');
    const one = json(await request(port, 'GET', '/v2/models/add_sub/stats'));
    expect(one.model_stats).toHaveLength(1);
    expect(one.model_stats[0]).toMatchObject({ name: 'add_sub', version: '1', inference_stats: { success: { count: 0 } } });
    expect(json(await request(port, 'GET', '/v2/models/add_sub/versions/1/stats')).model_stats[0].name).toBe('add_sub');
  });
});

describe('repository and logging', () => {
  it('index, all or ready only', async () => {
    const all = json(await request(port, 'POST', '/v2/repository/index'));
    // As Triton's index: no 'reason' when there is none.
    expect(all).toContainEqual({ name: 'failing', version: '1', state: 'UNAVAILABLE' });
    const ready = json(await request(port, 'POST', '/v2/repository/index', JSON.stringify({ ready: true })));
    expect(ready.find((e: { name: string }) => e.name === 'failing')).toBeUndefined();
    const bad = await request(port, 'POST', '/v2/repository/index', JSON.stringify({ ready: 'yes' }));
    expect(bad.status).toBe(400);
  });

  it('load passes the config and base64 files; errors keep their status', async () => {
    const r = await request(port, 'POST', '/v2/repository/models/newmodel/load', JSON.stringify({
      parameters: { config: '{"max_batch_size": 4}', 'file:1/weights.bin': Buffer.from([1, 2, 3]).toString('base64') },
    }));
    expect([r.status, r.body.length]).toEqual([200, 0]);
    const load = service.loads.at(-1)!;
    expect(load.name).toBe('newmodel');
    expect(load.options?.config).toBe('{"max_batch_size": 4}');
    expect(Array.from(load.options!.files!['1/weights.bin']!)).toEqual([1, 2, 3]);
    expect((await request(port, 'POST', '/v2/repository/models/plain/load')).status).toBe(200);
    const failed = await request(port, 'POST', '/v2/repository/models/broken/load', '{}');
    expect(failed.status).toBe(400);
    expect(json(failed).error).toMatch(/failed to load/);
  });

  it('unload passes unload_dependents', async () => {
    const r = await request(port, 'POST', '/v2/repository/models/echo/unload', JSON.stringify({ parameters: { unload_dependents: true } }));
    expect(r.status).toBe(200);
    expect(service.unloads.at(-1)).toEqual({ name: 'echo', options: { unloadDependents: true } });
    expect((await request(port, 'POST', '/v2/repository/models/nope/unload')).status).toBe(404);
  });

  it('logging: GET reads, POST updates', async () => {
    expect(json(await request(port, 'GET', '/v2/logging'))).toEqual({ log_info: true, log_verbose_level: 0 });
    const r = await request(port, 'POST', '/v2/logging', JSON.stringify({ log_verbose_level: 1 }));
    expect(json(r)).toEqual({ log_info: true, log_verbose_level: 1 });
  });
});

describe('errors', () => {
  it('unknown route → 404, wrong method → 405 with Allow', async () => {
    for (const path of ['/', '/v1/models', '/v2/', '/v2/models/add_sub/nope', '/v2/health/dead', '/v2/models/add_sub/versions/1/x/y']) {
      const r = await request(port, 'GET', path);
      expect(r.status, path).toBe(404);
      expect(json(r).error).toMatch(/no route/);
    }
    const r = await request(port, 'GET', '/v2/models/add_sub/infer');
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST');
    expect((await request(port, 'DELETE', '/v2/logging')).headers.allow).toBe('GET, POST');
  });

  it('malformed JSON → 400', async () => {
    for (const path of ['/v2/models/add_sub/infer', '/v2/repository/index', '/v2/logging']) {
      const r = await request(port, 'POST', path, '{"inputs": [');
      expect(r.status, path).toBe(400);
      expect(json(r).error).toMatch(/malformed JSON/);
    }
    expect(json(await request(port, 'POST', '/v2/logging', '[1]')).error).toMatch(/JSON object/);
  });

  it('model errors keep their status; unknown errors are 500', async () => {
    const body = (x: number): string => JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [x] }] });
    const a = await request(port, 'POST', '/v2/models/failing/infer', body(0));
    expect([a.status, json(a)]).toEqual([500, { error: 'model failed on purpose' }]);
    const b = await request(port, 'POST', '/v2/models/failing/infer', body(1));
    expect([b.status, json(b)]).toEqual([500, { error: 'unexpected crash' }]);
    const c = await request(port, 'POST', '/v2/models/nope/infer', body(1));
    expect(c.status).toBe(404);
    const d = await request(port, 'POST', '/v2/models/add_sub/versions/x1/infer', body(1));
    expect([d.status, json(d).error]).toEqual([400, `failed to get model version from specified version string 'x1' (details: stol), version should be an integral value > 0`]);
  });

  it('body over the limit → 413 naming the limit (Content-Length and chunked)', async () => {
    const big = Buffer.alloc(100 * 1024, 0x20);
    const r = await request(port, 'POST', '/v2/models/add_sub/infer', big);
    expect(r.status).toBe(413);
    expect(json(r).error).toMatch(/limit of 65536 bytes/);
    // No Content-Length: the limit is found while reading, and reading stops there.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v2/models/add_sub/infer', agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(40 * 1024, 0x20));
      req.write(Buffer.alloc(40 * 1024, 0x20));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error).toMatch(/65536/);
    // The server still serves afterwards.
    expect((await request(port, 'GET', '/v2/health/live')).status).toBe(200);
  });

  it('gzip and deflate request bodies are decompressed, within the limit', async () => {
    const doc = JSON.stringify({ inputs: [{ name: 'IN_INT32', datatype: 'INT32', shape: [2], data: [3, 4] }] });
    for (const [encoding, pack] of [['gzip', zlib.gzipSync], ['deflate', zlib.deflateSync]] as const) {
      const r = await request(port, 'POST', '/v2/models/echo/infer', pack(doc), { 'Content-Encoding': encoding });
      expect(r.status, encoding).toBe(200);
      expect(json(r).outputs[0].data).toEqual([3, 4]);
    }
    const bomb = await request(port, 'POST', '/v2/models/echo/infer', zlib.gzipSync(Buffer.alloc(1 << 20)), { 'Content-Encoding': 'gzip' });
    expect(bomb.status).toBe(413);
    const br = await request(port, 'POST', '/v2/models/echo/infer', 'x', { 'Content-Encoding': 'br' });
    expect([br.status, json(br).error]).toEqual([400, `Content-Encoding 'br' is not supported; send gzip, deflate or an uncompressed body`]);
    const junk = await request(port, 'POST', '/v2/models/echo/infer', 'not gzip', { 'Content-Encoding': 'gzip' });
    expect(json(junk).error).toMatch(/cannot decompress the gzip request body/);
  });

  it('Expect: 100-continue with an oversized body is refused before the body is sent', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port, method: 'POST', path: '/v2/models/add_sub/infer', agent: false,
        headers: { Expect: '100-continue', 'Content-Length': 1 << 20 },
      }, (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('continue', () => reject(new Error('server asked for the body')));
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(413);
  });
});

describe('how the body arrives', () => {
  const doc = (x: number): string => JSON.stringify({ inputs: [{ name: 'IN_INT32', datatype: 'INT32', shape: [1], data: [x] }] });
  const head = (length: number, extra = ''): string => `POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n${extra}\r\n`;
  const post = (body: string): string => head(Buffer.byteLength(body)) + body;
  const data = (r: RawReply): unknown => JSON.parse(r.body).outputs[0].data;

  it('with its headers, several requests in one packet', async () => {
    const replies = await exchange(port, 3, (sock) => sock.write(post(doc(1)) + post(doc(2)) + post(doc(3))));
    expect(replies.map((r) => [r.status, data(r)])).toEqual([[200, [1]], [200, [2]], [200, [3]]]);
  });

  it('after its headers, in pieces (Expect: 100-continue: the body is sent once the server asked)', async () => {
    const body = doc(7);
    const replies = await exchange(port, 1, (sock) => sock.write(head(body.length, 'Expect: 100-continue\r\n')), (sock, text) => {
      if (!text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) return;
      sock.write(body.slice(0, 5));
      sock.write(body.slice(5));
      return text.slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
    });
    expect(replies.map((r) => [r.status, data(r)])).toEqual([[200, [7]]]);
  });

  it('chunked, in one packet and across writes, and over the limit', async () => {
    const body = doc(9);
    const chunks = `${(5).toString(16)}\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\n\r\n`;
    const chunkedHead = 'POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    const one = await exchange(port, 2, (sock) => sock.write(chunkedHead + chunks + chunkedHead + chunks));
    expect(one.map((r) => [r.status, data(r)])).toEqual([[200, [9]], [200, [9]]]);
    const split = await exchange(port, 1, (sock) => {
      sock.write(chunkedHead + chunks.slice(0, 12));
      sock.write(chunks.slice(12));
    });
    expect(split.map((r) => [r.status, data(r)])).toEqual([[200, [9]]]);
    const big = 'x'.repeat(70 * 1024);
    const over = await exchange(port, 1, (sock) => sock.write(`${chunkedHead}${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`));
    expect([over[0]!.status, over[0]!.headers.connection]).toEqual([413, 'close']);
  });

  it('binary data with the headers, at any JSON length', async () => {
    for (const pad of ['', ' ', '   ']) {
      const json = Buffer.from(`{"inputs":[{"name":"IN_FP32","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]${pad}}`);
      const body = Buffer.concat([json, bytesOf(new Float32Array([1.5, -2]))]);
      const r = await request(port, 'POST', '/v2/models/echo/infer', body, { 'Inference-Header-Content-Length': json.length });
      expect([r.status, json.length, JSON.parse(r.body.toString()).outputs[0].data]).toEqual([200, json.length, [1.5, -2]]);
    }
  });

  it('a body cut off by the client runs nothing, and the server still serves', async () => {
    const before = service.requests.length;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let answer = '';
    sock.on('data', (c: Buffer) => (answer += c.toString()));
    const closed = new Promise((r) => sock.once('close', r));
    sock.end(head(100) + doc(1).slice(0, 10));
    await closed;
    expect(answer).toMatch(/^HTTP\/1.1 400 /); // node:http's own answer to a message cut short
    expect((await request(port, 'GET', '/v2/health/live')).status).toBe(200);
    expect(service.requests.length).toBe(before);
  });
});

describe('connections', () => {
  it('keeps connections alive across requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await request(port, 'POST', '/v2/models/echo/infer', JSON.stringify({ inputs: [{ name: 'IN_INT32', datatype: 'INT32', shape: [1], data: [5] }] }), {}, agent);
      const b = await request(port, 'GET', '/v2/health/live', undefined, {}, agent);
      const c = await request(port, 'POST', '/v2/models/add_sub/infer', '{', {}, agent); // an error does not drop the connection either
      const d = await request(port, 'GET', '/v2/models/add_sub', undefined, {}, agent);
      expect([a.status, b.status, c.status, d.status]).toEqual([200, 200, 400, 200]);
      expect(new Set([a.localPort, b.localPort, c.localPort, d.localPort]).size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('a client that disconnects aborts the request signal', async () => {
    const before = service.aborted.length;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ${X1.length}\r\n\r\n${X1}`);
    await waitFor(() => service.requests.some((q) => q.modelName === 'slow' && !q.signal!.aborted));
    const req = service.requests.filter((q) => q.modelName === 'slow').at(-1)!;
    sock.destroy();
    await waitFor(() => service.aborted.length > before);
    expect(req.signal!.aborted).toBe(true);
    expect((req.signal!.reason as Error).message).toMatch(/client disconnected/);
  });
});

describe('decoupled models', () => {
  const body = (count: number): string => JSON.stringify({ parameters: { count }, inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [1] }] });

  it('infer is refused with 501 before the model runs, whatever it would send (as Triton)', async () => {
    for (const n of [0, 1, 3]) {
      const before = service.requests.length;
      const r = await request(port, 'POST', '/v2/models/decoupled/infer', body(n));
      expect([r.status, json(r)], String(n)).toEqual([501, { error: "HTTP end point doesn't support models with decoupled transaction policy" }]);
      expect(service.requests.length).toBe(before);
    }
  });
});

describe('close', () => {
  it('fails in-flight requests with 503, aborts their signal, and is safe twice', async () => {
    const svc = new TestService();
    const s = new HttpServer(svc, { port: 0, host: '127.0.0.1' });
    const p = await s.start();
    const pending = request(p, 'POST', '/v2/models/slow/infer', X1);
    await waitFor(() => svc.requests.length === 1);
    await Promise.all([s.close(), s.close()]);
    const r = await pending;
    expect(r.status).toBe(503);
    expect(json(r).error).toMatch(/shutting down/);
    expect(svc.requests[0]!.signal!.aborted).toBe(true);
    await expect(request(p, 'GET', '/v2/health/live')).rejects.toThrow();
  });
});

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Writes raw bytes on a socket of its own and reads `count` answers (Content-Length bodies).
 * `onText` sees what has arrived so far and may answer it, returning the text still to parse.
 */
function exchange(port: number, count: number, send: (sock: net.Socket) => void, onText?: (sock: net.Socket, text: string) => string | undefined): Promise<RawReply[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const replies: RawReply[] = [];
    let text = '';
    sock.on('error', reject);
    sock.on('connect', () => send(sock));
    sock.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (onText !== undefined) text = onText(sock, text) ?? text;
      for (;;) {
        const end = text.indexOf('\r\n\r\n');
        if (end < 0) break;
        const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length']);
        if (text.length < end + 4 + length) break;
        replies.push({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4, end + 4 + length) });
        text = text.slice(end + 4 + length);
      }
      if (replies.length === count) {
        sock.destroy();
        resolve(replies);
      }
    });
  });
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
