/**
 * Where a sending channel's envelopes live until the receiver has consumed them (they are kept for
 * a resend). Two sources, chosen by how fast the channel sends:
 *
 * - A quiet channel takes them from Node's shared Buffer pool. Its envelopes are released within a
 *   round trip, and so is the pool's 8 KiB chunk soon after, while V8 still collects it young. A slab
 *   of the channel's own would live until its last envelope went, seconds at a trickle, and grow old
 *   in V8's heap: a thousand such channels in one process cost it about a tenth more CPU
 *   (docs/BENCHMARKS.md, issue 14's sixth pass).
 * - A busy channel, one that sends SLAB_BYTES_MIN within SLAB_GROW_WITHIN_MS, cuts them from slabs of
 *   its own (so a stalled channel's kept envelopes pin only its own memory), 8 KiB to begin with and
 *   doubled up to 64 KiB while each fills within SLAB_GROW_WITHIN_MS: an ArrayBuffer every 50 or so
 *   1 KiB messages instead of every 7 from the pool, each a V8 allocation outside its heap (the
 *   producer's CPU per 1 KiB message fell about a tenth, docs/BENCHMARKS.md, third pass).
 *
 * The choice is made again after every SLAB_BYTES_MIN of envelopes, so the clock is read once per
 * 8 KiB, not once per message.
 */
import { SlabAllocator } from '../../src/wire/index.js';

export const SLAB_BYTES_MIN = 8 * 1024;
const SLAB_BYTES_MAX = 64 * 1024;
export const SLAB_GROW_WITHIN_MS = 1_000;

export type Allocate = (size: number) => Uint8Array;

export interface EnvelopeMemorySources {
  readonly nowMs: () => number;
  /** The quiet channel's source. */
  readonly shared: Allocate;
  /** Makes the busy channel's slabs of the given size. */
  readonly slab: Allocate;
}

// No zero-filling: the codec writes every byte.
const NODE_SOURCES: EnvelopeMemorySources = {
  nowMs: () => performance.now(),
  shared: (size) => Buffer.allocUnsafe(size),
  slab: (size) => Buffer.allocUnsafeSlow(size),
};

export function envelopeMemory(sources: EnvelopeMemorySources = NODE_SOURCES): Allocate {
  let slabBytes = 0;
  let lastSlabAtMs = Number.NEGATIVE_INFINITY;
  const slabs = new SlabAllocator(
    () => {
      const now = sources.nowMs();
      slabBytes = now - lastSlabAtMs <= SLAB_GROW_WITHIN_MS ? Math.min(SLAB_BYTES_MAX, slabBytes * 2) : SLAB_BYTES_MIN;
      lastSlabAtMs = now;
      return slabBytes;
    },
    SLAB_BYTES_MIN / 2,
    sources.slab,
  );
  let busy = false;
  let countedBytes = 0;
  let countingSinceMs = sources.nowMs();
  return (size) => {
    countedBytes += size;
    if (countedBytes >= SLAB_BYTES_MIN) {
      const now = sources.nowMs();
      busy = now - countingSinceMs <= SLAB_GROW_WITHIN_MS;
      countedBytes = 0;
      countingSinceMs = now;
    }
    return busy ? slabs.allocate(size) : sources.shared(size);
  };
}
