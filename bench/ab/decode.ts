/**
 * A/B of the coordinator's decoding of one ack (protobuf and validation, src/wire/codec.ts
 * decodeEvent), two versions of the code side by side in one process: an ack counting C input and C
 * output channels, decoded `count` times by each version in turn, `rounds` times. Prints the median
 * microseconds per decode of each and B/A.
 *
 *   ROOTA=/tmp/base ROOTB=$PWD npx tsx bench/ab/decode.ts [C=1] [count=200000] [rounds=10]
 */
export {};
const here = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const roots = [process.env['ROOTA'] ?? here, process.env['ROOTB'] ?? here];
const C = Number(process.argv[2] ?? 1), count = Number(process.argv[3] ?? 200_000), R = Number(process.argv[4] ?? 10);
const channels = (dir: 'in' | 'out'): Record<string, number> =>
  Object.fromEntries(Array.from({ length: C }, (_, i) => [dir === 'in' ? `s${i}/a->s0/b` : `s0/b->s${i}/c`, 1_000 + i]));
const ack = {
  type: 'ack', requestId: 'e-1', tenant: 'bench', server: 's0', epoch: 1, checkpointId: 7, app: 'b',
  counts: { sent: channels('out'), received: channels('in') },
  state: { kind: 'inline', bytes: new Uint8Array(8) },
  stats: { startDelayMs: 1, alignmentMs: 2, syncMs: 0, asyncMs: 0, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false },
};
const sides = [];
for (const root of roots) {
  const W = await import(`${root}/src/wire/codec.ts`);
  const encoded = W.encodeEvent(ack);
  if (!encoded.ok) throw new Error(JSON.stringify(encoded.error));
  sides.push({ decode: W.decodeEvent as (b: Uint8Array) => { ok: boolean }, bytes: encoded.value as Uint8Array, us: [] as number[] });
}
for (let r = 0; r < R; r++) {
  for (const s of sides) {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) if (!s.decode(s.bytes).ok) throw new Error('the ack did not decode');
    s.us.push(((performance.now() - t0) * 1000) / count);
  }
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] as number;
const [a, b] = sides.map((s) => med(s.us)) as [number, number];
console.log(JSON.stringify({ A: roots[0], B: roots[1], C, usA: +a.toFixed(3), usB: +b.toFixed(3), ratio: +(b / a).toFixed(3) }));
