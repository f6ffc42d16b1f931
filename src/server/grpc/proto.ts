/**
 * Loads Triton's GRPCInferenceService (and the gRPC health service) from the .proto files in
 * ./proto (found from the package root: the compiled build in dist/ reads the same files, tsc
 * does not copy them).
 * Loaded at run time (no generated code) so the .proto files stay the one source of truth.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../../core/package-root.js';

export const GRPC_PROTO_DIR = path.join(packageRoot(), 'src', 'server', 'grpc', 'proto');

/**
 * keepCase: field names stay Triton's snake_case (they are also our JSON names); longs as
 * strings: int64 shapes, ids and counters keep full precision; oneofs: InferParameter says
 * which member is set; defaults: repeated fields arrive as [] rather than undefined.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [GRPC_PROTO_DIR],
};

let cached: grpc.ServiceDefinition | undefined;

/** The `inference.GRPCInferenceService` definition (loaded once). */
export function inferenceServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync('grpc_service.proto', PROTO_LOADER_OPTIONS);
    cached = pkg['inference.GRPCInferenceService'] as grpc.ServiceDefinition;
  }
  return cached;
}

let cachedHealth: grpc.ServiceDefinition | undefined;

/** The `grpc.health.v1.Health` definition (loaded once). */
export function healthServiceDefinition(): grpc.ServiceDefinition {
  if (!cachedHealth) {
    const pkg = protoLoader.loadSync('health.proto', PROTO_LOADER_OPTIONS);
    cachedHealth = pkg['grpc.health.v1.Health'] as grpc.ServiceDefinition;
  }
  return cachedHealth;
}
