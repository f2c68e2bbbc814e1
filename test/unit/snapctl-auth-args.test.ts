/**
 * snapctl's connection options (--token, --ca, --cert/--key, --tls-server-name, --insecure and their variables) and
 * the audit command's arguments: what parses, and the usage errors.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../coordinator/snapctl/args.js';

function parsed(argv: string[], env: Record<string, string> = {}) {
  const r = parseCommandLine(argv, env);
  if (!r.ok) throw new Error(r.error);
  return r;
}

function usage(argv: string[], env: Record<string, string> = {}): string {
  const r = parseCommandLine(argv, env);
  if (r.ok) throw new Error(`expected a usage error for ${argv.join(' ')}`);
  return r.error;
}

describe('snapctl connection options', () => {
  it('flags win over the variables; nothing given is plaintext without a token', () => {
    expect(parsed(['plans', 'list']).connection).toEqual({ insecure: false });
    expect(parsed(['plans', 'list'], { SNAPCTL_TOKEN: 'from-env', SNAPCTL_CA: 'ca.pem' }).connection).toEqual({ token: 'from-env', caFile: 'ca.pem', insecure: false });
    expect(parsed(['plans', 'list', '--token', 'flag'], { SNAPCTL_TOKEN: 'from-env' }).connection.token).toBe('flag');
    expect(parsed(['--cert', 'c.pem', '--key', 'k.pem', 'agents'], { SNAPCTL_CA: 'ca.pem' }).connection).toEqual({ caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem', insecure: false });
    expect(parsed(['plans', 'list', '--tls-server-name', 'coord.example'], { SNAPCTL_CA: 'ca.pem', SNAPCTL_TLS_SERVER_NAME: 'other' }).connection).toEqual({ caFile: 'ca.pem', tlsServerName: 'coord.example', insecure: false });
    expect(parsed(['plans', 'list'], { SNAPCTL_TLS_SERVER_NAME: 'localhost' }).connection.tlsServerName).toBe('localhost');
  });

  it('refuses half a client certificate, --insecure with TLS, and an empty or spaced token', () => {
    expect(usage(['plans', 'list', '--cert', 'c.pem'])).toBe('--cert and --key go together');
    expect(usage(['plans', 'list'], { SNAPCTL_KEY: 'k.pem' })).toBe('--cert and --key go together');
    expect(usage(['plans', 'list', '--insecure', '--ca', 'ca.pem'])).toContain('--insecure is plaintext');
    expect(usage(['plans', 'list', '--insecure', '--tls-server-name', 'x'])).toContain('--insecure is plaintext');
    expect(usage(['plans', 'list'], { SNAPCTL_TOKEN: '' })).toContain('must not be empty');
    expect(usage(['plans', 'list', '--token', 'a b'])).toContain('white space');
  });
});

describe('snapctl audit', () => {
  it('takes --tenant, --since as a duration and --nats, NATS_URL or the default', () => {
    expect(parsed(['audit']).command).toEqual({ kind: 'audit', natsUrl: 'nats://127.0.0.1:4222' });
    expect(parsed(['audit', '--tenant', 'acme', '--since', '2h'], { NATS_URL: 'nats://n:4222' }).command).toEqual({ kind: 'audit', natsUrl: 'nats://n:4222', tenant: 'acme', sinceMs: 7_200_000 });
    expect(parsed(['audit', '--tenant', '*', '--since', '90s', '--nats', 'nats://x:1']).command).toEqual({ kind: 'audit', natsUrl: 'nats://x:1', tenant: '*', sinceMs: 90_000 });
    expect(usage(['audit', '--since', '2 hours'])).toContain('--since must be a duration');
    expect(usage(['audit', '--tenant', 'a.b'])).toContain('--tenant');
  });
});
