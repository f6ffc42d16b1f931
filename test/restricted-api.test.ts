/**
 * Triton's restricted API categories against real servers over real sockets:
 * `--http-restricted-api` and `--grpc-restricted-protocol`. For every one of Triton's nine
 * categories, on each protocol, a request without the header (or with a wrong value) gets
 * Triton's answer (HTTP 403 "This API is restricted, expecting header '<key>'"; gRPC UNAVAILABLE
 * "This protocol is restricted, expecting header 'triton-grpc-protocol-<key>'") and has no
 * effect, the same request with the header is served, and the categories left open answer as
 * before. Two servers split the categories between the protocols so each category is seen both
 * restricted and open on each. A bad flag value ends `stubhost serve` with a message naming the
 * flag. A canary model keeps answering, and nothing is left behind.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthServiceDefinition, inferenceServiceDefinition } from '../src/server/grpc/proto.js';
import { GRPC_METHOD_CATEGORY } from '../src/server/grpc/server.js';
import { logSettings } from '../src/log/logger.js';
import {
  GRPC_RESTRICTED_PROTOCOL, HTTP_RESTRICTED_API, RESTRICTED_CATEGORIES, RestrictedOptionError, parseRestrictedFeatures,
  type RestrictedCategory,
} from '../src/server/restricted-features.js';
import { health, inference } from './helpers/grpc.js';
import { childPids, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ADD_SUB_TS, BIN, makeRepository, startCli, shmFilesOf } from './helpers/blackbox.js';
import { usePrivateTmpdir } from './helpers/private-tmp.js';

const CONFIG = (name: string): string => `name: "${name}"
backend: "typescript"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]`;

const MODELS = {
  add_sub: { 'config.pbtxt': CONFIG('add_sub'), '1/model.ts': ADD_SUB_TS },
  canary: { 'config.pbtxt': CONFIG('canary'), '1/model.ts': ADD_SUB_TS },
};

const INFER_BODY = {
  inputs: [
    { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
    { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
  ],
};
const GRPC_INFER = (model: string) => ({
  model_name: model,
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 1, 1, 1] } },
  ],
});

// ---------------------------------------------------------------------------------------------
// HTTP and gRPC calls with headers

interface HttpAnswer { status: number; json: any; text: string }

async function httpCall(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

type GrpcAnswer = { code: number; details: string; res?: any };

function grpcCall(raw: any, method: string, req: object, headers: Record<string, string> = {}): Promise<GrpcAnswer> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    raw[method](req, md, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: any) => {
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', res });
    });
  });
}

/** One ModelStreamInfer request; resolves with the final status and the responses. */
function grpcStream(raw: any, req: object, headers: Record<string, string> = {}): Promise<GrpcAnswer & { responses: any[] }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    const responses: any[] = [];
    const call = raw.ModelStreamInfer(md, { deadline: Date.now() + 30_000 });
    call.on('data', (m: any) => responses.push(m));
    call.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, responses }));
    call.on('end', () => resolve({ code: grpc.status.OK, details: '', responses }));
    call.write(req);
    call.end();
  });
}

// ---------------------------------------------------------------------------------------------
// One probe per route / RPC, grouped by the category Triton files it under. `expect` is the
// answer when served: a status / gRPC code, or 'not-refused' where the outcome depends on other
// server settings (e.g. registering a region that does not exist) and only "not the restriction
// answer" matters.

type Expect = number | 'not-refused';
interface HttpProbe { method: string; path: string; body?: unknown; expect: Expect }
/** `service`: 'health' for grpc.health.v1.Health, else GRPCInferenceService. */
interface GrpcProbe { method: string; req: object; expect: Expect; service?: 'health' }

