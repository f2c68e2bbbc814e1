/**
 * Defects of the machines that this simulator found and that are still open, each with the seed that
 * shows it. A violation the world recognises as one of them is reported apart ("known findings")
 * and does not fail the run, so that the CI run stays a test of everything else; the entry goes
 * when the owner's fix lands (then the seed must pass). docs/vopr.md lists them with their traces.
 */
export const KNOWN_FINDINGS = {
  'late-state-after-abort': {
    owner: 'src/control/round-app.ts (ROUND)',
    seed: 1,
    what:
      'an app state stored after its round aborted and cleaned up (the trigger arrived late, or the abort notice was lost) is never deleted: ' +
      'the round rejects the late ack and no one deletes its object',
  },
  'commit-outcome-unknown': {
    owner: 'src/control/round.ts and coordinator/checkpoints/runner.ts (ROUND)',
    seed: 16,
    what:
      'the completed record may land although the round aborted: a commit write whose reply was lost, or a cancel while ' +
      'the commit write is in flight, lets the clean-up delete the parts of a record that says completed',
  },
  'volume-snapshots-of-dead-coordinator': {
    owner: 'src/control/recovery.ts and coordinator/checkpoints/recover.ts (API), src/control/round.ts (ROUND)',
    seed: 5,
    what:
      'volume snapshots that the backend finishes after the coordinator that asked for them died (or that a round took but had not ' +
      'recorded yet when it died) are never deleted: recovery deletes only what the records list',
  },
  'operation-orphaned-by-crash': {
    owner: 'coordinator/checkpoints/operations.ts (OPS), src/control/recovery.ts (API)',
    seed: 101,
    what:
      'a rollback or restore under way when its coordinator dies is neither finished nor failed by the next one: its record stays ' +
      'in its phase and the apps it restored stay paused until an operator rolls back again',
  },
  'delete-cut-short': {
    owner: 'coordinator/checkpoints/service.ts delete (API)',
    seed: 2322,
    what:
      'a DeleteCheckpoint cut short by a coordinator crash after it deleted the parts and before it deleted the record leaves a record ' +
      'that says completed without its parts (nothing finishes the delete)',
  },
  'pin-races-delete': {
    owner: 'coordinator/checkpoints/service.ts delete and pin (API)',
    seed: 2002,
    what:
      'a PinCheckpoint that lands while a DeleteCheckpoint deletes the parts succeeds, and the pinned checkpoint loses its parts: ' +
      'the delete checks the pin, then deletes parts, and changes the record only at the end',
  },
  'stale-restore-after-agent-restart': {
    owner: 'src/control/agent-control.ts (AGENT), src/control/operation.ts (OPS)',
    seed: 422,
    what:
      'an agent that restarted after it restored forgets the request ids it answered; a resend of the restore still on the wire ' +
      'arrives after the resume and is carried out again (same epoch, so not fenced): the apps are restored again and stay paused',
  },
  'opaque-stopped-after-agent-restart': {
    owner: 'agent/opaque.ts and src/control/agent-control.ts (AGENT), src/control/round-opaque.ts (ROUND)',
    seed: 19,
    what:
      'an opaque app whose resume was lost (resumes are sent once, best effort) waits for the agent to resume it at its quiesce ' +
      'deadline; that timer lives in the agent process, so an agent that restarts meanwhile leaves the app stopped for ever',
  },
} as const;

export type KnownFinding = keyof typeof KNOWN_FINDINGS;
