/**
 * Idempotency of rollback and restore (defect 4): a call carrying a key that an earlier call used
 * gets that call's result, or joins it while it runs, and is never executed twice; the same key
 * with other arguments is a caller's mistake, refused naming both. The claim of a key is atomic in
 * the store (create-if-absent); this is the decision on what the claim found.
 */
import type { NegativeControls } from './negative-controls.js';
import { OPERATION_FINAL_STATES, type OperationOutcome, type OperationState } from './operation.js';

/** What the store holds of the operation that claimed a key. */
export interface KeyedOperation {
  readonly id: string;
  /** The call in words (kind, checkpoint, options, mapping): equal words, equal calls. */
  readonly request: string;
  readonly state: OperationState;
  /** Present once the operation ended. */
  readonly outcome?: OperationOutcome;
}

export type KeyDecision =
  /** Nobody used the key (or, under the negative control, it is ignored): run the operation. */
  | { readonly type: 'run' }
  /** The key's operation ended: answer with its outcome. */
  | { readonly type: 'replay'; readonly operationId: string; readonly outcome: OperationOutcome }
  /** The key's operation is still running: wait for its outcome. */
  | { readonly type: 'join'; readonly operationId: string }
  | { readonly type: 'conflict'; readonly message: string };

export function decideKeyed(key: string, request: string, existing: KeyedOperation | undefined, negativeControls: NegativeControls): KeyDecision {
  // The defect kept as a negative control: every retry runs again.
  if (existing === undefined || negativeControls.has('ignore-idempotency-key')) return { type: 'run' };
  if (existing.request !== request) {
    return {
      type: 'conflict',
      message: `idempotency key ${JSON.stringify(key)} was used for ${existing.request} (operation ${existing.id}); this call asks for ${request}: use another key for another call`,
    };
  }
  if (OPERATION_FINAL_STATES.includes(existing.state)) {
    if (existing.outcome === undefined) throw new Error(`operation ${existing.id} is ${existing.state} without an outcome`);
    return { type: 'replay', operationId: existing.id, outcome: existing.outcome };
  }
  return { type: 'join', operationId: existing.id };
}
