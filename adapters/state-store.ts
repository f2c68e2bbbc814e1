/**
 * App state and channel state as objects in a JetStream Object Store bucket per tenant,
 * `snap-state-<tenant>`, shared by the agent (which uploads) and the coordinator (which verifies,
 * restores and garbage-collects). One bucket per tenant so NATS permissions can give each tenant's
 * agents their own bucket and nothing else.
 *
 * Reads trust nothing: the size and SHA-256 digest the agent acked (the `ObjectRef` in the
 * checkpoint record) are checked against the object's metadata and against the bytes actually
 * read, which are hashed here rather than relying on the client library's own check, so a
 * mismatch names the expected and the actual digest.
 *
 * Errors are this module's own typed values (not coordinator/errors.ts): the agent may import only
 * src/, nats and pino, and this file is shared with it.
 */
import { hash } from 'node:crypto';
import { consumerOpts, type JetStreamClient, type NatsConnection, type ObjectInfo, type ObjectStore } from 'nats';
import type { CheckpointId } from '../src/ids.js';
import { isName, type ObjectRef } from '../src/wire/index.js';
import type { Result } from '../src/result.js';
import { notReadyRetryDefault, retryNotReady } from './not-ready-retry.js';

export type StateErrorKind =
  /** A tenant or object name that cannot be stored (caller's bug or a forged ref). */
  | 'invalid-name'
  /** A ref whose digest is not `SHA-256=<base64, base64url or hex>`. */
  | 'invalid-ref'
  | 'not-found'
  /** The object's size differs from the ref's. */
  | 'size-mismatch'
  /** The object's digest differs from the ref's: replaced, or its data corrupted. */
  | 'digest-mismatch'
  /** Larger than `objectBytesMax`. */
  | 'too-large'
  /** NATS did not answer in time or the connection is down: worth a retry. */
  | 'unavailable'
  /** Any other store failure. */
  | 'store-failed';

export interface StateError {
  readonly kind: StateErrorKind;
  readonly message: string;
  readonly expected?: { readonly digest: string; readonly sizeBytes: number };
  readonly actual?: { readonly digest?: string; readonly sizeBytes?: number };
}

export type StateResult<T> = Result<T, StateError>;

export interface StateObjects {
  /** Stores (or replaces) an object; the ref carries the digest as NATS computed it. */
  put(tenant: string, name: string, bytes: Uint8Array): Promise<StateResult<ObjectRef>>;
  /** The object's bytes, only if their size and digest are exactly the ref's. */
  get(tenant: string, ref: ObjectRef): Promise<StateResult<Uint8Array>>;
  /** The ref of the object as stored now; `not-found` when absent. */
  info(tenant: string, name: string): Promise<StateResult<ObjectRef>>;
  /** The names of the objects whose name starts with `prefix`, sorted. */
  list(tenant: string, prefix: string): Promise<StateResult<string[]>>;
  /** Deletes these objects; a name that does not exist is not an error. */
  delete(tenant: string, names: readonly string[]): Promise<StateResult<void>>;
}

export const STATE_BUCKET_PREFIX = 'snap-state-';
const DIGEST_ALGORITHM = 'SHA-256=';
/** Longest object name (as src/wire accepts in an ObjectRef). */
const OBJECT_NAME_CHARS_MAX = 256;
const OBJECT_NAME = /^[^\u0000-\u001f\u007f]+$/;

export function stateBucketName(tenant: string): string {
  return `${STATE_BUCKET_PREFIX}${tenant}`;
}

/** SHA-256 of the bytes as NATS writes it: `SHA-256=` and padded base64url. */
export function sha256Digest(bytes: Uint8Array): string {
  // crypto.hash: the one-shot form, several times cheaper than createHash for the small states the
  // coordinator digests once per inline ack.
  const b64 = hash('sha256', bytes, 'base64url');
  return `${DIGEST_ALGORITHM}${b64}${'='.repeat((4 - (b64.length % 4)) % 4)}`;
}

/**
 * The 32 digest bytes of `SHA-256=<value>`, value in hex or (padded or not) base64 or base64url:
 * the forms NATS clients of different languages have written. Compared as bytes, never as text.
 */
export function parseSha256Digest(digest: string): Buffer | undefined {
  if (!digest.startsWith(DIGEST_ALGORITHM)) return undefined;
  const value = digest.slice(DIGEST_ALGORITHM.length);
  let bytes: Buffer;
  if (/^[0-9a-fA-F]{64}$/.test(value)) bytes = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) bytes = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  else return undefined;
  return bytes.length === 32 ? bytes : undefined;
}

