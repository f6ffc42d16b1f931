/**
 * A gRPC client for tests, made from the server's own grpc_service.proto (as Triton's clients are
 * made from Triton's): unary calls as promises, error capture, and streams collected to the end.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GRPC_PROTO_DIR } from '../../src/server/grpc/proto.js';

const packageDefinition = protoLoader.loadSync('grpc_service.proto', {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [GRPC_PROTO_DIR],
});
/** The `inference` package (GRPCInferenceService constructor), for clients with their own options. */
export const inference = (grpc.loadPackageDefinition(packageDefinition) as any).inference;

/** The `grpc.health.v1` package (Health constructor), as grpc-health-probe's client is made. */
export const health = (grpc.loadPackageDefinition(protoLoader.loadSync('health.proto', {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [GRPC_PROTO_DIR],
})) as any).grpc.health.v1;

export interface TestGrpcClient {
  /** The raw grpc-js client (for streams and options). */
  raw: any;
  rpc<T = any>(method: string, req: object, options?: grpc.CallOptions): Promise<T>;
  /** The error a call fails with; throws if it succeeds. */
  rpcError(method: string, req: object): Promise<grpc.ServiceError>;
  /** ModelStreamInfer: writes `requests`, half-closes, collects every response until the end. */
  streamAll(requests: object[]): Promise<any[]>;
  close(): void;
}

export function grpcClient(port: number): TestGrpcClient {
  const raw = new inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const rpc = <T = any>(method: string, req: object, options: grpc.CallOptions = {}): Promise<T> =>
    new Promise((resolve, reject) => {
      raw[method](req, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
    });
  return {
    raw,
    rpc,
    async rpcError(method, req) {
      try {
        await rpc(method, req);
      } catch (err) {
        return err as grpc.ServiceError;
      }
      throw new Error(`${method} unexpectedly succeeded`);
    },
    streamAll(requests) {
      return new Promise((resolve, reject) => {
        const got: any[] = [];
        const call = raw.ModelStreamInfer();
        call.on('data', (m: any) => got.push(m));
        call.on('error', reject);
        call.on('end', () => resolve(got));
        for (const r of requests) call.write(r);
        call.end();
      });
    },
    close: () => raw.close(),
  };
}
