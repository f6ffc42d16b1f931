/**
 * gRPC over TLS and mutual TLS with Triton's flags (--grpc-use-ssl, --grpc-use-ssl-mutual,
 * --grpc-server-cert, --grpc-server-key, --grpc-root-cert), against real servers with
 * certificates made by `openssl` for this run (a temporary folder, removed at the end): a client
 * trusting the CA is served; a plaintext client, a client not trusting the CA, and with mutual TLS
 * a client without a certificate or with one from another CA, all fail. Bad certificate flags
 * stop the start with a message naming the flag, before any port opens. HTTP and a canary model
 * keep answering, and nothing is left behind.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inference } from './helpers/grpc.js';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ADD_SUB_TS, BIN, freePort, makeRepository, startCli, shmFilesOf } from './helpers/blackbox.js';
import { usePrivateTmpdir } from './helpers/private-tmp.js';

const tmp = usePrivateTmpdir('grpc-tls-test-');
const PRIVATE_TMP = tmp.dir;
const CERTS = fs.mkdtempSync(path.join(PRIVATE_TMP, 'certs-'));
const file = (name: string): string => path.join(CERTS, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: CERTS, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a key + certificate signed by it with the given extensions. */
function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-days', '1', '-subj', `/CN=stubhost test ${name}`);
}
function makeLeaf(name: string, ca: string, extensions: string): void {
  fs.writeFileSync(file(`${name}.ext`), extensions);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`), '-CAcreateserial',
    '-out', file(`${name}.crt`), '-days', '1', '-extfile', file(`${name}.ext`));
}

makeCa('ca');
makeCa('rogue-ca');
makeLeaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
makeLeaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
makeLeaf('rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
const pem = (name: string): Buffer => fs.readFileSync(file(name));

const CONFIG = (name: string): string => `name: "${name}"
backend: "typescript"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]`;
const MODELS = { canary: { 'config.pbtxt': CONFIG('canary'), '1/model.ts': ADD_SUB_TS } };
const GRPC_INFER = {
  model_name: 'canary',
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 1, 1, 1] } },
  ],
};

type Answer = { code: number; details: string; res?: any };

/** One call on a fresh client with `credentials`; the client is closed after. */
function callWith(port: number, credentials: grpc.ChannelCredentials, method: string, req: object): Promise<Answer> {
  const client = new inference.GRPCInferenceService(`127.0.0.1:${port}`, credentials);
  return new Promise<Answer>((resolve) => {
    client[method](req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: any) => {
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', res });
    });
  }).finally(() => client.close());
}

const trusting = (): grpc.ChannelCredentials => grpc.credentials.createSsl(pem('ca.crt'));
const withClientCert = (name = 'client'): grpc.ChannelCredentials => grpc.credentials.createSsl(pem('ca.crt'), pem(`${name}.key`), pem(`${name}.crt`));
const plaintext = (): grpc.ChannelCredentials => grpc.credentials.createInsecure();

/** A call that must fail at the connection: never OK, and UNAVAILABLE (no status from the service). */
async function expectRefused(port: number, credentials: grpc.ChannelCredentials, what: string): Promise<void> {
  const a = await callWith(port, credentials, 'ServerLive', {});
  expect(a.code, `${what}: ${a.details}`).toBe(grpc.status.UNAVAILABLE);
}

async function expectServed(port: number, credentials: grpc.ChannelCredentials): Promise<void> {
  const live = await callWith(port, credentials, 'ServerLive', {});
  expect(live.code, live.details).toBe(grpc.status.OK);
  expect(live.res.live).toBe(true);
  const infer = await callWith(port, credentials, 'ModelInfer', GRPC_INFER);
  expect(infer.code, infer.details).toBe(grpc.status.OK);
  expect(Array.from(new Float32Array(new Uint8Array(infer.res.raw_output_contents[0]).buffer))).toEqual([2, 3, 4, 5]);
}

async function expectHttpCanary(server: { url: string }): Promise<void> {
  const r = await http(`${server.url}/v2/models/canary/infer`, 'POST', {
    inputs: [
      { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
      { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
    ],
  });
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([2, 3, 4, 5]);
}

async function stopAndCheck(server: RepositoryServer | undefined): Promise<void> {
  if (!server) return;
  expect(await server.stop(5000)).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}

describe('--grpc-use-ssl: TLS', () => {
  let server: RepositoryServer;
  beforeAll(async () => {
    server = await startRepositoryServer(MODELS, { grpcPort: 0, grpcTls: { serverCert: file('server.crt'), serverKey: file('server.key'), mutual: false } });
  }, 60_000);
  afterAll(() => stopAndCheck(server), 30_000);

  it('a client trusting the CA is served', async () => {
    await expectServed(server.ports.grpc!, trusting());
    // A client certificate is not asked for, and not in the way.
    await expectServed(server.ports.grpc!, withClientCert());
  });

  it('a plaintext client and a client not trusting the CA fail; TLS clients are served after them', async () => {
    await expectRefused(server.ports.grpc!, plaintext(), 'plaintext');
    await expectRefused(server.ports.grpc!, grpc.credentials.createSsl(pem('rogue-ca.crt')), 'other CA');
    await expectServed(server.ports.grpc!, trusting());
    await expectHttpCanary(server);
  });
});

describe('--grpc-use-ssl-mutual: mutual TLS', () => {
  let server: RepositoryServer;
  beforeAll(async () => {
    server = await startRepositoryServer(MODELS, {
      grpcPort: 0,
      grpcTls: { serverCert: file('server.crt'), serverKey: file('server.key'), rootCert: file('ca.crt'), mutual: true },
    });
  }, 60_000);
  afterAll(() => stopAndCheck(server), 30_000);

  it('a client with a certificate signed by --grpc-root-cert is served', async () => {
    await expectServed(server.ports.grpc!, withClientCert());
  });

  it('a client without a certificate, with one from another CA, or in plaintext fails', async () => {
    await expectRefused(server.ports.grpc!, trusting(), 'no client certificate');
    await expectRefused(server.ports.grpc!, withClientCert('rogue-client'), 'client certificate from another CA');
    await expectRefused(server.ports.grpc!, plaintext(), 'plaintext');
    await expectServed(server.ports.grpc!, withClientCert());
    await expectHttpCanary(server);
  });
});

describe('bad certificate settings stop the start, naming the flag', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a missing certificate file', { serverCert: file('nope.crt'), serverKey: file('server.key'), mutual: false }, /--grpc-server-cert .*nope\.crt cannot be read \(ENOENT\)/],
    ['a missing key file', { serverCert: file('server.crt'), serverKey: file('nope.key'), mutual: false }, /--grpc-server-key .*nope\.key cannot be read \(ENOENT\)/],
    ['a key that is not the certificate\'s', { serverCert: file('server.crt'), serverKey: file('client.key'), mutual: false }, /--grpc-server-cert .* and --grpc-server-key .* are not a usable PEM certificate and its key/],
    ['a certificate that is not PEM', { serverCert: file('server.ext'), serverKey: file('server.key'), mutual: false }, /are not a usable PEM certificate and its key/],
    ['mutual TLS without a root certificate', { serverCert: file('server.crt'), serverKey: file('server.key'), mutual: true }, /--grpc-use-ssl-mutual needs --grpc-root-cert/],
    ['a root certificate that is not PEM', { serverCert: file('server.crt'), serverKey: file('server.key'), rootCert: file('client.ext'), mutual: true }, /--grpc-root-cert .* is not a PEM certificate/],
  ];
  for (const [what, tls, message] of cases) {
    it(what, async () => {
      const port = await freePort();
      const httpPort = await freePort();
      await expect(startRepositoryServer(MODELS, { grpcPort: port, httpPort, grpcTls: tls as never })).rejects.toThrow(message);
      // Nothing was left listening, and no stub started.
      for (const p of [port, httpPort]) {
        const free = await new Promise<boolean>((resolve) => {
          const s = net.createServer();
          s.once('error', () => resolve(false));
          s.listen(p, () => s.close(() => resolve(true)));
        });
        expect(free, `port ${p}`).toBe(true);
      }
      expect(childPids()).toEqual([]);
    });
  }
});

describe('the flags of `stubhost serve`', () => {
  function serve(args: string[]): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [BIN, 'serve', '--model-repository', PRIVATE_TMP, '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', ...args],
        { cwd: PRIVATE_TMP, encoding: 'utf8', timeout: 40_000, killSignal: 'SIGKILL' },
        (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }));
    });
  }

  it('inconsistent TLS flags exit 2 with a message naming them', async () => {
    const cases: [string[], RegExp][] = [
      [['--grpc-use-ssl', 'true'], /--grpc-use-ssl needs --grpc-server-cert <file> and --grpc-server-key <file>/],
      [['--grpc-use-ssl', 'maybe'], /--grpc-use-ssl "maybe": expected true or false/],
      [['--grpc-server-cert', file('server.crt'), '--grpc-server-key', file('server.key')], /--grpc-server-cert, --grpc-server-key given without --grpc-use-ssl true/],
      [['--grpc-use-ssl-mutual', 'on', '--grpc-server-cert', file('server.crt'), '--grpc-server-key', file('server.key')], /--grpc-use-ssl-mutual needs --grpc-root-cert <file>/],
      [['--grpc-use-ssl', '1', '--grpc-server-cert', file('server.crt'), '--grpc-server-key', file('server.key'), '--grpc-root-cert', file('ca.crt')], /--grpc-root-cert is used to verify client certificates, which only --grpc-use-ssl-mutual true asks for/],
    ];
    const results: { code: number | null; stderr: string }[] = [];
    for (let i = 0; i < cases.length; i += 3) results.push(...(await Promise.all(cases.slice(i, i + 3).map(([args]) => serve(args)))));
    results.forEach((r, i) => {
      const args = cases[i]![0].join(' ');
      expect(r.code, `${args}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args).toMatch(cases[i]![1]);
    });
  }, 180_000);

  it('--grpc-use-ssl-mutual with the certificate flags serves mutual TLS', async () => {
    const repo = makeRepository({ 'canary/config.pbtxt': CONFIG('canary'), 'canary/1/model.ts': ADD_SUB_TS });
    const cli = await startCli(repo.root, [
      '--grpc-use-ssl-mutual=true',
      '--grpc-server-cert', file('server.crt'), '--grpc-server-key', file('server.key'), '--grpc-root-cert', file('ca.crt'),
    ], { timeoutMs: 90_000 }).catch((err) => {
      repo.cleanup();
      throw err;
    });
    try {
      await expectServed(cli.grpcPort, withClientCert());
      await expectRefused(cli.grpcPort, trusting(), 'no client certificate');
      await expectRefused(cli.grpcPort, plaintext(), 'plaintext');
      await expectHttpCanary({ url: cli.http });
      expect(cli.output()).toMatch(/gRPC service listening on 0\.0\.0\.0:\d+ \(mutual TLS\)/);
    } finally {
      const [code] = await cli.stop();
      repo.cleanup();
      expect(code).toBe(0);
    }
    expect(shmFilesOf(cli.pid)).toEqual([]);
  }, 150_000);
});

afterAll(() => {
  fs.rmSync(CERTS, { recursive: true, force: true });
  const left = tmp.leftovers();
  tmp.remove();
  expect(left).toEqual([]);
  expect(fs.existsSync(CERTS)).toBe(false);
});
