/**
 * The demo's secured set-up (the default of `npm start`; `--insecure` skips it): a throwaway CA and
 * server certificate made with openssl for the gRPC API's TLS, a tokens file with one identity per
 * role the demo uses, and the security checks it prints. Everything lives in the demo's temporary
 * directory and goes with it. NATS in operator mode comes from examples/secured-nats.ts.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientCredentialsFrom } from '../../coordinator/grpc/tls.js';

export interface ApiSecurity {
  /** The coordinator's flags: --tls-cert, --tls-key, --auth-tokens. */
  readonly coordinatorArgs: readonly string[];
  /** The CA that signed the server's certificate: what a client trusts (SNAPCTL_CA). */
  readonly caFile: string;
  readonly credentials: ReturnType<typeof clientCredentialsFrom>;
  /** Every tenant, admin: the demo's own client (the protection service's role). */
  readonly adminToken: string;
  /** Tenant `other`, viewer: shows that a tenant sees its own plans only. */
  readonly otherViewerToken: string;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and a certificate for localhost and 127.0.0.1 that it signs; keys never leave `dir`. */
export function makeApiSecurity(dir: string, otherTenant: string): ApiSecurity {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=snapshot-demo-ca');
  openssl(dir, 'req', ...ec, '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(dir, 'x509', '-req', '-in', 'tls.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.pem', '-days', '1', '-extfile', 'san.ext');
  const adminToken = randomBytes(24).toString('base64url');
  const otherViewerToken = randomBytes(24).toString('base64url');
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(
    tokensFile,
    JSON.stringify([
      { token: adminToken, identity: 'demo-admin', tenant: '*', role: 'admin' },
      { token: otherViewerToken, identity: `${otherTenant}-viewer`, tenant: otherTenant, role: 'viewer' },
    ]),
    { mode: 0o600 },
  );
  const caFile = join(dir, 'ca.pem');
  return {
    coordinatorArgs: ['--tls-cert', join(dir, 'tls.pem'), '--tls-key', join(dir, 'tls.key'), '--auth-tokens', tokensFile],
    caFile,
    credentials: clientCredentialsFrom({ ca: readFileSync(caFile, 'utf8') }),
    adminToken,
    otherViewerToken,
  };
}
