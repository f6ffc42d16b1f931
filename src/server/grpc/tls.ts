/**
 * gRPC server credentials from Triton's flags (--grpc-use-ssl, --grpc-use-ssl-mutual,
 * --grpc-server-cert, --grpc-server-key, --grpc-root-cert), built as Triton's
 * src/grpc/grpc_server.cc Server::Server: the server's key and certificate, and with mutual TLS
 * the root certificate that client certificates must chain to (a client without one is refused,
 * GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { StubhostError } from '../../errors.js';

/** File paths, as the flags give them. */
export interface GrpcTlsFiles {
  serverCert: string;
  serverKey: string;
  /** Required with `mutual`. */
  rootCert?: string;
  /** Require and verify a client certificate. */
  mutual: boolean;
}

/** The PEM contents, read and checked. */
export interface GrpcTls {
  cert: Buffer;
  key: Buffer;
  rootCerts?: Buffer;
  mutual: boolean;
}

function readPem(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a readable PEM file`);
  }
}

/**
 * Reads the files and checks that they are PEM and that the key belongs to the certificate,
 * so a mistake fails the start naming the flag instead of every client's handshake.
 */
export function loadGrpcTls(files: GrpcTlsFiles): GrpcTls {
  if (files.mutual && files.rootCert === undefined) {
    throw new StubhostError('STUBHOST_INVALID_ARG', '--grpc-use-ssl-mutual needs --grpc-root-cert: the CA that client certificates must be signed by');
  }
  const cert = readPem(files.serverCert, '--grpc-server-cert');
  const key = readPem(files.serverKey, '--grpc-server-key');
  const rootCerts = files.rootCert === undefined ? undefined : readPem(files.rootCert, '--grpc-root-cert');
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `--grpc-server-cert ${files.serverCert} and --grpc-server-key ${files.serverKey} are not a usable PEM certificate and its key (${(err as Error).message})`);
  }
  if (rootCerts !== undefined) {
    try {
      // createSecureContext skips text that holds no certificate; X509Certificate does not.
      new X509Certificate(rootCerts);
    } catch (err) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `--grpc-root-cert ${files.rootCert} is not a PEM certificate (${(err as Error).message})`);
    }
  }
  return { cert, key, rootCerts, mutual: files.mutual };
}

/** Insecure credentials without `tls`; else SSL, verifying client certificates if `mutual`. */
export function grpcServerCredentials(config: GrpcTls | undefined): grpc.ServerCredentials {
  if (config === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(config.rootCerts ?? null, [{ private_key: config.key, cert_chain: config.cert }], config.mutual);
}
