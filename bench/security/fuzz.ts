/**
 * The fuzz section: malformed messages on every subject a daemon reads, chosen by a seeded PRNG so
 * that a seed gives the same messages in the same order:
 *
 * - the coordinator reads every agent's events (`snap.<tenant>.evt.<server>`);
 * - each agent reads its control subject (`ctl.<server>`), its tenant's plan triggers
 *   (`plan.<plan>.trg`), the data subjects of its apps' inputs (`ch.…`) and the credit subjects of
 *   their outputs (`cr.…`).
 *
 * Each message is random bytes, a valid message of a kind that subject carries cut short, the same
 * with bits flipped, or an oversized one (more than the wire limit, which the suite's nats-server
 * lets through so that the daemons, not the server, must refuse it), published with the
 * credentials of the subject's rightful publisher. Whether the daemons survived and still take a
 * checkpoint is judged by the caller; this publishes and counts.
 */
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { PlanInput } from '../../coordinator/model.js';
import { prng } from '../chaos-run.js';
import { channelSubject, controlSubject, creditSubject, eventSubject, planTriggerSubject, processId, wireLimitsDefault } from '../../src/wire/index.js';
import { controlSamples, creditSample, envelopeSamples, eventSamples, planTriggerSample, type Sample } from './samples.js';

/** Who reads the subject. */
export type SubjectKind = 'evt' | 'ctl' | 'trg' | 'ch' | 'cr';

/** Who may publish on a subject: the coordinator, or the agent of one server of a tenant. */
export type Publisher = { readonly role: 'coordinator' } | { readonly role: 'agent'; readonly tenant: string; readonly server: string };

export interface FuzzTarget {
  readonly subject: string;
  readonly kind: SubjectKind;
  readonly publisher: Publisher;
  /** Valid messages of the kinds this subject carries: what truncations and bit flips start from. */
  readonly samples: readonly Sample[];
}

/** A checkpoint id no round of the run reaches, so that a mutated message that still decodes names none. */
const FOREIGN_CHECKPOINT_ID = 1_000_000_000;
/** Far ahead of what the run's channels send. */
const FOREIGN_SEQ = 1_000_000_000;

/** Every subject the daemons of `plans` read, with the valid messages it carries. */
export function fuzzTargets(plans: readonly PlanInput[]): FuzzTarget[] {
  return plans.flatMap((plan) => {
    const where = (server: string) => ({ tenant: plan.tenant, server, plan: plan.id, app: plan.apps.find((a) => a.server === server)?.app ?? 'APP', epoch: 0, checkpointId: FOREIGN_CHECKPOINT_ID });
    const channels = plan.channels.map((c) => `${processId(c.from.server, c.from.app)}->${processId(c.to.server, c.to.app)}`);
    const must = (subject: string | undefined): string => {
      if (subject === undefined) throw new Error(`plan ${plan.id} has a malformed channel id`);
      return subject;
    };
    const coordinator: Publisher = { role: 'coordinator' };
    const agent = (server: string): Publisher => ({ role: 'agent', tenant: plan.tenant, server });
    const serverOf = (processIdText: string): string => processIdText.split('/')[0] ?? '';
    return [
      ...plan.servers.map((s) => ({ subject: eventSubject(plan.tenant, s), kind: 'evt' as const, publisher: agent(s), samples: eventSamples(where(s)) })),
      ...plan.servers.map((s) => ({ subject: controlSubject(plan.tenant, s), kind: 'ctl' as const, publisher: coordinator, samples: controlSamples(where(s)) })),
      { subject: planTriggerSubject(plan.tenant, plan.id), kind: 'trg' as const, publisher: coordinator, samples: [planTriggerSample(where(plan.servers[0] ?? ''))] },
      ...channels.map((c) => ({ subject: must(channelSubject(plan.tenant, c)), kind: 'ch' as const, publisher: agent(serverOf(c.split('->')[0] ?? '')), samples: envelopeSamples(c, 0, FOREIGN_SEQ, FOREIGN_CHECKPOINT_ID) })),
      ...channels.map((c) => ({ subject: must(creditSubject(plan.tenant, c)), kind: 'cr' as const, publisher: agent(serverOf(c.split('->')[1] ?? '')), samples: [creditSample(c, 0, FOREIGN_SEQ, FOREIGN_SEQ + 1)] })),
    ];
  });
}

export type Mutation = 'random' | 'truncated' | 'flipped' | 'oversized';

export interface FuzzOptions {
  readonly count: number;
  readonly seed: number;
  /** The nats-server's max_payload: an oversized message stays under it. */
  readonly maxPayloadBytes: number;
}