const HTTP_PROBES: Record<RestrictedCategory, HttpProbe[]> = {
  health: [
    { method: 'GET', path: '/v2/health/live', expect: 200 },
    { method: 'GET', path: '/v2/health/ready', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/ready', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/versions/1/ready', expect: 200 },
  ],
  metadata: [
    { method: 'GET', path: '/v2', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/versions/1', expect: 200 },
  ],
  inference: [
    { method: 'POST', path: '/v2/models/add_sub/infer', body: INFER_BODY, expect: 200 },
    { method: 'POST', path: '/v2/models/add_sub/versions/1/infer', body: INFER_BODY, expect: 200 },
    { method: 'POST', path: '/v2/models/add_sub/generate', body: { INPUT0: [1, 2, 3, 4], INPUT1: [1, 1, 1, 1] }, expect: 200 },
    { method: 'POST', path: '/v2/models/add_sub/generate_stream', body: { INPUT0: [1, 2, 3, 4], INPUT1: [1, 1, 1, 1] }, expect: 200 },
  ],
  'shared-memory': [
    { method: 'GET', path: '/v2/systemsharedmemory/status', expect: 200 },
    { method: 'GET', path: '/v2/systemsharedmemory/region/nope/status', expect: 'not-refused' },
    { method: 'POST', path: '/v2/systemsharedmemory/region/nope/register', body: { key: '/nope', offset: 0, byte_size: 16 }, expect: 'not-refused' },
    { method: 'POST', path: '/v2/systemsharedmemory/unregister', expect: 'not-refused' },
    { method: 'GET', path: '/v2/cudasharedmemory/status', expect: 200 },
    // Client shared memory is on here; built without GPUs, CUDA register fails (400) and unregister succeeds, as Triton's.
    { method: 'POST', path: '/v2/cudasharedmemory/region/nope/register', body: { raw_handle: { b64: '' }, device_id: 0, byte_size: 16 }, expect: 400 },
    { method: 'POST', path: '/v2/cudasharedmemory/unregister', expect: 200 },
  ],
  'model-config': [
    { method: 'GET', path: '/v2/models/add_sub/config', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/versions/1/config', expect: 200 },
  ],
  'model-repository': [
    { method: 'POST', path: '/v2/repository/index', expect: 200 },
    { method: 'POST', path: '/v2/repository/models/no_such_model/unload', expect: 'not-refused' },
  ],
  statistics: [
    { method: 'GET', path: '/v2/models/stats', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/stats', expect: 200 },
    { method: 'GET', path: '/v2/models/add_sub/versions/1/stats', expect: 200 },
  ],
  // stubhost has no tracing: served, these answer Triton's "the server does not support tracing".
  trace: [
    { method: 'GET', path: '/v2/trace/setting', expect: 503 },
    { method: 'POST', path: '/v2/trace/setting', body: { trace_level: ['TIMESTAMPS'] }, expect: 503 },
    { method: 'GET', path: '/v2/models/add_sub/trace/setting', expect: 503 },
  ],
  logging: [
    { method: 'GET', path: '/v2/logging', expect: 200 },
  ],
};

const GRPC_PROBES: Record<RestrictedCategory, GrpcProbe[]> = {
  health: [
    { method: 'ServerLive', req: {}, expect: grpc.status.OK },
    { method: 'ServerReady', req: {}, expect: grpc.status.OK },
    { method: 'ModelReady', req: { name: 'add_sub' }, expect: grpc.status.OK },
    { method: 'Check', req: { service: '' }, expect: grpc.status.OK, service: 'health' },
  ],
  metadata: [
    { method: 'ServerMetadata', req: {}, expect: grpc.status.OK },
    { method: 'ModelMetadata', req: { name: 'add_sub' }, expect: grpc.status.OK },
  ],
  inference: [
    { method: 'ModelInfer', req: GRPC_INFER('add_sub'), expect: grpc.status.OK },
    // ModelStreamInfer: its own test below (the restriction ends the stream).
  ],
  'shared-memory': [
    { method: 'SystemSharedMemoryStatus', req: {}, expect: grpc.status.OK },
    { method: 'SystemSharedMemoryRegister', req: { name: 'nope', key: '/nope', offset: 0, byte_size: 16 }, expect: 'not-refused' },
    { method: 'SystemSharedMemoryUnregister', req: {}, expect: 'not-refused' },
    { method: 'CudaSharedMemoryStatus', req: {}, expect: grpc.status.OK },
    // Without GPUs, as Triton: register fails whatever the client-shm flag, unregister depends on it.
    { method: 'CudaSharedMemoryRegister', req: { name: 'nope', raw_handle: Buffer.alloc(0), device_id: 0, byte_size: 16 }, expect: grpc.status.INVALID_ARGUMENT },
    { method: 'CudaSharedMemoryUnregister', req: {}, expect: 'not-refused' },
  ],
  'model-config': [
    { method: 'ModelConfig', req: { name: 'add_sub' }, expect: grpc.status.OK },
  ],
  'model-repository': [
    { method: 'RepositoryIndex', req: {}, expect: grpc.status.OK },
    { method: 'RepositoryModelUnload', req: { model_name: 'no_such_model' }, expect: 'not-refused' },
    { method: 'RepositoryModelLoad', req: { model_name: 'no_such_model' }, expect: 'not-refused' },
  ],
  statistics: [
    { method: 'ModelStatistics', req: {}, expect: grpc.status.OK },
    { method: 'ModelStatistics', req: { name: 'add_sub' }, expect: grpc.status.OK },
  ],
  trace: [
    { method: 'TraceSetting', req: {}, expect: grpc.status.UNIMPLEMENTED },
  ],
  logging: [
    { method: 'LogSettings', req: {}, expect: grpc.status.OK },
  ],
};

// ---------------------------------------------------------------------------------------------
// The two servers. Each category is restricted on one protocol of one server and open on the
// same protocol of the other.

interface Layout {
  http: string[];
  grpc: string[];
}

const LAYOUTS: Record<string, Layout> = {
  'server A': {
    http: ['model-repository,shared-memory,model-config,statistics,trace,logging:admin-key=admin-secret', 'metadata:meta-key=m-1'],
    grpc: ['inference,health:infer-key=i-1'],
  },
  'server B': {
    http: ['health,inference:user-key=u-1'],
    grpc: ['metadata,model-config,statistics,trace,logging,shared-memory,model-repository:admin-key=admin-secret'],
  },
};

function httpRefusal(key: string): HttpAnswer['json'] {
  return { error: `This API is restricted, expecting header '${key}'` };
}
const grpcRefusalText = (key: string): string => `This protocol is restricted, expecting header 'triton-grpc-protocol-${key}'`;

function expectServedHttp(a: HttpAnswer, probe: HttpProbe, where: string): void {
  if (probe.expect === 'not-refused') expect(a.status, where).not.toBe(403);
  else expect(a.status, `${where}: ${a.text}`).toBe(probe.expect);
}

function expectServedGrpc(a: GrpcAnswer, probe: GrpcProbe, where: string): void {
  if (probe.expect === 'not-refused') expect(a.details, where).not.toMatch(/^This protocol is restricted/);
  else expect(a.code, `${where}: ${a.details}`).toBe(probe.expect);
}

async function expectCanary(server: RepositoryServer, raw: any, headers: { http?: Record<string, string>; grpc?: Record<string, string> } = {}): Promise<void> {
  const h = await httpCall(server.url, 'POST', '/v2/models/canary/infer', INFER_BODY, headers.http);
  expect(h.status, h.text).toBe(200);
  expect(h.json.outputs[0].data).toEqual([2, 3, 4, 5]);
  const g = await grpcCall(raw, 'ModelInfer', GRPC_INFER('canary'), headers.grpc);
  expect(g.code, g.details).toBe(grpc.status.OK);
}

const tmp = usePrivateTmpdir('rapi-test-');

for (const [label, layout] of Object.entries(LAYOUTS)) {
  describe(`${label}: --http-restricted-api ${layout.http.join(' ')} / --grpc-restricted-protocol ${layout.grpc.join(' ')}`, () => {
    const httpRestrictions = parseRestrictedFeatures(layout.http, HTTP_RESTRICTED_API);
    const grpcRestrictions = parseRestrictedFeatures(layout.grpc, GRPC_RESTRICTED_PROTOCOL);
    /** The header that opens a category, or undefined if it is open. */
    const httpKey = (c: RestrictedCategory) => httpRestrictions.get(c);
    const grpcKey = (c: RestrictedCategory) => grpcRestrictions.get(c);
    const httpHeaders = (c: RestrictedCategory): Record<string, string> => {
      const r = httpKey(c);
      return r ? { [r.header]: r.value } : {};
    };
    const grpcHeaders = (c: RestrictedCategory): Record<string, string> => {
      const r = grpcKey(c);
      return r ? { [r.header]: r.value } : {};
    };
    const canaryHeaders = () => ({ http: httpHeaders('inference'), grpc: grpcHeaders('inference') });

    let server: RepositoryServer;
    let raw: any;
    let healthRaw: any;
    beforeAll(async () => {
      server = await startRepositoryServer(MODELS, {
        grpcPort: 0,
        // Explicit mode, so the repository API is open to whoever passes the restriction.
        modelControlMode: 'explicit',
        loadModels: ['*'],
        // Client shared memory on, so a shared-memory request that passes the restriction reaches its handler.
        allowClientShm: true,
        httpRestrictedApis: httpRestrictions,
        grpcRestrictedProtocols: grpcRestrictions,
      });
      raw = new inference.GRPCInferenceService(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure());
      healthRaw = new health.Health(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure());
    }, 60_000);

    afterAll(async () => {
      raw?.close();
      healthRaw?.close();
      const leftovers = await server?.stop(5000);
      expect(leftovers).toEqual([]);
      expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
    }, 30_000);

    for (const category of RESTRICTED_CATEGORIES) {
      it(`HTTP '${category}'`, async () => {
        const r = httpKey(category);
        for (const probe of HTTP_PROBES[category]) {
          const where = `${probe.method} ${probe.path}`;
          if (r === undefined) {
            // Open: served without any header, and another group's header changes nothing.
            expectServedHttp(await httpCall(server.url, probe.method, probe.path, probe.body), probe, where);
            expectServedHttp(await httpCall(server.url, probe.method, probe.path, probe.body, { 'admin-key': 'wrong' }), probe, where);
            continue;
          }
          const none = await httpCall(server.url, probe.method, probe.path, probe.body);
          expect(none.status, where).toBe(403);
          expect(none.json, where).toEqual(httpRefusal(r.header));
          const wrong = await httpCall(server.url, probe.method, probe.path, probe.body, { [r.header]: `${r.value}x` });
          expect(wrong.status, where).toBe(403);
          const prefix = await httpCall(server.url, probe.method, probe.path, probe.body, { [r.header]: r.value.slice(0, -1) });
          expect(prefix.status, where).toBe(403);
          // Header names are case-insensitive, as in Triton (evhtp_kv_find).
          expectServedHttp(await httpCall(server.url, probe.method, probe.path, probe.body, { [r.header.toUpperCase()]: r.value }), probe, where);
        }
        await expectCanary(server, raw, canaryHeaders());
      });

      it(`gRPC '${category}'`, async () => {
        const r = grpcKey(category);
        for (const probe of GRPC_PROBES[category]) {
          const where = probe.method;
          const client = probe.service === 'health' ? healthRaw : raw;
          if (r === undefined) {
            expectServedGrpc(await grpcCall(client, probe.method, probe.req), probe, where);
            continue;
          }
          const none = await grpcCall(client, probe.method, probe.req);
          expect(none, where).toEqual({ code: grpc.status.UNAVAILABLE, details: grpcRefusalText(r.header.slice('triton-grpc-protocol-'.length)) });
          const wrong = await grpcCall(client, probe.method, probe.req, { [r.header]: 'nope' });
          expect(wrong.code, where).toBe(grpc.status.UNAVAILABLE);
          // The key without Triton's prefix is not the key.
          const bare = await grpcCall(client, probe.method, probe.req, { [r.header.slice('triton-grpc-protocol-'.length)]: r.value });
          expect(bare.code, where).toBe(grpc.status.UNAVAILABLE);
          expectServedGrpc(await grpcCall(client, probe.method, probe.req, { [r.header]: r.value }), probe, where);
        }
        await expectCanary(server, raw, canaryHeaders());
      });
    }

    it('HTTP: the restriction is checked before the method, as Triton', async () => {
      const r = httpKey('logging') ?? httpKey('health')!;
      const path = httpKey('logging') ? '/v2/logging' : '/v2/health/live';
      const refused = await httpCall(server.url, 'DELETE', path);
      expect(refused.status).toBe(403);
      const allowed = await httpCall(server.url, 'DELETE', path, undefined, { [r.header]: r.value });
      expect(allowed.status).toBe(405);
      // An unknown route is 404 whatever the restrictions.
      expect((await httpCall(server.url, 'GET', '/v2/nowhere')).status).toBe(404);
    });

    it('gRPC ModelStreamInfer: refused at once without the header, served with it', async () => {
      const r = grpcKey('inference');
      const open = await grpcStream(raw, GRPC_INFER('add_sub'), r ? { [r.header]: r.value } : {});
      expect(open.code, open.details).toBe(grpc.status.OK);
      expect(open.responses).toHaveLength(1);
      expect(open.responses[0].error_message).toBe('');
      if (r === undefined) return;
      const refused = await grpcStream(raw, GRPC_INFER('add_sub'));
      expect(refused.code).toBe(grpc.status.UNAVAILABLE);
      expect(refused.details).toBe(grpcRefusalText('infer-key'));
      expect(refused.responses).toEqual([]);
      await expectCanary(server, raw, canaryHeaders());
    });

    it('a refused infer never reaches the model', async () => {
      const stats = async (): Promise<number> => {
        const s = await httpCall(server.url, 'GET', '/v2/models/add_sub/stats', undefined, httpHeaders('statistics'));
        return Number(s.json.model_stats[0].inference_stats.success.count);
      };
      const before = await stats();
      const http = httpKey('inference');
      if (http) expect((await httpCall(server.url, 'POST', '/v2/models/add_sub/infer', INFER_BODY)).status).toBe(403);
      const g = grpcKey('inference');
      if (g) expect((await grpcCall(raw, 'ModelInfer', GRPC_INFER('add_sub'))).code).toBe(grpc.status.UNAVAILABLE);
      expect(await stats()).toBe(before);
    });

    it('model-repository: a refused unload leaves the model loaded; with the key, unload and load work', async () => {
      const ready = async (): Promise<number> => (await httpCall(server.url, 'GET', '/v2/models/add_sub/ready', undefined, httpHeaders('health'))).status;
      const viaHttp = httpKey('model-repository') !== undefined;
      const headers = viaHttp ? httpHeaders('model-repository') : grpcHeaders('model-repository');
      const unload = (h: Record<string, string>) => viaHttp
        ? httpCall(server.url, 'POST', '/v2/repository/models/add_sub/unload', undefined, h).then((a) => a.status)
        : grpcCall(raw, 'RepositoryModelUnload', { model_name: 'add_sub' }, h).then((a) => a.code);
      const load = (h: Record<string, string>) => viaHttp
        ? httpCall(server.url, 'POST', '/v2/repository/models/add_sub/load', undefined, h).then((a) => a.status)
        : grpcCall(raw, 'RepositoryModelLoad', { model_name: 'add_sub' }, h).then((a) => a.code);
      const [refused, ok] = viaHttp ? [403, 200] : [grpc.status.UNAVAILABLE, grpc.status.OK];

      expect(await unload({})).toBe(refused);
      expect(await ready()).toBe(200);
      expect(await unload(headers)).toBe(ok);
      expect(await ready()).toBe(400);
      await expectCanary(server, raw, canaryHeaders());
      expect(await load({})).toBe(refused);
      expect(await ready()).toBe(400);
      expect(await load(headers)).toBe(ok);
      expect(await ready()).toBe(200);
    }, 60_000);

    it("logging: changing the log level needs the 'logging' key", async () => {
      const level = logSettings.level;
      try {
        const viaHttp = httpKey('logging') !== undefined;
        if (viaHttp) {
          const r = httpKey('logging')!;
          const refused = await httpCall(server.url, 'POST', '/v2/logging', { log_verbose_level: 1 });
          expect(refused.status).toBe(403);
          expect(refused.json).toEqual(httpRefusal(r.header));
          expect(logSettings.level).toBe(level);
          const changed = await httpCall(server.url, 'POST', '/v2/logging', { log_verbose_level: 1 }, { [r.header]: r.value });
          expect(changed.status).toBe(200);
          expect(changed.json.log_verbose_level).toBe(1);
        } else {
          const r = grpcKey('logging')!;
          const settings = { settings: { log_verbose_level: { uint32_param: 1 } } };
          const refused = await grpcCall(raw, 'LogSettings', settings);
          expect(refused.code).toBe(grpc.status.UNAVAILABLE);
          expect(logSettings.level).toBe(level);
          const changed = await grpcCall(raw, 'LogSettings', settings, { [r.header]: r.value });
          expect(changed.code, changed.details).toBe(grpc.status.OK);
          expect(changed.res.settings.log_verbose_level.uint32_param).toBe(1);
        }
        expect(logSettings.level).toBe('verbose');
      } finally {
        logSettings.level = level;
      }
    });
  });
}

describe('the mapping', () => {
  it('every RPC of GRPCInferenceService has a category, and only those', () => {
    expect(Object.keys(GRPC_METHOD_CATEGORY).sort()).toEqual([...Object.keys(inferenceServiceDefinition()), ...Object.keys(healthServiceDefinition())].sort());
    for (const c of Object.values(GRPC_METHOD_CATEGORY)) expect(RESTRICTED_CATEGORIES).toContain(c);
  });

  it("parses Triton's syntax: repeatable groups, comma lists, the value is everything after the first '='", () => {
    const f = parseRestrictedFeatures(['health,metadata:k=a=b:c', 'inference:Other-Key=v'], GRPC_RESTRICTED_PROTOCOL);
    expect(f.get('health')).toEqual({ header: 'triton-grpc-protocol-k', value: 'a=b:c' });
    expect(f.get('metadata')).toEqual({ header: 'triton-grpc-protocol-k', value: 'a=b:c' });
    // gRPC metadata keys travel lowercased.
    expect(f.get('inference')).toEqual({ header: 'triton-grpc-protocol-other-key', value: 'v' });
    expect(f.get('logging')).toBeUndefined();
    expect(parseRestrictedFeatures(['logging:X-Admin=s'], HTTP_RESTRICTED_API).get('logging')).toEqual({ header: 'X-Admin', value: 's' });
    expect(() => parseRestrictedFeatures(['health:k=v', 'health:k2=v'], HTTP_RESTRICTED_API)).toThrow(RestrictedOptionError);
  });
});

// ---------------------------------------------------------------------------------------------
// The CLI: bad values end `stubhost serve` with exit 2 and a message naming the flag; a good one
// takes effect on the real endpoints.

function serve(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'serve', '--model-repository', os.tmpdir(), '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', ...args],
      { cwd: os.tmpdir(), encoding: 'utf8', timeout: 40_000, killSignal: 'SIGKILL' },
      (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }));
  });
}

