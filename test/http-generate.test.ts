/**
 * Triton's generate extension over a real server: flat JSON in and out (`/generate`), and
 * Server-Sent Events from a decoupled model (`/generate_stream`), with the errors a client gets.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, type TestServer } from './helpers/server.js';

const MODELS = path.resolve(import.meta.dirname, '../models');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: MODELS, modelControlMode: 'explicit', loadModels: ['add_sub', 'string_upper', 'repeat'] });
}, 60_000);

afterAll(async () => {
  await server?.close();
  expect(shmLeftovers()).toEqual([]);
});

async function sse(url: string, body: unknown): Promise<{ status: number; type: string | null; events: any[] }> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
  return { status: res.status, type: res.headers.get('content-type'), events };
}

describe('generate', () => {
  it('maps JSON fields to inputs and outputs to JSON fields', async () => {
    const r = await http(`${server.url}/v2/models/add_sub/generate`, 'POST', { INPUT0: [1, 2, 3, 4], INPUT1: [1, 1, 1, 1] });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ model_name: 'add_sub', model_version: '1', OUTPUT0: [2, 3, 4, 5], OUTPUT1: [0, 1, 2, 3] });
  });

  it('a one-element string comes back as a string', async () => {
    const r = await http(`${server.url}/v2/models/string_upper/generate`, 'POST', { INPUT0: 'hello', id: 'r1' });
    expect(r.json).toEqual({ model_name: 'string_upper', model_version: '1', id: 'r1', OUTPUT0: 'HELLO' });
  });

  it('names an unknown field and a missing input', async () => {
    const unknown = await http(`${server.url}/v2/models/add_sub/generate`, 'POST', { INPUT0: [1, 2, 3, 4], INPUT1: [1, 1, 1, 1], text: 'x' });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatch(/'text' is not an input of model 'add_sub'/);
    const missing = await http(`${server.url}/v2/models/add_sub/generate`, 'POST', { INPUT0: [1, 2, 3, 4] });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toMatch(/missing input 'INPUT1'/);
    const shape = await http(`${server.url}/v2/models/add_sub/generate`, 'POST', { INPUT0: [1, 2, 3], INPUT1: [1, 1, 1] });
    expect(shape.status).toBe(400);
  });

  it('a decoupled model that sends several responses needs generate_stream (Triton\'s answer: 200 and its error)', async () => {
    const r = await http(`${server.url}/v2/models/repeat/generate`, 'POST', { IN: [4, 5, 6] });
    expect([r.status, r.json]).toEqual([200, {
      error: 'generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses',
    }]);
  });
});

describe('generate_stream', () => {
  it('sends one event per response of a decoupled model, in order', async () => {
    const r = await sse(`${server.url}/v2/models/repeat/generate_stream`, { IN: [4, 5, 6] });
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/event-stream');
    expect(r.events.map((e) => [e.OUT, e.IDX])).toEqual([[4, 0], [5, 1], [6, 2]]);
  });

  it('zero responses is an empty stream; a non-decoupled model sends exactly one event', async () => {
    expect((await sse(`${server.url}/v2/models/repeat/generate_stream`, { IN: [] })).events).toEqual([]);
    const one = await sse(`${server.url}/v2/models/add_sub/generate_stream`, { INPUT0: [1, 2, 3, 4], INPUT1: [4, 3, 2, 1] });
    expect(one.events).toEqual([{ model_name: 'add_sub', model_version: '1', OUTPUT0: [5, 5, 5, 5], OUTPUT1: [-3, -1, 1, 3] }]);
  });

  it('a bad request is a plain 400 before the stream starts', async () => {
    const res = await fetch(`${server.url}/v2/models/repeat/generate_stream`, { method: 'POST', body: '{"IN": "x"}' });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/IN/);
  });
});