export interface StateObjectsOptions {
  /** Copies of each tenant bucket in a NATS cluster. */
  readonly replicas: number;
  /** Largest object accepted by put and read by get, in bytes. */
  readonly objectBytesMax: number;
  /** Upper bound of a tenant bucket's size in bytes; 0: no limit. */
  readonly bucketBytesMax: number;
  /** How long one JetStream API call may take. */
  readonly requestTimeoutMs: number;
  /** How long reading one object's data may take before it fails as unavailable. */
  readonly readTimeoutMs: number;
  /**
   * How long each chunk of a put may wait for JetStream's acknowledgement. A put sends all its
   * chunks at once, so the last chunk of a large state (or of several apps storing together) waits
   * behind every earlier one: requestTimeoutMs failed 128 MiB states as "NATS unavailable". The
   * checkpoint's own timeout still bounds the whole upload.
   */
  readonly putTimeoutMs: number;
}

export const stateObjectsOptionsDefault: StateObjectsOptions = {
  replicas: 1,
  objectBytesMax: 256 * 1024 * 1024,
  bucketBytesMax: 0,
  requestTimeoutMs: 5_000,
  readTimeoutMs: 60_000,
  putTimeoutMs: 120_000,
};

export function validateStateObjectsOptions(o: StateObjectsOptions): string | undefined {
  const rules: [string, number, number][] = [
    ['replicas', o.replicas, 1],
    ['objectBytesMax', o.objectBytesMax, 1],
    ['bucketBytesMax', o.bucketBytesMax, 0],
    ['requestTimeoutMs', o.requestTimeoutMs, 1],
    ['readTimeoutMs', o.readTimeoutMs, 1],
    ['putTimeoutMs', o.putTimeoutMs, 1],
  ];
  for (const [name, value, min] of rules) {
    if (!Number.isSafeInteger(value) || value < min) return `${name} must be an integer >= ${min}, got ${value}`;
  }
  if (o.replicas > 5) return `replicas must be at most 5, got ${o.replicas}`;
  return undefined;
}

function fail<T>(kind: StateErrorKind, message: string, extra: Partial<Pick<StateError, 'expected' | 'actual'>> = {}): StateResult<T> {
  return { ok: false, error: { kind, message, ...extra } };
}

const UNAVAILABLE_CODES: ReadonlySet<string> = new Set(['TIMEOUT', '503', '408', 'CONNECTION_CLOSED', 'CONNECTION_DRAINING', 'DISCONNECT']);

function storeFailure<T>(error: unknown, what: string): StateResult<T> {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  const text = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return fail('unavailable', `NATS unavailable while ${what}: ${text}`);
  return fail('store-failed', `object store error while ${what}: ${text}`);
}

function checkTenantAndName(tenant: string, name: string): StateResult<void> {
  if (!isName(tenant)) return fail('invalid-name', `tenant ${JSON.stringify(tenant.slice(0, 80))} is not a name ([A-Za-z0-9_-]{1,64})`);
  if (name.length === 0 || name.length > OBJECT_NAME_CHARS_MAX || !OBJECT_NAME.test(name)) {
    return fail('invalid-name', `object name ${JSON.stringify(name.slice(0, 80))} must be 1 to ${OBJECT_NAME_CHARS_MAX} characters without control characters`);
  }
  return { ok: true, value: undefined };
}

function refOf(info: ObjectInfo): ObjectRef {
  return { name: info.name, digest: info.digest, sizeBytes: info.size };
}

/**
 * The connection that reaches a tenant's bucket: one connection for every tenant (an agent, or a
 * coordinator on a NATS without accounts), or one per tenant's NATS account (a coordinator with
 * tenant credentials, docs/security.md).
 */
export type TenantConnection = NatsConnection | ((tenant: string) => Promise<NatsConnection>);

interface Clients {
  readonly js: JetStreamClient;
  /** The same, with putTimeoutMs: puts go through it. */
  readonly jsPut: JetStreamClient;
}

export class JetStreamStateObjects implements StateObjects {
  private readonly options: StateObjectsOptions;
  private readonly clients = new Map<NatsConnection, Clients>();
  private readonly buckets = new Map<string, Promise<ObjectStore>>();
  private readonly putBuckets = new Map<string, Promise<ObjectStore>>();

  constructor(
    private readonly connection: TenantConnection,
    overrides: Partial<StateObjectsOptions> = {},
  ) {
    this.options = { ...stateObjectsOptionsDefault, ...overrides };
    const invalid = validateStateObjectsOptions(this.options);
    if (invalid !== undefined) throw new Error(`invalid state object options: ${invalid}`);
  }

