/**
 * Negative controls: each flag re-creates, inside the real control-plane machines, one defect that
 * was found by hand in the live system (issue 9). Production never sets them; the control-plane
 * fault simulator (`npm run vopr -- --negative-control NAME`) does, and must then report failures:
 * that is what shows its invariants can fail. A machine takes the set in its config and consults
 * only the flags that concern it.
 */
export const NEGATIVE_CONTROLS = [
  /** Defect 1: the agent keeps one epoch for all its plans (a rollback of plan A fences plan B). */
  'epoch-per-agent',
  /** Defect 2: rollback bumps the plan's epoch before it has validated the checkpoint's parts. */
  'bump-before-validate',
  /** Defect 3b: a control message is sent once and never resent, so a lost one is never answered. */
  'send-once',
  /** Defect 4: rollback and restore ignore the idempotency key, so a retry runs twice. */
  'ignore-idempotency-key',
  /** Defect 5: admission checks the in-flight count, then acts after a delay (check-then-act). */
  'check-then-act-admission',
  /** Defect 6: volume snapshots that a backend finishes after the round aborted are not deleted. */
  'leak-late-volume-snapshots',
  /** Issue 13: a staged checkpoint's finish is taken without checking the caller's snapshot times against the frozen window. */
  'skip-staged-window-check',
] as const;

export type NegativeControl = (typeof NEGATIVE_CONTROLS)[number];

export type NegativeControls = ReadonlySet<NegativeControl>;

export const NO_NEGATIVE_CONTROLS: NegativeControls = new Set();

export function isNegativeControl(name: string): name is NegativeControl {
  return (NEGATIVE_CONTROLS as readonly string[]).includes(name);
}
