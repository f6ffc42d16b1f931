/** The gRPC front-end's public entry. */
export { GrpcServer, type GrpcServerOptions, type GrpcLogger } from './server.js';
export { validateInferInputs, validateRequestedOutputs, tensorFromBytes, type InputHeader } from '../../core/validate.js';
export { decodeInferRequest, encodeInferResponse } from './codec.js';
export { GRPC_PROTO_DIR, PROTO_LOADER_OPTIONS, inferenceServiceDefinition } from './proto.js';
