/**
 * How snapctl words a failed call for a person. The coordinator's own messages are shown as they are
 * (they name what is wrong); what is rewritten is what a person cannot act on: grpc-js's transport
 * texts ("No connection established. Last error: ..."), a bare "Deadline exceeded", a NOT_FOUND
 * that retention explains, a busy plan (which snapctl command shows or stops what is in the way), and
 * API field names where snapctl has a flag.
 */
import type { CallError } from '../grpc/client.js';
import type { Command } from './args.js';

export interface ErrorContext {
  /** The coordinator's address snapctl used. */
  readonly address: string;
  readonly command: Command['kind'];
  /** How long snapctl waited for this call, for DEADLINE_EXCEEDED. */
  readonly callTimeoutMs: number;
}

/** Commands that name one checkpoint by its id. */
const ABOUT_ONE_CHECKPOINT: ReadonlySet<Command['kind']> = new Set(['show', 'verify', 'rollback', 'restore', 'delete', 'cancel', 'pin', 'unpin']);

/** grpc-js's words for "there is no coordinator there", as opposed to the coordinator's own UNAVAILABLE. */
const NO_CONNECTION = /No connection established|failed to connect|Connection dropped|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|Name resolution failed/i;

function connectionReason(message: string): string {
  if (/ECONNREFUSED/.test(message)) return 'connection refused';
  if (/ENOTFOUND|Name resolution failed/i.test(message)) return 'unknown host';
  if (/EHOSTUNREACH/.test(message)) return 'host unreachable';
  if (/ETIMEDOUT/.test(message)) return 'connection timed out';
  const last = /Last error: (.*)$/.exec(message);
  return last?.[1] ?? message;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** One line (no "snapctl:" prefix, no newline) saying what went wrong and what to do about it. */
export function errorText(error: CallError, cx: ErrorContext): string {
  if (error.codeName === 'UNAVAILABLE' && NO_CONNECTION.test(error.message)) {
    return (
      `cannot reach the coordinator at ${cx.address} (${connectionReason(error.message)}). ` +
      'Is it running? Start the demo with `npm start`, or point snapctl at your coordinator with --address HOST:PORT (or SNAPCTL_ADDRESS).'
    );
  }
  if (error.codeName === 'DEADLINE_EXCEEDED') {
    const waited = `the coordinator at ${cx.address} did not answer within ${seconds(cx.callTimeoutMs)}`;
    if (cx.command === 'rollback' || cx.command === 'restore') {
      return `${waited}; the ${cx.command} may still be running there: check \`snapctl agents\` and \`snapctl list\` before retrying`;
    }
    return waited;
  }
  if (error.reason === 'PLAN_BUSY') {
    const inFlight = /checkpoints? ([\d, ]+) of plan/.exec(error.message)?.[1]?.split(', ')[0];
    return `${error.codeName}: ${error.message}${inFlight !== undefined ? ` (\`snapctl show ${inFlight}\` follows it; \`snapctl cancel ${inFlight}\` stops it)` : ''}`;
  }
  if (error.codeName === 'NOT_FOUND' && ABOUT_ONE_CHECKPOINT.has(cx.command) && /\bcheckpoint \d+/.test(error.message)) {
    return `${error.codeName}: ${error.message} (it may have been deleted by retention: the coordinator keeps only the newest completed checkpoints of each plan; \`snapctl list\` shows those it has)`;
  }
  // The coordinator speaks of the API's field; a snapctl user sets it with a flag.
  const message = error.message.replace(/\bwith delete_checkpoints set\b/g, 'with --with-checkpoints').replace(/\bdelete_checkpoints\b/g, '--with-checkpoints');
  return `${error.codeName}: ${message}`;
}
