/**
 * The security suite's run (issue 10 item 6; docs/security.md, "The security suite"): a live
 * secured system (./system.ts), one checkpoint per tenant to know it works, the forgery and reads
 * sections (./forgery.ts), the fuzz section (./fuzz.ts) and a checkpoint per tenant after it, the
 * API section (./api.ts), and the count of daemons that died.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { apiSection, type ApiFinding } from './api.js';
import { forgerySection, type ForgeryFinding } from './forgery.js';
import { fuzz, fuzzTargets, malformedLogged, type FuzzResult } from './fuzz.js';
import { NATS_MAX_PAYLOAD_BYTES, sleep, startSecuredSystem, TENANTS, type SecuredSystem, type Tenant } from './system.js';

export interface SecurityOptions {
  /** Malformed messages to publish. */
  readonly fuzzCount: number;
  readonly seed: number;
  /** How long each checkpoint of the run may take. */
  readonly checkpointTimeoutMs: number;
  /** Keep the work directory (every daemon's log) even when the run passed. */
  readonly keepLogs: boolean;
}

export const securityOptionsDefault: Omit<SecurityOptions, 'seed'> = { fuzzCount: 100_000, checkpointTimeoutMs: 20_000, keepLogs: false };

export interface SecurityReport {
  forgeries_tried: number;
  forgeries_accepted: number;
  reads_tried: number;
  reads_succeeded: number;
  api_denials_expected: number;
  api_denials_missing: number;
  fuzzed: number;
  crashes: number;
  checkpoint_after_fuzz: boolean;
  /** The coordinator's view of agents, plans and checkpoints changed during the forgeries. */
  forgery_state_changed: boolean;
  /** Rightful messages sent before the forgeries, and received: the positive control. */
  forgery_controls_sent: number;
  forgery_controls_delivered: number;
  /** The forgeries accepted and reads that succeeded (the first 50). */
  forgery_findings: readonly ForgeryFinding[];
  seed: number;
  api_methods: number;
  api_missing: readonly ApiFinding[];
  fuzz_subjects: number;
  fuzz_by_subject_kind: FuzzResult['bySubjectKind'];
  fuzz_by_mutation: FuzzResult['byMutation'];
  /** Malformed messages the daemons' logs account for (lines and bounded-rate summaries). */
  fuzz_malformed_logged: number;
  /** Per tenant: the state of its checkpoint after the fuzz. */
  checkpoints_after_fuzz: Record<string, string>;
  /** The daemons that died, by name. */
  crashed: string[];
  duration_ms: number;
  logs: string | undefined;
}

/** The acceptance of issue 10: nothing forged, read, served or crashed, and a checkpoint after the fuzz. */
export function passed(r: SecurityReport, fuzzCount: number): boolean {
  return (
    r.forgeries_accepted === 0 &&
    !r.forgery_state_changed &&
    r.reads_succeeded === 0 &&
    r.api_denials_missing === 0 &&
    r.fuzzed === fuzzCount &&
    r.crashes === 0 &&
    r.checkpoint_after_fuzz
  );
}


/** Takes an app checkpoint of the tenant's plan and waits until it ends; its final state. */
async function checkpoint(client: CoordinatorClient, planId: string, timeoutMs: number): Promise<{ id: number; state: string }> {
  const taken = await client.takeSnapshot({ planId, level: 'app', options: { timeoutMs } });
  if (!taken.ok) return { id: 0, state: `refused: ${taken.error.codeName}: ${taken.error.message}` };
  const deadline = Date.now() + timeoutMs + 10_000;
  while (Date.now() < deadline) {
    const got = await client.getCheckpoint(taken.value.id);
    if (got.ok && (got.value.state === 'completed' || got.value.state === 'aborted')) return { id: taken.value.id, state: got.value.state === 'aborted' ? `aborted: ${got.value.failureReason ?? ''}: ${got.value.failureDetail ?? ''}` : 'completed' };
    await sleep(100);
  }
  return { id: taken.value.id, state: 'did not end' };
}

