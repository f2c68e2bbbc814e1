/**
 * `control`: app-level checkpoint rounds of N trivial agents (no channels: a plan of N isolated
 * apps), each round from the request to the record written `completed`, against the floor: a plain
 * NATS broadcast to N subscriptions and the gathering of their N replies. Same layout for both: the
 * coordinator (or the gatherer) in this process on one connection, the N agents (or N plain
 * subscribers) spread over the worker processes, one NATS connection each.
 */
import { connect } from 'nats';
import { agentConfig, isolatedPlan, startCoordinator } from './lib/coordinator.js';
import { cpuPerRound, cpuSnapshot, withEnv, type CpuSnapshot } from './lib/env.js';
import { atMost, type BenchResult } from './lib/report.js';
import { round, summarize } from './lib/stats.js';
import { spread } from './lib/workers.js';
import type { AgentSpec } from './worker.js';

export interface ControlOptions {
  readonly agents: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly workers: number;
  readonly logLevel: string;
}

const TARGET_RATIO_P50 = 1.5;

export async function runControl(o: ControlOptions): Promise<BenchResult> {
  return withEnv(o.workers, async (env) => {
    const { nats, pool } = env;
    // ---- floor: broadcast to N subscriptions, gather N replies ----
    const names = Array.from({ length: o.agents }, (_, i) => `m${i}`);
    const groups = spread(names, pool.size);
    await pool.all('floor.members', (w) => ({ url: nats.url, names: groups[w], broadcast: 'bench.floor.broadcast', reply: 'bench.floor.reply' }));
    const nc = await connect({ servers: nats.url, name: 'bench floor gatherer' });
    let replies = 0;
    let gathered: (() => void) | undefined;
    nc.subscribe('bench.floor.reply', {
      callback: () => {
        replies += 1;
        if (replies === o.agents) gathered?.();
      },
    });
    await nc.flush();
    const floorMs: number[] = [];
    const question = new Uint8Array(64);
    let floorCpu0: CpuSnapshot | undefined;
    for (let r = 0; r < o.warmup + o.rounds; r++) {
      if (r === o.warmup) floorCpu0 = await cpuSnapshot(env);
      replies = 0;
      const done = new Promise<void>((resolve) => (gathered = resolve));
      const t0 = performance.now();
      nc.publish('bench.floor.broadcast', question);
      await done;
      if (r >= o.warmup) floorMs.push(performance.now() - t0);
    }
    const floorCpu = cpuPerRound(floorCpu0 as CpuSnapshot, await cpuSnapshot(env), o.rounds);
    await nc.close();
    await pool.all('reset', () => ({}));

    // ---- project: checkpoint rounds of N agents ----
    const plan = isolatedPlan('control', o.agents);
    const coordinator = await startCoordinator(nats.url, { timeoutMs: 120_000, retainedPerPlan: o.warmup + o.rounds + 10, logLevel: o.logLevel });
    try {
      await coordinator.createPlan(plan);
      const specs: AgentSpec[] = plan.servers.map((server) => ({ config: agentConfig(plan, server, nats.url), app: { kind: 'trivial', stateBytes: 8 } }));
      const bySpec = spread(specs, pool.size);
      await pool.all('agents.start', (w) => ({ specs: bySpec[w] }));
      const projectMs: number[] = [];
      const phases: Record<'create' | 'trigger' | 'gather' | 'commit', number[]> = { create: [], trigger: [], gather: [], commit: [] };
      const states: Record<string, number> = {};
      const failures: string[] = [];
      let projectCpu0: CpuSnapshot | undefined;
      for (let r = 0; r < o.warmup + o.rounds; r++) {
        if (r === o.warmup) projectCpu0 = await cpuSnapshot(env);
        const { ms, record, startedAtUnixMs } = await coordinator.round(plan.id);
        states[record.state] = (states[record.state] ?? 0) + 1;
        // A round that did not complete is no sample of "a round to completed": it is counted and named.
        if (record.state !== 'completed') failures.push(`${record.id}: ${record.failureReason ?? record.state}: ${record.failureDetail ?? ''}`.slice(0, 300));
        else if (r >= o.warmup) {
          projectMs.push(ms);
          const lastAck = Math.max(...record.parts.map((p) => p.ackedAtUnixMs ?? 0));
          const triggered = record.triggeredAtUnixMs ?? record.createdAtUnixMs;
          phases.create.push(record.createdAtUnixMs - startedAtUnixMs);
          phases.trigger.push(triggered - record.createdAtUnixMs);
          phases.gather.push(lastAck - triggered);
          phases.commit.push((record.finishedAtUnixMs ?? lastAck) - lastAck);
        }
      }
      if (projectMs.length === 0) throw new Error(`no measured checkpoint round completed: ${failures.join('; ')}`);
      const projectCpu = cpuPerRound(projectCpu0 as CpuSnapshot, await cpuSnapshot(env), o.rounds);
      const floor = summarize(floorMs);
      const project = summarize(projectMs);
      const p50 = atMost('round p50', 'ms', floor.p50, project.p50, TARGET_RATIO_P50);
      return {
        benchmark: 'control',
        params: { agents: o.agents, rounds: o.rounds, warmup: o.warmup, workers: o.workers },
        headline: p50,
        rows: [p50, atMost('round p99', 'ms', floor.p99, project.p99), atMost('round mean', 'ms', floor.mean, project.mean)],
        extra: {
          floorMs: { min: round(floor.min), max: round(floor.max) },
          projectMs: { min: round(project.min), max: round(project.max) },
          checkpoints: states,
          ...(failures.length > 0 ? { failures } : {}),
          cpuMsPerRound: { floor: floorCpu, project: projectCpu },
          projectPhasesP50Ms: {
            create: round(summarize(phases.create).p50),
            trigger: round(summarize(phases.trigger).p50),
            gather: round(summarize(phases.gather).p50),
            commit: round(summarize(phases.commit).p50),
          },
        },
        notes: [
          'cpuMsPerRound: CPU time per measured round of this process (gatherer or coordinator), all workers together, and the nats-server',
          'projectPhasesP50Ms (ms, the records\' clock): create = request to record created (plan, epoch, id, admission, create), trigger = created to trigger sent, gather = trigger to last ack received, commit = last ack to completed',
        ],
      };
    } finally {
      await pool.all('reset', () => ({}));
      await coordinator.stop();
    }
  });
}
