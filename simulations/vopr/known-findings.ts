/**
 * Defects of the machines that this simulator found and that are still open, each with the seed that
 * shows it. A violation the world recognises as one of them is reported apart ("known findings")
 * and does not fail the run, so that the CI run stays a test of everything else; the entry goes
 * when the owner's fix lands (then the seed must pass). docs/vopr.md lists them with their traces.
 */
export const KNOWN_FINDINGS = {
  'late-state-after-abort': {
    owner: 'src/control/round.ts, coordinator/checkpoints/recover.ts (ROUND, API)',
    seed: 8,
    what:
      'an app state stored after its round aborted and cleaned up (the trigger arrived late, or the abort notice was lost) is deleted by ' +
      "the round's late sweep (timeoutMs + settleMs after its end), a timer of the coordinator process: when the coordinator dies before it fires, " +
      'no one deletes the object (recovery looks at rounds in flight only)',
  },

  'volume-snapshots-of-dead-coordinator': {
    owner: 'src/control/recovery.ts and coordinator/checkpoints/recover.ts (API), src/control/round.ts (ROUND)',
    seed: 9,
    what:
      'volume snapshots of a round that had already ended (aborted) when its coordinator died, whose late backend answer or whose ' +
      'deletion the crash cut, are never deleted: recovery sweeps the backend only for records still in flight',
  },


  'opaque-stopped-after-agent-restart': {
    owner: 'agent/opaque.ts and src/control/agent-control.ts (AGENT), src/control/round-opaque.ts (ROUND)',
    seed: 19,
    what:
      'an opaque app whose resume was lost (resumes are sent once, best effort) waits for the agent to resume it at its quiesce ' +
      'deadline; that timer lives in the agent process, so an agent that restarts meanwhile leaves the app stopped for ever',
  },
  'preempt-while-committing': {
    owner: 'src/control/admission.ts (API), src/control/round.ts (ROUND)',
    seed: 166,
    what:
      'a manual take preempts a periodic checkpoint that is already committing: admission gives its slot away at once, the round ' +
      'refuses the cancel (it is committing) and runs on, so the plan has more than max_concurrent checkpoints in flight',
  },
  'paused-after-recovered-needs-repair': {
    owner: 'src/control/operation-recovery.ts (API), agent (AGENT)',
    seed: 1998,
    what:
      'a rollback whose coordinator died after its agents restored (apps paused) and before the resume is ended needs-repair by the ' +
      "next coordinator's recovery; the apps stay paused past the restore pause's deadline until the plan is repaired by another rollback",
  },
} as const;

export type KnownFinding = keyof typeof KNOWN_FINDINGS;