  private async clientsFor(tenant: string): Promise<Clients> {
    const nc = typeof this.connection === 'function' ? await this.connection(tenant) : this.connection;
    let c = this.clients.get(nc);
    if (c === undefined) {
      c = { js: nc.jetstream({ timeout: this.options.requestTimeoutMs }), jsPut: nc.jetstream({ timeout: this.options.putTimeoutMs }) };
      this.clients.set(nc, c);
    }
    return c;
  }

  async put(tenant: string, name: string, bytes: Uint8Array): Promise<StateResult<ObjectRef>> {
    const checked = checkTenantAndName(tenant, name);
    if (!checked.ok) return checked;
    if (bytes.byteLength > this.options.objectBytesMax) {
      return fail('too-large', `object ${name} is ${bytes.byteLength} bytes, more than objectBytesMax ${this.options.objectBytesMax}`);
    }
    try {
      const os = await this.bucket(tenant, true);
      // A put answered 503 changed nothing (a failed put removes its chunks): sent again through a
      // JetStream election instead of failing the checkpoint (docs/RELIABILITY.md, F4).
      return { ok: true, value: refOf(await retryNotReady(notReadyRetryDefault, () => os.putBlob({ name }, bytes))) };
    } catch (error) {
      return storeFailure(error, `storing ${name} for tenant ${tenant}`);
    }
  }

  async info(tenant: string, name: string): Promise<StateResult<ObjectRef>> {
    const checked = checkTenantAndName(tenant, name);
    if (!checked.ok) return checked;
    try {
      const info = await (await this.bucket(tenant)).info(name);
      if (info === null || info.deleted) return fail('not-found', `object ${name} of tenant ${tenant} does not exist`);
      return { ok: true, value: refOf(info) };
    } catch (error) {
      return storeFailure(error, `reading the metadata of ${name} for tenant ${tenant}`);
    }
  }

  async get(tenant: string, ref: ObjectRef): Promise<StateResult<Uint8Array>> {
    const checked = checkTenantAndName(tenant, ref.name);
    if (!checked.ok) return checked;
    const expectedDigest = parseSha256Digest(ref.digest);
    if (expectedDigest === undefined) return fail('invalid-ref', `digest ${JSON.stringify(ref.digest.slice(0, 80))} of ${ref.name} is not SHA-256=<base64 or hex>`);
    const expected = { digest: ref.digest, sizeBytes: ref.sizeBytes };
    if (ref.sizeBytes > this.options.objectBytesMax) {
      return fail('too-large', `object ${ref.name} is ${ref.sizeBytes} bytes, more than objectBytesMax ${this.options.objectBytesMax}`);
    }
    try {
      const os = await this.bucket(tenant);
      const info = await os.info(ref.name);
      if (info === null || info.deleted) return fail('not-found', `object ${ref.name} of tenant ${tenant} does not exist`);
      // Metadata first: a replaced object is caught before any data is read.
      if (info.size !== ref.sizeBytes) {
        return fail('size-mismatch', `object ${ref.name} is ${info.size} bytes, expected ${ref.sizeBytes}`, { expected, actual: { digest: info.digest, sizeBytes: info.size } });
      }
      const metaDigest = parseSha256Digest(info.digest);
      if (metaDigest === undefined || !metaDigest.equals(expectedDigest)) {
        return fail('digest-mismatch', `object ${ref.name} has digest ${info.digest}, expected ${ref.digest}: it was replaced since it was acked`, {
          expected,
          actual: { digest: info.digest, sizeBytes: info.size },
        });
      }
      const data = await this.readChunks((await this.clientsFor(tenant)).js, info);
      if (!data.ok) return data;
      const actualDigest = sha256Digest(data.value);
      const actual = { digest: actualDigest, sizeBytes: data.value.byteLength };
      if (data.value.byteLength !== ref.sizeBytes) {
        return fail('size-mismatch', `object ${ref.name} holds ${data.value.byteLength} bytes of data, expected ${ref.sizeBytes}: its data is corrupt`, { expected, actual });
      }
      if (!parseSha256Digest(actualDigest)?.equals(expectedDigest)) {
        return fail('digest-mismatch', `object ${ref.name} data hashes to ${actualDigest}, expected ${ref.digest}: its data is corrupt`, { expected, actual });
      }
      return { ok: true, value: data.value };
    } catch (error) {
      return storeFailure(error, `reading ${ref.name} for tenant ${tenant}`);
    }
  }

