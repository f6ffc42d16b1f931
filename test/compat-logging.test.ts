/**
 * Triton's logging settings over HTTP (/v2/logging) and gRPC (LogSettings), against the real CLI
 * writing a real --log-file: info, warning and error on and off independently, the verbose level
 * kept as given (verbose lines carry a level), Triton's two line formats (and stubhost's json),
 * Triton's refusals and their codes and words (server src/http_server.cc HandleLogging,
 * src/grpc/grpc_server.cc RegisterLogging), and an unwritable --log-file stopping the start.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, makeRepository, postJson, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { IDENTITY_TS, identityConfig } from './helpers/compat.js';
import { waitFor } from './helpers/server.js';

const TALKER_TS = `
import { InferenceRequest, InferenceResponse, Tensor, logger } from 'stubhost';
export default class Talker {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const m = String(r.parameters.marker);
      logger.info(m + '-info'); logger.warn(m + '-warn'); logger.error(m + '-error'); logger.verbose(m + '-verbose');
      return new InferenceResponse({ outputs: [new Tensor('OUT', (r.input('IN')!.data as Float32Array).slice(), r.input('IN')!.shape)] });
    });
  }
}`;

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ([IWE]) \d+ stubhost\] /;
const DEFAULT = /^([IWE])\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ stubhost\] /;

let dir: string;
let logFile: string;
let repo: ReturnType<typeof makeRepository>;
let server: CliServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-logtest-'));
  logFile = path.join(dir, 'server.log');
  repo = makeRepository({
    'canary/config.pbtxt': identityConfig('canary'), 'canary/1/model.ts': IDENTITY_TS,
    'talker/config.pbtxt': identityConfig('talker'), 'talker/1/model.ts': TALKER_TS,
  });
  // The helper's --log-format json comes first; the later flag wins.
  server = await startCli(repo.root, ['--log-file', logFile, '--log-format', 'ISO8601', '--log-verbose', '1', '--model-control-mode', 'explicit', '--load-model', '*'], { timeoutMs: 60_000 });
  grpc = grpcClient(server.grpcPort);
}, 90_000);

afterAll(async () => {
  grpc?.close();
  if (server) {
    const [code] = await server.stop();
    expect(code).toBe(0);
    expect(shmFilesOf(server.pid)).toEqual([]);
  }
  repo?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

const logging = (body?: unknown) => (body === undefined ? fetch(`${server.http}/v2/logging`).then(async (r) => ({ status: r.status, json: await r.json() })) : postJson(`${server.http}/v2/logging`, body));

/** Sends a request whose model logs `<marker>-info|warn|error|verbose`, then the log file's lines with that marker. */
async function linesOf(marker: string): Promise<string[]> {
  const r = await postJson(`${server.http}/v2/models/talker/infer`, { parameters: { marker }, inputs: [{ name: 'IN', shape: [1], datatype: 'FP32', data: [1] }] });
  expect(r.status, r.text).toBe(200);
  // The end marker (an error line, always on here) tells the model's lines have reached the file.
  await waitFor(() => fs.readFileSync(logFile, 'utf8').includes(`${marker}-error`), 10_000);
  return fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes(`${marker}-`));
}
const kinds = (lines: string[]) => lines.map((l) => /-(info|warn|error|verbose)\b/.exec(l)![1]).sort();

