/** The gRPC front-end's public entry. */
export { GrpcServer, type GrpcServerOptions, type GrpcLogger } from './server.js';
export { validateInferInputs, validateRequestedOutputs, type InputHeader } from '../../core/validate.js';
export { tensorFromBytes } from '../../core/tensor-bytes.js';
export { decodeInferRequest, encodeInferResponse } from './codec.js';
export { GRPC_PROTO_DIR, PROTO_LOADER_OPTIONS, inferenceServiceDefinition } from './proto.js';
