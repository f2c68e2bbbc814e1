/**
 * Optional encryption of a tenant's states at rest (docs/security.md): app states, channel states and
 * inline states in acks are sealed by the agent with AES-256-GCM before they leave the VM, and opened
 * by the agent at restore. The coordinator never holds a key: it records and checks the digest of the
 * sealed bytes, and reads only the header.
 *
 * A sealed value says which key opens it:
 *
 *   magic "\x89SNAPENC" (8) | version 1 (1) | key id length (1) | key id (ASCII) | nonce (12)
 *   | public part length (4, big-endian) | public part | ciphertext | GCM tag (16)
 *
 * Everything before the ciphertext is the GCM additional data, so the key id, the version and the
 * public part are authenticated with the ciphertext. The public part is empty for an app state; for a
 * channel state it is the same ChannelState with every payload emptied (channel ids and seqs only,
 * which the coordinator already knows from the acked counts), so VerifyCheckpoint can still check
 * the cut without the key.
 *
 * Bytes that do not start with the magic are a plaintext state (a checkpoint taken before encryption
 * was turned on, or by an agent without it).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { decodeStoredChannelState, encodeChannelState, isName } from '../src/wire/index.js';
import type { Result } from '../src/result.js';

export const SEALED_MAGIC = Buffer.from([0x89, 0x53, 0x4e, 0x41, 0x50, 0x45, 0x4e, 0x43]);
export const SEALED_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const STATE_KEY_BYTES = 32;

export type StateCryptoErrorKind =
  /** Starts with the magic but the header does not parse (or names a version this agent does not know). */
  | 'malformed'
  /** Sealed, and this agent has no key at all. */
  | 'no-key'
  /** Sealed with a key id this agent does not have. */
  | 'unknown-key'
  /** The tag does not match: the bytes were changed, or the key file under that id is another key. */
  | 'not-authentic';

export interface StateCryptoError {
  readonly kind: StateCryptoErrorKind;
  readonly message: string;
  /** The key id the value names, when its header parsed. */
  readonly keyId?: string;
}

export interface SealedHeader {
  readonly version: number;
  readonly keyId: string;
  readonly nonce: Buffer;
  /** Public (authenticated, not encrypted) part: a channel state's skeleton, or empty. */
  readonly publicPart: Uint8Array;
  /** Where the ciphertext starts; everything before it is the GCM additional data. */
  readonly headerBytes: number;
}

/** The keys of one agent: the one new states are sealed with, and every one it can open with. */
export interface StateKeyring {
  readonly currentId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

/** The configuration's shape (agent/config.ts `stateEncryption`). */
export interface StateEncryptionConfig {
  readonly current: string;
  readonly keys: readonly { readonly id: string; readonly file: string }[];
}

export function isSealed(bytes: Uint8Array): boolean {
  return bytes.byteLength >= SEALED_MAGIC.length && Buffer.from(bytes.buffer, bytes.byteOffset, SEALED_MAGIC.length).equals(SEALED_MAGIC);
}

/** The header of sealed bytes; an error when they start with the magic but the rest is not a header. */
export function parseSealedHeader(bytes: Uint8Array): Result<SealedHeader, StateCryptoError> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string): Result<SealedHeader, StateCryptoError> => ({ ok: false, error: { kind: 'malformed', message: `sealed state header is malformed: ${why}` } });
  if (!isSealed(b)) return bad('no magic');
  let at = SEALED_MAGIC.length;
  if (b.length < at + 2) return bad('truncated before the key id');
  const version = b[at] as number;
  if (version !== SEALED_VERSION) return bad(`format version ${version}; this build reads version ${SEALED_VERSION}`);
  const idLength = b[at + 1] as number;
  at += 2;
  if (b.length < at + idLength + NONCE_BYTES + 4) return bad('truncated in the key id or nonce');
  const keyId = b.subarray(at, at + idLength).toString('latin1');
  if (!isName(keyId)) return bad(`key id ${JSON.stringify(keyId.slice(0, 80))} is not a name ([A-Za-z0-9_-]{1,64})`);
  at += idLength;
  const nonce = b.subarray(at, at + NONCE_BYTES);
  at += NONCE_BYTES;
  const publicBytes = b.readUInt32BE(at);
  at += 4;
  if (b.length < at + publicBytes + TAG_BYTES) return bad(`truncated: a ${publicBytes}-byte public part and a tag do not fit in ${b.length} bytes`);
  return { ok: true, value: { version, keyId, nonce, publicPart: b.subarray(at, at + publicBytes), headerBytes: at + publicBytes } };
}

/** How many bytes sealing adds to an app state (no public part) with the keyring's current key. */
export function sealedOverheadBytes(keyring: StateKeyring): number {
  return SEALED_MAGIC.length + 2 + keyring.currentId.length + NONCE_BYTES + 4 + TAG_BYTES;
}