  async list(tenant: string, prefix: string): Promise<StateResult<string[]>> {
    if (!isName(tenant)) return fail('invalid-name', `tenant ${JSON.stringify(tenant.slice(0, 80))} is not a name ([A-Za-z0-9_-]{1,64})`);
    try {
      const infos = await (await this.bucket(tenant)).list();
      return { ok: true, value: infos.filter((i) => !i.deleted && i.name.startsWith(prefix)).map((i) => i.name).sort() };
    } catch (error) {
      return storeFailure(error, `listing objects of tenant ${tenant}`);
    }
  }

  async delete(tenant: string, names: readonly string[]): Promise<StateResult<void>> {
    for (const name of names) {
      const checked = checkTenantAndName(tenant, name);
      if (!checked.ok) return checked;
    }
    if (names.length === 0) return { ok: true, value: undefined };
    try {
      const os = await this.bucket(tenant);
      // nats.js resolves (success: false) for a missing object: deleting twice is harmless.
      for (const name of names) await os.delete(name);
      return { ok: true, value: undefined };
    } catch (error) {
      return storeFailure(error, `deleting objects of tenant ${tenant}`);
    }
  }

  private bucket(tenant: string, forPut = false): Promise<ObjectStore> {
    const cache = forPut ? this.putBuckets : this.buckets;
    let bucket = cache.get(tenant);
    if (bucket === undefined) {
      const opts = { replicas: this.options.replicas, ...(this.options.bucketBytesMax > 0 ? { max_bytes: this.options.bucketBytesMax } : {}) };
      bucket = this.clientsFor(tenant).then((c) => (forPut ? c.jsPut : c.js).views.os(stateBucketName(tenant), opts));
      // A failed open (NATS down) must not poison the cache for the next call.
      bucket.catch(() => cache.delete(tenant));
      cache.set(tenant, bucket);
    }
    return bucket;
  }

  /**
   * Reads an object's chunks straight from its stream subject (`$O.<bucket>.C.<nuid>`, the layout
   * every NATS client shares) with an ordered consumer, as nats.js does, but keeping every byte:
   * its own reader drops the data when its digest check fails, and we want to report what we got.
   */
  private async readChunks(js: JetStreamClient, info: ObjectInfo): Promise<StateResult<Uint8Array>> {
    if (info.chunks === 0 && info.size === 0) return { ok: true, value: new Uint8Array(0) };
    const subject = `$O.${info.bucket}.C.${info.nuid}`;
    // No chunk left at all (purged): an ordered consumer would wait for ever, so ask first.
    if (!(await this.hasMessage(js, `OBJ_${info.bucket}`, subject))) return { ok: true, value: new Uint8Array(0) };
    const opts = consumerOpts();
    opts.orderedConsumer();
    const sub = await js.subscribe(subject, opts);
    const parts: Uint8Array[] = [];
    let total = 0;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.readTimeoutMs);
    });
    try {
      const read = (async (): Promise<'done' | 'too-large'> => {
        for await (const m of sub) {
          parts.push(m.data);
          total += m.data.byteLength;
          if (total > this.options.objectBytesMax) return 'too-large';
          if (m.info.pending === 0) return 'done';
        }
        return 'done';
      })();
      const outcome = await Promise.race([read, timedOut]);
      if (outcome === 'timeout') return fail('unavailable', `reading ${info.name} took longer than readTimeoutMs ${this.options.readTimeoutMs}`);
      if (outcome === 'too-large') return fail('too-large', `object ${info.name} holds more than objectBytesMax ${this.options.objectBytesMax} bytes`);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return { ok: true, value: out };
  }

  private async hasMessage(js: JetStreamClient, stream: string, subject: string): Promise<boolean> {
    const jsm = await js.jetstreamManager();
    try {
      await jsm.streams.getMessage(stream, { last_by_subj: subject });
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === '404') return false;
      throw error;
    }
  }
}

/**
 * Creates the tenant's state bucket if it does not exist. The coordinator does it (at
 * `snapctl tenant create`, and when an agent of the tenant registers): an agent with its own
 * credential may not create streams (docs/security.md).
 */
export async function ensureStateBucket(nc: NatsConnection, tenant: string, options: Pick<StateObjectsOptions, 'replicas' | 'bucketBytesMax'> = stateObjectsOptionsDefault): Promise<void> {
  const js = nc.jetstream();
  await js.views.os(stateBucketName(tenant), { replicas: options.replicas, ...(options.bucketBytesMax > 0 ? { max_bytes: options.bucketBytesMax } : {}) });
}
