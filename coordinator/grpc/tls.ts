/**
 * The gRPC server's TLS from the configuration's files: TLS, or mTLS with a client CA (every client
 * then presents a certificate that CA signed, or the handshake fails). Errors name the file and
 * what is wrong with it, never its content.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { fail, ok, type Result } from '../errors.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile?: string | undefined;
}

function readPem(path: string, what: string): Result<Buffer> {
  try {
    return ok(readFileSync(path));
  } catch (error) {
    return fail('invalid-argument', `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
}

export function serverCredentialsFrom(tls: TlsFiles): Result<ServerCredentials> {
  const cert = readPem(tls.certFile, 'TLS certificate');
  if (!cert.ok) return cert;
  const key = readPem(tls.keyFile, 'TLS key');
  if (!key.ok) return key;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert.value);
  } catch {
    return fail('invalid-argument', `the TLS certificate ${tls.certFile} is not a PEM certificate`);
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(key.value))) return fail('invalid-argument', `the TLS key ${tls.keyFile} is not the key of the certificate ${tls.certFile}`);
  } catch {
    return fail('invalid-argument', `the TLS key ${tls.keyFile} is not a PEM private key`);
  }
  let ca: Buffer | null = null;
  if (tls.clientCaFile !== undefined) {
    const read = readPem(tls.clientCaFile, 'client CA');
    if (!read.ok) return read;
    try {
      new X509Certificate(read.value);
    } catch {
      return fail('invalid-argument', `the client CA ${tls.clientCaFile} is not a PEM certificate`);
    }
    ca = read.value;
  }
  return ok(ServerCredentials.createSsl(ca, [{ private_key: key.value, cert_chain: cert.value }], ca !== null));
}

/** A client's TLS credentials from PEM text: the CA it trusts, and its certificate and key for mTLS. */
export function clientCredentialsFrom(tls: { readonly ca?: string; readonly key?: string; readonly cert?: string }): ChannelCredentials {
  const pem = (text: string | undefined): Buffer | null => (text === undefined ? null : Buffer.from(text));
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}
