/**
 * The simulator's only source of randomness: a seeded PRNG (sfc32 seeded through splitmix32), so a
 * run is reproduced exactly from its seed. Never Math.random.
 */

export class Prng {
  /**
   * The state words a, b, c, d. A uint32 does not fit V8's small integers, so as object fields they
   * would be boxed doubles, read and written through a pointer on every draw; a Uint32Array holds
   * them unboxed and its stores wrap modulo 2^32, which is the `>>> 0` of the reference algorithm.
   */
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    const st = this.s;
    st[0] = next();
    st[1] = next();
    st[2] = next();
    st[3] = next();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const st = this.s;
    const a = st[0] as number;
    const b = st[1] as number;
    const c = st[2] as number;
    const d = st[3] as number;
    // Sums stay far below 2^53, so they are exact and the stores' wrap equals the reference's `>>> 0`.
    const t = (a + b + d) >>> 0;
    st[3] = d + 1;
    st[0] = b ^ (b >>> 9);
    st[1] = c + (c << 3);
    st[2] = ((c << 21) | (c >>> 11)) + t;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  /** A child generator for an independent stream (e.g. the graph's shape vs the run's timing). */
  fork(): Prng {
    return new Prng(this.nextUint32());
  }
}
