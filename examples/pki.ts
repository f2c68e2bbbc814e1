/**
 * Throwaway certificates for TLS tests and the security suite (bench/security/), made by openssl in
 * a folder of the caller's: a CA, and certificates it signs, each `<name>.pem` with its key
 * `<name>.key`.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  /** A self-signed CA `<name>.pem` / `<name>.key`. */
  ca(name: string): void;
  /**
   * A certificate of common name `cn` signed by CA `ca`; `san` (e.g. `DNS:localhost,IP:127.0.0.1`)
   * makes it a server's certificate.
   */
  cert(ca: string, name: string, cn: string, san?: string): void;
  /** The path of a file in the folder. */
  file(name: string): string;
}

export function testPki(dir: string): TestPki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  return {
    ca(name) {
      openssl('req', '-x509', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`);
    },
    cert(ca, name, cn, san) {
      openssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, san !== undefined ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', ext);
    },
    file: (name) => join(dir, name),
  };
}
