/**
 * A short run of the security suite (`npm run security-check`, bench/security/) as a real process:
 * NATS in operator mode, a coordinator serving TLS with tokens, two tenants with three agents each,
 * every daemon a process. Its one JSON line must say that no forgery or foreign read got through,
 * that every RPC was refused each way it should be, that the malformed messages reached the daemons
 * (their logs count them) and that none died.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnTsx, type Child } from '../support/live-processes.js';

const FUZZ = 5_000;
const SEED = 3;

interface Report {
  readonly [key: string]: unknown;
  readonly fuzzed: number;
  readonly fuzz_malformed_logged: number;
  readonly fuzz_by_subject_kind: Record<string, number>;
  readonly api_denials_expected: number;
  readonly api_denials_missing: number;
  readonly api_methods: number;
  readonly crashes: number;
  readonly checkpoint_after_fuzz: boolean;
  readonly forgeries_tried: number;
  readonly forgeries_accepted: number;
  readonly reads_tried: number;
  readonly reads_succeeded: number;
  readonly forgery_controls_sent: number;
  readonly forgery_controls_delivered: number;
  readonly forgery_state_changed: boolean;
}

let run: Child;
let report: Report;
let why: string;
let exitCode: number | null;

beforeAll(async () => {
  run = spawnTsx('security suite', 'bench/security/main.ts', ['--fuzz', String(FUZZ), '--seed', String(SEED), '--checkpoint-timeout-ms', '10000', '--json', '--log-level', 'warn']);
  // About 50 s on an idle 2-core machine; several times that on a loaded one.
  const timer = setTimeout(() => void run.stop(), 280_000);
  exitCode = (await run.exited).code;
  clearTimeout(timer);
  const lines = run.stdout().split('\n').filter((l) => l !== '');
  why = `${run.stdout()}\n${run.stderr().slice(-5_000)}`;
  expect(lines, why).toHaveLength(1);
  report = JSON.parse(lines[0] as string) as Report;
}, 300_000);

afterAll(async () => {
  await run?.stop();
  // The suite keeps its daemons' logs when something got through; `why` has what a failure needs.
  if (typeof report?.logs === 'string' && report.logs.includes('security-suite-')) rmSync(report.logs, { recursive: true, force: true });
});

describe('the security suite, short', () => {
  it('prints the figures of the issue, with the seed and every fuzzed message', () => {
    for (const key of ['forgeries_tried', 'forgeries_accepted', 'reads_tried', 'reads_succeeded', 'api_denials_expected', 'api_denials_missing', 'fuzzed', 'crashes', 'checkpoint_after_fuzz']) expect(report, why).toHaveProperty(key);
    expect(report.seed).toBe(SEED);
    expect(report.fuzzed).toBe(FUZZ);
  });

  it('every RPC is refused without credentials, beyond its role and on the other tenant: no denial missing', () => {
    expect(report.api_methods).toBeGreaterThanOrEqual(25);
    // 4 bad credentials x every method, the roles below each method's, the other tenant's ids both ways.
    expect(report.api_denials_expected).toBeGreaterThanOrEqual(4 * report.api_methods + 40);
    expect(report.api_denials_missing, why).toBe(0);
  });

  it('the malformed messages reach every kind of subject and the daemons count them; none dies', () => {
    for (const kind of ['evt', 'ctl', 'trg', 'ch', 'cr']) expect(report.fuzz_by_subject_kind[kind], kind).toBeGreaterThan(0);
    // Bit flips that still decode are not malformed; random bytes and cut messages mostly are.
    expect(report.fuzz_malformed_logged, why).toBeGreaterThan(FUZZ / 4);
    expect(report.crashes, why).toBe(0);
  });

  it("forgery: every message kind onto the other tenant's and the other servers' subjects is refused by NATS and reaches no one; no foreign read succeeds", () => {
    expect(report.forgery_controls_delivered).toBe(report.forgery_controls_sent);
    expect(report.forgery_state_changed, why).toBe(false);
    expect(report.forgeries_tried).toBeGreaterThanOrEqual(50);
    expect(report.forgeries_accepted, why).toBe(0);
    expect(report.reads_tried).toBeGreaterThanOrEqual(10);
    expect(report.reads_succeeded, why).toBe(0);
  });

  it('the exit code says whether everything held', () => {
    const held = report.forgeries_accepted === 0 && !report.forgery_state_changed && report.reads_succeeded === 0 && report.api_denials_missing === 0 && report.crashes === 0 && report.checkpoint_after_fuzz && report.fuzzed === FUZZ;
    expect(exitCode).toBe(held ? 0 : 1);
  });

  // Made-up checkpoint ids, misplaced barriers and refused restores no longer stop the plan
  // (docs/security.md, "The checkpoint after the fuzz").
  it('a checkpoint of each tenant completes after the fuzz', () => {
    expect(report.checkpoint_after_fuzz, why).toBe(true);
  });
});
