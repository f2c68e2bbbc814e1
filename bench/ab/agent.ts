/**
 * A/B of the agent's CPU from a trigger to its ack, two versions of the code side by side in one
 * process: N agents of each version (each its own NATS connection, one trivial app), triggers fed to
 * them directly (no coordinator), rounds alternating between the two sets, so the machine's other
 * load falls on both alike. Prints the median CPU per agent and round of each and B/A; running it
 * with both roots the same shows the noise (0.98-1.02 on one 2-core machine, 0.89-1.01 on another,
 * where the second set tended to be the cheaper: run each comparison both ways round).
 *
 *   git worktree add /tmp/base <rev> && ln -s "$PWD/node_modules" /tmp/base/node_modules
 *   ROOTA=/tmp/base ROOTB=$PWD npx tsx bench/ab/agent.ts [N=100] [rounds=200]
 */
export {};
const here = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const roots = [process.env['ROOTA'] ?? here, process.env['ROOTB'] ?? here];
const { startNatsServer } = await import(`${here}/examples/nats-server.ts`);
const { connect } = await import('nats');
const { pino } = await import('pino');
const N = Number(process.argv[2] ?? 100), R = Number(process.argv[3] ?? 200);
const nats = await startNatsServer();
const logger = pino({ level: 'warn' }, pino.destination(2));
const sets: { W: any; agents: any[] }[] = [];
for (const [k, root] of roots.entries()) {
  const { Agent } = await import(`${root}/agent/agent.ts`);
  const { parseAgentConfig } = await import(`${root}/agent/config.ts`);
  const { TrivialApp } = await import(`${root}/bench/lib/apps.ts`);
  const W = await import(`${root}/src/wire/index.ts`);
  const agents: any[] = [];
  for (let i = 0; i < N; i++) {
    const p = parseAgentConfig({ tenant: `t${k}`, server: `s${i}`, nats: { servers: [nats.url] }, apps: [{ name: 'a', inputs: [], outputs: [] }], logLevel: 'warn' });
    if (!p.ok) throw new Error(JSON.stringify(p));
    const a = await Agent.start(p.config, logger);
    a.attach('a', new TrivialApp(`s${i}/a`, 8, false));
    await a.ready();
    agents.push(a);
  }
  sets.push({ W, agents });
}
const nc = await connect({ servers: nats.url });
let acks = 0; let wake: (() => void) | undefined;
nc.subscribe('snap.*.evt.*', { callback: (_e, m) => { if (m.data.byteLength > 40 && m.data[m.data.length - 1] !== 0x99) { acks++; if (acks === N) wake?.(); } } });
await nc.flush();
const cpu: number[][] = [[], []];
for (let r = 1; r <= R; r++) {
  for (const [k, { W, agents }] of sets.entries()) {
    acks = 0; const done = new Promise<void>((res) => (wake = res));
    const base = { requestId: `c:x:${r}`, tenant: `t${k}`, plan: 'p', epoch: 0, checkpointId: r, policy: { kind: 'aligned' }, timeoutMs: 30000, inlineStateBytesMax: 4096, ...(r > 1 ? { completedCheckpointId: r - 1 } : {}) };
    const c0 = process.cpuUsage();
    if (r === 1) {
      for (let i = 0; i < N; i++) { const e = W.encodeControl({ ...base, server: `s${i}`, type: 'trigger', initiatorApps: ['a'], backEdgeChannels: [], apps: ['a'], layout: 'L' }); if (!e.ok) throw new Error(e.error.message); agents[i].onControl(Buffer.from(e.value)); }
    } else {
      const e = W.encodePlanTrigger({ ...base, layout: 'L' }); if (!e.ok) throw new Error(e.error.message);
      const bytes = Buffer.from(e.value);
      for (const a of agents) a.onPlanTrigger(bytes);
    }
    await Promise.race([done, new Promise((res) => setTimeout(res, 5000))]);
    const c1 = process.cpuUsage(c0);
    if (acks < N) throw new Error(`set ${k} round ${r}: ${acks} acks`);
    if (r > 20) cpu[k]!.push((c1.user + c1.system) / N);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
console.log(JSON.stringify({ A: roots[0], B: roots[1], N, usA: +med(cpu[0]!).toFixed(1), usB: +med(cpu[1]!).toFixed(1), ratio: +(med(cpu[1]!) / med(cpu[0]!)).toFixed(3) }));
process.exit(0);