export interface FuzzResult {
  readonly fuzzed: number;
  readonly bySubjectKind: Record<SubjectKind, number>;
  readonly byMutation: Record<Mutation, number>;
  readonly subjects: number;
}

const RANDOM_BYTES_MAX = 512;
const FLIPS_MAX = 8;
/** Messages between two flushes: the publisher waits for the server now and then, not for nothing. */
const BATCH = 500;
/** One message in this many is oversized (each about a megabyte). */
const OVERSIZED_ONE_IN = 1_000;

/** The n-th message of a run: deterministic in (seed, n) through the shared PRNG stream. */
function mutate(random: () => number, target: FuzzTarget, maxPayloadBytes: number): { mutation: Mutation; bytes: Uint8Array } {
  const int = (n: number): number => Math.floor(random() * n);
  const bytesOf = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  const sample = (target.samples[int(target.samples.length)] as Sample).bytes;
  if (int(OVERSIZED_ONE_IN) === 0) {
    // Past the wire limit: a valid message's bytes padded with random ones.
    const size = wireLimitsDefault.wireMessageBytesMax + 1 + int(Math.max(1, maxPayloadBytes - wireLimitsDefault.wireMessageBytesMax - 4_096));
    const bytes = new Uint8Array(size);
    bytes.set(sample.subarray(0, Math.min(sample.byteLength, size)));
    bytes.set(bytesOf(Math.min(4_096, size - sample.byteLength)), sample.byteLength);
    return { mutation: 'oversized', bytes };
  }
  const pick = random();
  if (pick < 0.3) return { mutation: 'random', bytes: bytesOf(int(RANDOM_BYTES_MAX + 1)) };
  if (pick < 0.55) return { mutation: 'truncated', bytes: sample.slice(0, int(sample.byteLength)) };
  const bytes = sample.slice();
  const flips = 1 + int(FLIPS_MAX);
  for (let i = 0; i < flips; i++) {
    const bit = int(bytes.byteLength * 8);
    bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
  }
  return { mutation: 'flipped', bytes };
}

/**
 * Publishes `o.count` messages, each with the credentials of its subject's rightful publisher
 * (`connectionOf`): on a nats-server with accounts nobody else may, so the fuzz stands for a broken
 * or compromised peer.
 */
export async function fuzz(connectionOf: (p: Publisher) => NatsConnection, targets: readonly FuzzTarget[], o: FuzzOptions, log: Logger): Promise<FuzzResult> {
  const used = new Set<NatsConnection>();
  const flush = async (): Promise<void> => {
    for (const nc of used) await nc.flush();
  };
  const random = prng(o.seed);
  const bySubjectKind: Record<SubjectKind, number> = { evt: 0, ctl: 0, trg: 0, ch: 0, cr: 0 };
  const byMutation: Record<Mutation, number> = { random: 0, truncated: 0, flipped: 0, oversized: 0 };
  let fuzzed = 0;
  for (let n = 0; n < o.count; n++) {
    const target = targets[Math.floor(random() * targets.length)] as FuzzTarget;
    const { mutation, bytes } = mutate(random, target, o.maxPayloadBytes);
    const nc = connectionOf(target.publisher);
    used.add(nc);
    nc.publish(target.subject, bytes);
    fuzzed += 1;
    bySubjectKind[target.kind] += 1;
    byMutation[mutation] += 1;
    // An oversized message is a megabyte for the reader to refuse: let them through one by one.
    if (mutation === 'oversized' || (n + 1) % BATCH === 0) await flush();
    if ((n + 1) % 20_000 === 0) log.info({ fuzzed }, 'fuzzing');
  }
  await flush();
  return { fuzzed, bySubjectKind, byMutation, subjects: targets.length };
}

/**
 * The malformed messages the daemons' logs account for: bad traffic is logged at a bounded rate
 * (adapters/bad-traffic-log.ts), so the lines of `malformed-*` kinds plus the `suppressed` counts of
 * their summary lines. Messages that still decoded after a mutation are not malformed and are not
 * in this count.
 */
export function malformedLogged(logText: string): number {
  let n = 0;
  for (const line of logText.split('\n')) {
    if (!line.includes('"kind":"malformed-')) continue;
    let entry: { suppressed?: unknown };
    try {
      entry = JSON.parse(line) as { suppressed?: unknown };
    } catch {
      continue;
    }
    n += typeof entry.suppressed === 'number' ? entry.suppressed : 1;
  }
  return n;
}
