/**
 * NATS JWTs (the claims format nats-server 2.9 reads in operator mode) and `.creds` files, written
 * with the nkeys that come with the `nats` client. A JWT is `header.claims.signature`, each part
 * base64url without padding; the signature is the issuer's ed25519 nkey signature of
 * `header.claims`. Only what this project issues is modelled: an operator, accounts with
 * exports, imports, JetStream limits and revocations, and users with subject permissions.
 *
 * Why not the `nats-jwt` package: it is a 0.0.x release, and the little it would do here (encode
 * and sign four claim types) is this file.
 */
import { createHash } from 'node:crypto';
import { nkeys } from 'nats';

export type KeyPair = ReturnType<typeof nkeys.createUser>;

const HEADER = { typ: 'JWT', alg: 'ed25519-nkey' } as const;

/** -1 is "no limit" in every NATS limit. */
const NO_LIMIT = -1;

export interface Permission {
  readonly allow: readonly string[];
}

export interface UserPermissions {
  readonly pub: Permission;
  readonly sub: Permission;
}

export interface StreamExport {
  readonly name: string;
  readonly subject: string;
}

export interface StreamImport {
  readonly name: string;
  readonly subject: string;
  /** The exporting account's public key. */
  readonly account: string;
}

export interface AccountSpec {
  readonly name: string;
  /** JetStream on (no limit) or off (the system account must have it off). */
  readonly jetstream: boolean;
  readonly exports: readonly StreamExport[];
  readonly imports: readonly StreamImport[];
  /** User public key -> unix seconds: every JWT of that user issued at or before is refused. */
  readonly revocations: Readonly<Record<string, number>>;
}

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString('base64url');
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding: the form of a JWT's id in NATS's own tools. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function sign(issuer: KeyPair, claims: Record<string, unknown>): string {
  // The id is a digest of the claims without it, as NATS's Go library computes it.
  const jti = base32(createHash('sha512-256').update(JSON.stringify(claims)).digest());
  const head = b64url(JSON.stringify(HEADER));
  const body = b64url(JSON.stringify({ jti, ...claims }));
  const signature = issuer.sign(new TextEncoder().encode(`${head}.${body}`));
  return `${head}.${body}.${b64url(signature)}`;
}

function common(issuer: KeyPair, subject: string, name: string, issuedAtSec: number): Record<string, unknown> {
  return { iat: issuedAtSec, iss: issuer.getPublicKey(), name, sub: subject };
}

export function operatorJwt(operator: KeyPair, name: string, systemAccount: string, issuedAtSec: number): string {
  return sign(operator, { ...common(operator, operator.getPublicKey(), name, issuedAtSec), nats: { system_account: systemAccount, type: 'operator', version: 2 } });
}

export function accountJwt(operator: KeyPair, account: string, spec: AccountSpec, issuedAtSec: number): string {
  const js = spec.jetstream ? NO_LIMIT : 0;
  const nats: Record<string, unknown> = {
    limits: {
      subs: NO_LIMIT,
      data: NO_LIMIT,
      payload: NO_LIMIT,
      imports: NO_LIMIT,
      exports: NO_LIMIT,
      wildcards: true,
      conn: NO_LIMIT,
      leaf: NO_LIMIT,
      mem_storage: js,
      disk_storage: js,
      streams: js,
      consumer: js,
    },
    default_permissions: { pub: {}, sub: {} },
    type: 'account',
    version: 2,
  };
  if (spec.exports.length > 0) nats['exports'] = spec.exports.map((e) => ({ name: e.name, subject: e.subject, type: 'stream' }));
  if (spec.imports.length > 0) nats['imports'] = spec.imports.map((i) => ({ name: i.name, subject: i.subject, account: i.account, type: 'stream' }));
  if (Object.keys(spec.revocations).length > 0) nats['revocations'] = spec.revocations;
  return sign(operator, { ...common(operator, account, spec.name, issuedAtSec), nats });
}

/** A user of `account`, signed by the account's key; no permissions: everything in the account. */
export function userJwt(account: KeyPair, user: string, name: string, permissions: UserPermissions | undefined, issuedAtSec: number): string {
  const nats: Record<string, unknown> = { subs: NO_LIMIT, data: NO_LIMIT, payload: NO_LIMIT, type: 'user', version: 2 };
  if (permissions !== undefined) {
    nats['pub'] = { allow: [...permissions.pub.allow] };
    nats['sub'] = { allow: [...permissions.sub.allow] };
  }
  return sign(account, { ...common(account, user, name, issuedAtSec), nats });
}

/** The claims of a JWT, unverified: only for JWTs this project wrote and keeps in its key directory. */
export function claimsOf(jwt: string): Record<string, unknown> & { nats: Record<string, unknown> } {
  const body = jwt.split('.')[1];
  if (body === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown> & { nats: Record<string, unknown> };
}

/** The `.creds` file of a user: its JWT and its seed, in the layout every NATS client reads. */
export function credsFile(jwt: string, seed: Uint8Array): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    new TextDecoder().decode(seed),
    '------END USER NKEY SEED------',
    '',
    '*************************************************************',
    '',
  ].join('\n');
}

/** The user JWT of a `.creds` file, or undefined when the text is not one. */
export function jwtOfCreds(text: string): string | undefined {
  const m = /-----BEGIN NATS USER JWT-----\s*\n\s*([A-Za-z0-9_.-]+)\s*\n/.exec(text);
  return m?.[1];
}

export { nkeys };