describe('CLI', () => {
  it('--help lists every new flag', async () => {
    const out = await new Promise<string>((resolve) => execFile(process.execPath, [BIN, '--help'], { encoding: 'utf8' }, (_e, stdout) => resolve(stdout)));
    for (const flag of ['--http-restricted-api', '--grpc-restricted-protocol', '--grpc-address', '--metrics-address', '--http-address',
      '--grpc-use-ssl ', '--grpc-use-ssl-mutual', '--grpc-server-cert', '--grpc-server-key', '--grpc-root-cert']) {
      expect(out).toContain(flag);
    }
    for (const c of RESTRICTED_CATEGORIES) expect(out).toContain(c);
  }, 30_000);

  it('bad values of the flags exit 2 with a message naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--http-restricted-api', 'inference'], /--http-restricted-api option format is '<config name>:<setting>=<value>'\. Got inference/],
      [['--http-restricted-api', 'inference:key'], /--http-restricted-api option format is .*Got inference:key/],
      [['--http-restricted-api', ':key=value'], /--http-restricted-api option format is/],
      [['--grpc-restricted-protocol', 'inference:key='], /--grpc-restricted-protocol option format is .*Got inference:key=/],
      [['--http-restricted-api', 'infer:key=value'], /--http-restricted-api "infer:key=value": unknown restricted api 'infer'; allowed: health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging/],
      [['--grpc-restricted-protocol', 'health,,metadata:key=value'], /--grpc-restricted-protocol .*unknown restricted protocol ''/],
      [['--http-restricted-api', 'health:a=1', '--http-restricted-api', 'metadata,health:b=2'], /--http-restricted-api "metadata,health:b=2": restricted api 'health' can not be specified in multiple config groups/],
      [['--http-restricted-api', 'health:bad key=1'], /--http-restricted-api .*the key 'bad key' cannot be sent as an HTTP header name/],
      [['--grpc-restricted-protocol', 'health:key-bin=1'], /--grpc-restricted-protocol .*the key 'key-bin' cannot be sent as gRPC metadata/],
      [['--grpc-address', ''], /--grpc-address "": expected an address/],
      [['--metrics-address', ' '], /--metrics-address " ": expected an address/],
    ];
    // Three at a time: each is a Node start-up, and the machine is small.
    const results: { code: number | null; stderr: string }[] = [];
    for (let i = 0; i < cases.length; i += 3) results.push(...(await Promise.all(cases.slice(i, i + 3).map(([args]) => serve(args)))));
    results.forEach((r, i) => {
      const args = cases[i]![0].join(' ');
      expect(r.code, `${args}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args).toMatch(cases[i]![1]);
      expect(r.stderr, args).not.toMatch(/\n\s+at /); // a message, not a stack trace
    });
  }, 180_000);

  it('the flags reach the endpoints of `stubhost serve`', async () => {
    const repo = makeRepository({
      'canary/config.pbtxt': CONFIG('canary'),
      'canary/1/model.ts': ADD_SUB_TS,
    });
    const cli = await startCli(repo.root, [
      '--http-restricted-api=model-repository,logging:admin-key=s3cret',
      '--grpc-restricted-protocol', 'model-repository,logging:admin-key=s3cret',
    ], { timeoutMs: 90_000 }).catch((err) => {
      repo.cleanup();
      throw err;
    });
    const raw = new inference.GRPCInferenceService(`127.0.0.1:${cli.grpcPort}`, grpc.credentials.createInsecure());
    try {
      const refused = await httpCall(cli.http, 'POST', '/v2/logging', { log_verbose_level: 1 });
      expect(refused.status).toBe(403);
      expect(refused.json).toEqual(httpRefusal('admin-key'));
      expect((await httpCall(cli.http, 'POST', '/v2/repository/index')).status).toBe(403);
      expect((await httpCall(cli.http, 'POST', '/v2/repository/index', undefined, { 'admin-key': 's3cret' })).status).toBe(200);
      expect(await grpcCall(raw, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 1 } } })).toEqual({
        code: grpc.status.UNAVAILABLE, details: grpcRefusalText('admin-key'),
      });
      expect((await grpcCall(raw, 'RepositoryIndex', {}, { 'triton-grpc-protocol-admin-key': 's3cret' })).code).toBe(grpc.status.OK);
      // The log level did not change: GET with the key shows it.
      expect((await httpCall(cli.http, 'GET', '/v2/logging', undefined, { 'admin-key': 's3cret' })).json.log_verbose_level).toBe(0);
      const canary = await httpCall(cli.http, 'POST', '/v2/models/canary/infer', INFER_BODY);
      expect(canary.status).toBe(200);
      expect((await grpcCall(raw, 'ModelInfer', GRPC_INFER('canary'))).code).toBe(grpc.status.OK);
      // The log says what is restricted, never the value.
      expect(cli.output()).toContain("HTTP: model-repository, logging restricted to requests with header 'admin-key'");
      expect(cli.output()).toContain("gRPC: model-repository, logging restricted to requests with header 'triton-grpc-protocol-admin-key'");
      expect(cli.output()).not.toContain('s3cret');
    } finally {
      raw.close();
      const [code] = await cli.stop();
      repo.cleanup();
      expect(code).toBe(0);
    }
    expect(shmFilesOf(cli.pid)).toEqual([]);
  }, 150_000);
});

afterAll(() => {
  const left = tmp.leftovers();
  tmp.remove();
  expect(left).toEqual([]);
});
