import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSealed, loadStateKeyring, open, parseKeyFile, parseSealedHeader, seal, sealChannelState, sealedOverheadBytes, SEALED_MAGIC, type StateKeyring } from '../../adapters/state-crypto.js';
import { decodeChannelState, encodeChannelState } from '../../src/wire/index.js';
import { parseAgentConfig } from '../../agent/config.js';

const ring = (current: string, ...ids: string[]): StateKeyring => ({ currentId: current, keys: new Map([current, ...ids].map((id) => [id, randomBytes(32)])) });
const text = (b: Uint8Array): string => Buffer.from(b).toString();

describe('sealed states', () => {
  it('round trip: the sealed bytes hide the plaintext and open to it', () => {
    const keys = ring('k1');
    const plain = Buffer.from('tokens=42 and a secret');
    const sealed = seal(keys, plain);
    expect(Buffer.from(sealed).includes(plain)).toBe(false);
    expect(isSealed(sealed)).toBe(true);
    const opened = open(keys, sealed, 'state');
    expect(opened.ok && text(opened.value)).toBe('tokens=42 and a secret');
  });

  it('sealing adds exactly sealedOverheadBytes to an app state', () => {
    for (const id of ['k', 'a-much-longer-key-id']) {
      const keys = ring(id);
      for (const n of [0, 1, 1000]) expect(seal(keys, new Uint8Array(n)).byteLength).toBe(n + sealedOverheadBytes(keys));
    }
  });

  it('a fresh nonce each time: the same state seals to different bytes', () => {
    const keys = ring('k1');
    expect(Buffer.from(seal(keys, Buffer.from('x'))).equals(Buffer.from(seal(keys, Buffer.from('x'))))).toBe(false);
  });

  it('the header names the version and the key id', () => {
    const sealed = seal(ring('key-2026'), Buffer.from('abc'));
    const h = parseSealedHeader(sealed);
    expect(h.ok && { version: h.value.version, keyId: h.value.keyId, nonce: h.value.nonce.length, pub: h.value.publicPart.length }).toEqual({ version: 1, keyId: 'key-2026', nonce: 12, pub: 0 });
  });

  it('a malformed header: truncated, an unknown version, a key id that is not a name', () => {
    const sealed = Buffer.from(seal(ring('k1'), Buffer.from('abc')));
    expect(parseSealedHeader(sealed.subarray(0, 12)).ok).toBe(false);
    const v2 = Buffer.from(sealed);
    v2[SEALED_MAGIC.length] = 2;
    const r = parseSealedHeader(v2);
    expect(!r.ok && r.error.message).toMatch(/format version 2/);
    const badId = Buffer.from(sealed);
    badId[SEALED_MAGIC.length + 2] = 0x2f; // '/'
    expect(!parseSealedHeader(badId).ok && true).toBe(true);
    expect(open(ring('k1'), v2, 'state of s1/a').ok).toBe(false);
  });

  it('a wrong or missing key is refused with both key ids named', () => {
    const sealed = seal(ring('k1'), Buffer.from('abc'));
    const wrong = open(ring('k2'), sealed, 'the state of s1/a in checkpoint 7');
    expect(!wrong.ok && wrong.error).toEqual({ kind: 'unknown-key', keyId: 'k1', message: 'the state of s1/a in checkpoint 7 is encrypted with key k1; this agent has key k2' });
    const none = open(undefined, sealed, 'the state of s1/a in checkpoint 7');
    expect(!none.ok && none.error.message).toBe('the state of s1/a in checkpoint 7 is encrypted with key k1; this agent has no key configured (stateEncryption)');
  });

  it('the same key id with another key, or any changed byte, fails authentication', () => {
    const keys = ring('k1');
    const sealed = seal(keys, Buffer.from('a state of some length'));
    const impostor = open(ring('k1'), sealed, 'state');
    expect(!impostor.ok && impostor.error.kind).toBe('not-authentic');
    for (const at of [SEALED_MAGIC.length + 4, sealed.length - 20, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[at] = (tampered[at] as number) ^ 1;
      const r = open(keys, tampered, 'state');
      expect(!r.ok && r.error.kind).toBe('not-authentic');
    }
  });

  it('rotation: a keyring with the old key listed opens states of both keys and seals with the current', () => {
    const old = ring('k1');
    const rotated: StateKeyring = { currentId: 'k2', keys: new Map([['k1', old.keys.get('k1') as Buffer], ['k2', randomBytes(32)]]) };
    const before = seal(old, Buffer.from('old'));
    const after = seal(rotated, Buffer.from('new'));
    const h = parseSealedHeader(after);
    expect(h.ok && h.value.keyId).toBe('k2');
    const a = open(rotated, before, 's');
    const b = open(rotated, after, 's');
    expect([a.ok && text(a.value), b.ok && text(b.value)]).toEqual(['old', 'new']);
  });

  it('plaintext (no magic) is returned as it is, with or without a key', () => {
    const r = open(ring('k1'), Buffer.from('plain'), 's');
    expect(r.ok && text(r.value)).toBe('plain');
  });

  it('a channel state keeps channels and seqs readable, not its payloads', () => {
    const keys = ring('k1');
    const state = encodeChannelState({ 's1/a->s2/b': [{ seq: 3, payload: Buffer.from('secret-payload') }, { seq: 4, payload: Buffer.from('more') }] });
    if (!state.ok) throw new Error(state.error.message);
    const sealed = sealChannelState(keys, state.value);
    expect(Buffer.from(sealed).includes(Buffer.from('secret-payload'))).toBe(false);
    const h = parseSealedHeader(sealed);
    if (!h.ok) throw new Error(h.error.message);
    const skeleton = decodeChannelState(h.value.publicPart);
    expect(skeleton.ok && skeleton.value['s1/a->s2/b']?.map((m) => [m.seq, m.payload.length])).toEqual([[3, 0], [4, 0]]);
    const opened = open(keys, sealed, 's');
    expect(opened.ok && Buffer.from(opened.value).equals(Buffer.from(state.value))).toBe(true);
    // The public part is authenticated: changing a seq in it is caught.
    const tampered = Buffer.from(sealed);
    const at = tampered.indexOf(Buffer.from([0x10, 0x03]), h.value.headerBytes - h.value.publicPart.length);
    tampered[at + 1] = 5;
    expect(open(keys, tampered, 's').ok).toBe(false);
  });
});

describe('key files', () => {
  it('32 raw bytes or their base64; anything else is refused, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'state-keys-'));
    const key = randomBytes(32);
    await writeFile(join(dir, 'raw'), key);
    await writeFile(join(dir, 'b64'), `${key.toString('base64')}\n`);
    await writeFile(join(dir, 'short'), randomBytes(16).toString('base64'));
    expect(parseKeyFile(key)?.equals(key)).toBe(true);
    const both = await loadStateKeyring({ current: 'b', keys: [{ id: 'a', file: join(dir, 'raw') }, { id: 'b', file: join(dir, 'b64') }] });
    expect(both.ok && both.value.keys.get('a')?.equals(both.value.keys.get('b') as Buffer)).toBe(true);
    const short = await loadStateKeyring({ current: 'a', keys: [{ id: 'a', file: join(dir, 'short') }] });
    expect(!short.ok && short.error).toEqual([`state key a: ${join(dir, 'short')} holds 24 bytes, neither a 32-byte key nor its base64`]);
    // Every problem at once, each naming its key and file.
    const twoBad = await loadStateKeyring({ current: 'a', keys: [{ id: 'a', file: join(dir, 'nope') }, { id: 'b', file: join(dir, 'short') }] });
    expect(!twoBad.ok && twoBad.error.length).toBe(2);
    expect(!twoBad.ok && twoBad.error[0]).toMatch(new RegExp(`^state key a: cannot read ${join(dir, 'nope')}`));
  });

  it('the config: off by default; current must be one of the keys, ids unique, files absolute', () => {
    const base = { tenant: 't', server: 's1', nats: { servers: ['nats://127.0.0.1:4222'] }, apps: [{ name: 'a' }] };
    const plain = parseAgentConfig(base);
    expect(plain.ok && plain.config.stateEncryption).toBeUndefined();
    const good = parseAgentConfig({ ...base, stateEncryption: { current: 'k2', keys: [{ id: 'k1', file: '/k/1' }, { id: 'k2', file: '/k/2' }] } });
    expect(good.ok && good.config.stateEncryption?.current).toBe('k2');
    const bad = parseAgentConfig({ ...base, stateEncryption: { current: 'k3', keys: [{ id: 'k1', file: 'rel' }, { id: 'k1', file: '/k/1' }] } });
    expect(!bad.ok && bad.problems.join('\n')).toMatch(/keys\[0\]\.file[\s\S]*absolute[\s\S]*k1 is listed twice[\s\S]*k3 is not one of the keys/);
  });
});
