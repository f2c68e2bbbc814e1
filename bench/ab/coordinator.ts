/**
 * A/B of the coordinator's CPU per checkpoint (the take, N acks, the commit), two versions side by
 * side in one process, each with its own nats-server: acks are made here and handed to each bus
 * directly (no agents), rounds alternate between the two. Prints the median CPU per checkpoint of
 * each and B/A (both roots the same: about 0.96-1.04 here).
 *
 *   ROOTA=/tmp/base ROOTB=$PWD npx tsx bench/ab/coordinator.ts [N=1000] [rounds=60]
 */
export {};
const here = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const roots = [process.env['ROOTA'] ?? here, process.env['ROOTB'] ?? here];
const N = Number(process.argv[2] ?? 1000), R = Number(process.argv[3] ?? 60);
const { startNatsServer } = await import(`${here}/examples/nats-server.ts`);
const sides: any[] = [];
for (const root of roots) {
  const nats = await startNatsServer();
  const L = await import(`${root}/bench/lib/coordinator.ts`);
  const W = await import(`${root}/src/wire/index.ts`);
  const c = await L.startCoordinator(nats.url, { timeoutMs: 60_000, retainedPerPlan: 10_000, logLevel: 'error' });
  const plan = L.isolatedPlan('control', N);
  await c.createPlan(plan);
  const bus: any = c.bus;
  if (bus.layouts) bus.layouts.missing = () => [];
  sides.push({ nats, c, W, plan, bus, cpu: [] as number[] });
}
await new Promise((r) => setTimeout(r, 500));
for (let r = 0; r < R; r++) {
  for (const s of sides) {
    const acks: [string, Buffer][] = [];
    const c0 = process.cpuUsage();
    const started = await s.c.start(s.plan.id);
    const cT = process.cpuUsage(c0);
    if (!started) throw new Error('busy');
    for (const srv of s.plan.servers) {
      const e = s.W.encodeEvent({ requestId: `${srv}:b:${r}`, tenant: 'bench', server: srv, epoch: 0, type: 'ack', checkpointId: started.id, app: 'a', counts: { sent: {}, received: {} }, state: { kind: 'inline', bytes: new Uint8Array(8) }, stats: { startDelayMs: 1, alignmentMs: 0, syncMs: 0, asyncMs: 0, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false } });
      acks.push([s.W.eventSubject('bench', srv), Buffer.from(e.value)]);
    }
    const c1 = process.cpuUsage();
    for (const [subj, bytes] of acks) s.bus.onEvent(subj, bytes);
    const rec = await started.ended;
    const c2 = process.cpuUsage(c1);
    if (rec.state !== 'completed') throw new Error(rec.state + ' ' + rec.failureDetail);
    if (r >= 10) s.cpu.push((cT.user + cT.system + c2.user + c2.system) / 1000);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
console.log(JSON.stringify({ A: roots[0], B: roots[1], N, msA: +med(sides[0].cpu).toFixed(2), msB: +med(sides[1].cpu).toFixed(2), ratio: +(med(sides[1].cpu) / med(sides[0].cpu)).toFixed(3) }));
for (const s of sides) { await s.c.stop(); await s.nats.stop(); }
process.exit(0);