/** Seals with the keyring's current key and a fresh random nonce. */
export function seal(keyring: StateKeyring, plaintext: Uint8Array, publicPart: Uint8Array = new Uint8Array(0)): Uint8Array {
  const key = keyring.keys.get(keyring.currentId);
  if (key === undefined) throw new Error(`the current state key ${keyring.currentId} is not among the loaded keys`);
  const id = Buffer.from(keyring.currentId, 'latin1');
  const nonce = randomBytes(NONCE_BYTES);
  const lengths = Buffer.alloc(4);
  lengths.writeUInt32BE(publicPart.byteLength);
  const header = Buffer.concat([SEALED_MAGIC, Buffer.from([SEALED_VERSION, id.length]), id, nonce, lengths, publicPart]);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([header, body, cipher.getAuthTag()]));
}

/**
 * A channel state sealed with its skeleton (channels and seqs, payloads emptied; log ranges as they
 * are) as the public part.
 * Bytes that are not a ChannelState are sealed without one.
 */
export function sealChannelState(keyring: StateKeyring, plaintext: Uint8Array): Uint8Array {
  const decoded = decodeStoredChannelState(plaintext);
  if (!decoded.ok) return seal(keyring, plaintext);
  const empty = new Uint8Array(0);
  // Log ranges hold no payload: they stay readable, for the cut check of VerifyCheckpoint.
  const skeleton = encodeChannelState(
    Object.fromEntries(Object.entries(decoded.value.messages).map(([ch, msgs]) => [ch, msgs.map((m) => ({ seq: m.seq, payload: empty }))])),
    decoded.value.logRanges,
  );
  return seal(keyring, plaintext, skeleton.ok ? skeleton.value : empty);
}

/**
 * The plaintext of a state: sealed bytes opened with the key their header names, anything else
 * returned as it is. `what` names the state in the error ("state of s1/app1 in checkpoint 7").
 */
export function open(keyring: StateKeyring | undefined, bytes: Uint8Array, what: string): Result<Uint8Array, StateCryptoError> {
  if (!isSealed(bytes)) return { ok: true, value: bytes };
  const header = parseSealedHeader(bytes);
  if (!header.ok) return { ok: false, error: { ...header.error, message: `${what}: ${header.error.message}` } };
  const { keyId } = header.value;
  if (keyring === undefined) {
    return { ok: false, error: { kind: 'no-key', keyId, message: `${what} is encrypted with key ${keyId}; this agent has no key configured (stateEncryption)` } };
  }
  const key = keyring.keys.get(keyId);
  if (key === undefined) {
    return {
      ok: false,
      error: { kind: 'unknown-key', keyId, message: `${what} is encrypted with key ${keyId}; this agent has key${keyring.keys.size > 1 ? 's' : ''} ${[...keyring.keys.keys()].join(', ')}` },
    };
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decipher = createDecipheriv('aes-256-gcm', key, header.value.nonce);
  decipher.setAAD(b.subarray(0, header.value.headerBytes));
  decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
  try {
    const plain = Buffer.concat([decipher.update(b.subarray(header.value.headerBytes, b.length - TAG_BYTES)), decipher.final()]);
    return { ok: true, value: new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength) };
  } catch {
    return { ok: false, error: { kind: 'not-authentic', keyId, message: `${what} fails authentication with key ${keyId}: the stored bytes were changed, or the key file of ${keyId} holds another key` } };
  }
}

/** A key file: 32 raw bytes, or their base64 (whitespace around it ignored). */
export function parseKeyFile(content: Buffer): Buffer | undefined {
  if (content.length === STATE_KEY_BYTES) return content;
  const text = content.toString('latin1').trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  const key = Buffer.from(text, 'base64');
  return key.length === STATE_KEY_BYTES ? key : undefined;
}

/** Reads every key file; each problem names the key id and the file, and why it is not usable. */
export async function loadStateKeyring(config: StateEncryptionConfig): Promise<Result<StateKeyring, string[]>> {
  const keys = new Map<string, Buffer>();
  const problems: string[] = [];
  for (const { id, file } of config.keys) {
    let content: Buffer;
    try {
      content = await readFile(file);
    } catch (error) {
      problems.push(`state key ${id}: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const key = parseKeyFile(content);
    if (key === undefined) problems.push(`state key ${id}: ${file} holds ${content.length} bytes, neither a ${STATE_KEY_BYTES}-byte key nor its base64`);
    else keys.set(id, key);
  }
  if (!config.keys.some((k) => k.id === config.current)) problems.push(`stateEncryption.current ${config.current} is not one of the keys`);
  return problems.length > 0 ? { ok: false, error: problems } : { ok: true, value: { currentId: config.current, keys } };
}