describe('log settings', () => {
  it('reports the settings the CLI gave, over HTTP and gRPC', async () => {
    const expected = { log_file: logFile, log_info: true, log_warning: true, log_error: true, log_verbose_level: 1, log_format: 'ISO8601' };
    expect(await logging()).toEqual({ status: 200, json: expected });
    const g = await grpc.rpc('LogSettings', {});
    expect(g.settings).toMatchObject({
      log_file: { string_param: logFile }, log_info: { bool_param: true }, log_warning: { bool_param: true },
      log_error: { bool_param: true }, log_verbose_level: { uint32_param: 1 }, log_format: { string_param: 'ISO8601' },
    });
  });

  it('writes to the log file in ISO8601 with Triton\'s level letters; stderr stays quiet', async () => {
    const lines = await linesOf('m1');
    expect(kinds(lines)).toEqual(['error', 'info', 'verbose', 'warn']);
    for (const l of lines) expect(l).toMatch(ISO);
    expect(lines.find((l) => l.includes('m1-warn'))).toMatch(/Z W /);
    expect(lines.find((l) => l.includes('m1-verbose'))).toMatch(/Z I /); // verbose lines are info lines
    expect(server.output()).not.toContain('m1-info');
  });

  it('turns info, warning and error on and off independently; verbose follows its level only', async () => {
    expect((await logging({ log_info: false })).json.log_info).toBe(false);
    expect(kinds(await linesOf('m2'))).toEqual(['error', 'verbose', 'warn']);
    await grpc.rpc('LogSettings', { settings: { log_info: { bool_param: true }, log_warning: { bool_param: false }, log_verbose_level: { uint32_param: 0 } } });
    expect(kinds(await linesOf('m3'))).toEqual(['error', 'info']);
    expect((await logging({ log_warning: true, log_verbose_level: 1 })).status).toBe(200);
  });

  it('keeps the verbose level as given; a level-2 line shows only from level 2', async () => {
    const load = () => postJson(`${server.http}/v2/repository/models/canary/load`, {});
    const before = fs.readFileSync(logFile, 'utf8').length;
    expect((await load()).status).toBe(200);
    let text = fs.readFileSync(logFile, 'utf8').slice(before);
    expect(text).toContain("loading model 'canary'"); // level 1
    expect(text).not.toContain("model 'canary' config:"); // level 2
    const set = await logging({ log_verbose_level: 3 });
    expect(set.json.log_verbose_level).toBe(3);
    expect((await grpc.rpc('LogSettings', {})).settings.log_verbose_level).toMatchObject({ uint32_param: 3 });
    const mid = fs.readFileSync(logFile, 'utf8').length;
    expect((await load()).status).toBe(200);
    text = fs.readFileSync(logFile, 'utf8').slice(mid);
    expect(text).toContain("model 'canary' config: {");
    await grpc.rpc('LogSettings', { settings: { log_verbose_level: { uint32_param: 1 } } });
  });

  it("switches between Triton's default and ISO8601 formats and stubhost's json", async () => {
    expect((await logging({ log_format: 'default' })).json.log_format).toBe('default');
    const lines = await linesOf('m4');
    for (const l of lines) expect(l).toMatch(DEFAULT);
    expect(lines.find((l) => l.includes('m4-error'))).toMatch(/^E/);
    await grpc.rpc('LogSettings', { settings: { log_format: { string_param: 'json' } } });
    const json = (await linesOf('m5')).map((l) => JSON.parse(l));
    expect(json.find((j) => j.msg.includes('m5-warn'))).toMatchObject({ level: 'warn', model: 'talker' });
    expect((await logging({ log_format: 'ISO8601' })).json.log_format).toBe('ISO8601');
  });

  it("HTTP refuses with Triton's codes and words; null leaves a setting as it is; an update stops at the first bad setting", async () => {
    const file = await logging({ log_file: path.join(dir, 'other.log') });
    expect(file.status).toBe(501);
    expect(file.json.error).toBe('log file location can not be updated through network protocol');
    expect(fs.existsSync(path.join(dir, 'other.log'))).toBe(false);
    expect((await logging({ log_file: null, log_info: null })).json).toMatchObject({ log_file: logFile, log_info: true });
    const bool = await logging({ log_info: 'yes' });
    expect(bool.status).toBe(500);
    expect(bool.json.error).toBe('attempt to access JSON non-boolean as boolean');
    const level = await logging({ log_verbose_level: -1 });
    expect(level.status).toBe(500);
    expect(level.json.error).toBe('attempt to access JSON non-unsigned-integer as unsigned-integer');
    const fmt = await logging({ log_error: false, log_format: 'fancy' });
    expect(fmt.status).toBe(503);
    expect(fmt.json.error).toBe('invalid argument for --log_format, got: fancy');
    expect((await logging()).json).toMatchObject({ log_error: false, log_format: 'ISO8601' }); // applied up to the bad one, as Triton
    expect((await logging({ log_error: true })).json.log_error).toBe(true);
  });

  it("gRPC refuses with Triton's codes and words", async () => {
    const cases: [object, number, string][] = [
      [{ log_file: { string_param: '/tmp/x.log' } }, 12, 'log file location can not be updated through network protocol'],
      [{ log_info: { string_param: 'yes' } }, 3, "expect boolean for 'log_info'"],
      [{ log_verbose_level: { bool_param: true } }, 3, "expect int32 for 'log_verbose_level'"],
      [{ log_format: { uint32_param: 1 } }, 3, "expect string for 'log_format'"],
      [{ log_format: { string_param: 'fancy' } }, 3, 'invalid argument for log_format, got: fancy'],
    ];
    for (const [settings, code, details] of cases) {
      const e = await grpc.rpcError('LogSettings', { settings });
      expect([e.code, e.details]).toEqual([code, details]);
    }
    const r = await postJson(`${server.http}/v2/models/canary/infer`, { inputs: [{ name: 'IN', shape: [1], datatype: 'FP32', data: [5] }] });
    expect(r.json.outputs[0].data).toEqual([5]);
  });
});

describe('--log-file', () => {
  it("an unwritable path stops the start with Triton's words and the path", () => {
    const bad = path.join(dir, 'missing', 'x.log');
    const r = spawnSync(process.execPath, [BIN, 'serve', '--model-repository', dir, '--log-file', bad, '--http-port', '0', '--allow-grpc', 'false', '--allow-metrics', 'false'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`stubhost: --log-file: Failed to open log file: No such file or directory (${bad})`);
  });
});