/** From the fuzz's last message to the checkpoint after it: two of the suite's heartbeat intervals. */
const AFTER_FUZZ_SETTLE_MS = 1_000;

export async function runSecurity(o: SecurityOptions, log: Logger): Promise<SecurityReport> {
  const started = Date.now();
  const system: SecuredSystem = await startSecuredSystem(log);
  let keep = o.keepLogs;
  try {
    const baseline = {} as Record<Tenant, number>;
    for (const tenant of TENANTS) {
      const c = await checkpoint(system.service, system.plans[tenant].id, o.checkpointTimeoutMs);
      if (c.state !== 'completed') throw new Error(`the system does not work before any attack: checkpoint of ${tenant}: ${c.state}`);
      baseline[tenant] = c.id;
    }
    log.info({ baseline }, 'one checkpoint per tenant completed before the attacks');

    log.info('forgery and reads sections');
    const forgery = await forgerySection(system, log);

    log.info({ count: o.fuzzCount, seed: o.seed }, 'fuzz section');
    const fuzzed = await fuzz((p) => (p.role === 'coordinator' ? system.asCoordinator : system.asAgent(p.tenant, p.server)), fuzzTargets(TENANTS.map((t) => system.plans[t])), { count: o.fuzzCount, seed: o.seed, maxPayloadBytes: NATS_MAX_PAYLOAD_BYTES }, log);
    // Mutated heartbeats (published with each agent's credential) may have told the coordinator a
    // wrong fence last; the agents' next heartbeats (every 500 ms here) tell the true one, which the
    // next checkpoint id goes above (docs/security.md, "the checkpoint after the fuzz").
    await new Promise((resolve) => setTimeout(resolve, AFTER_FUZZ_SETTLE_MS));
    const after = Object.fromEntries(await Promise.all(TENANTS.map(async (t) => [t, (await checkpoint(system.service, system.plans[t].id, o.checkpointTimeoutMs)).state] as const)));
    log.info({ after }, 'checkpoints after the fuzz');

    log.info('API section');
    const api = await apiSection(system, baseline, log);

    const daemons = system.daemons();
    const crashed = daemons.filter((d) => d.crashed());
    for (const d of crashed) log.error({ daemon: d.name, log: d.log().slice(-3_000) }, 'daemon died');
    const report: SecurityReport = {
      forgeries_tried: forgery.forgeriesTried,
      forgeries_accepted: forgery.forgeriesAccepted,
      reads_tried: forgery.readsTried,
      reads_succeeded: forgery.readsSucceeded,
      api_denials_expected: api.expected,
      api_denials_missing: api.missing,
      fuzzed: fuzzed.fuzzed,
      crashes: crashed.length,
      checkpoint_after_fuzz: Object.values(after).every((s) => s === 'completed'),
      forgery_state_changed: forgery.stateChanged,
      forgery_controls_sent: forgery.controlsSent,
      forgery_controls_delivered: forgery.controlsDelivered,
      forgery_findings: forgery.findings,
      seed: o.seed,
      api_methods: api.methods,
      api_missing: api.findings,
      fuzz_subjects: fuzzed.subjects,
      fuzz_by_subject_kind: fuzzed.bySubjectKind,
      fuzz_by_mutation: fuzzed.byMutation,
      fuzz_malformed_logged: 0,
      checkpoints_after_fuzz: after,
      crashed: crashed.map((d) => d.name),
      duration_ms: 0,
      logs: undefined,
    };
    // The daemons write their bad-traffic summaries as they stop: count after.
    await system.stop(true);
    report.fuzz_malformed_logged = daemons.reduce((n, d) => n + malformedLogged(readFileSync(d.logFile, 'utf8')), 0);
    keep ||= !passed(report, o.fuzzCount);
    report.logs = keep ? system.dir : undefined;
    report.duration_ms = Date.now() - started;
    return report;
  } catch (error) {
    keep = true;
    log.error({ logs: system.dir }, 'the run failed: the daemons\' logs are kept');
    throw error;
  } finally {
    await system.stop(keep);
  }
}
