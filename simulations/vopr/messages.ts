/** What travels between the simulated coordinator and agents: the real wire types, and how the trace names them. */
import type { AgentEvent, Control } from '../../src/wire/index.js';

export function describeControl(c: Control): string {
  const plan = c.plan === '' ? '' : ` ${c.plan}@${c.epoch}`;
  switch (c.type) {
    case 'ping':
    case 'hello':
      return c.type;
    default:
      return `${c.type}${plan} ckpt ${c.checkpointId} [${c.requestId}]`;
  }
}

export function describeEvent(e: AgentEvent): string {
  const reply = e.inReplyTo !== undefined ? ` re ${e.inReplyTo}` : '';
  switch (e.type) {
    case 'heartbeat':
      // Once a second from every agent: in the trace they would hide everything else.
      return '';
    case 'register':
    case 'resumed':
      return `${e.type}${reply}`;
    case 'ack':
    case 'progress':
    case 'quiesced':
    case 'captured':
      return `${e.type} ckpt ${e.checkpointId} ${e.app}${reply}`;
    case 'decline':
      return `decline ckpt ${e.checkpointId}${e.app !== undefined ? ` ${e.app}` : ''} ${e.reason}${reply}`;
    case 'thawed':
      return `thawed ckpt ${e.checkpointId}${e.byWatchdog ? ' by watchdog' : ''}${reply}`;
    default:
      return `${e.type} ckpt ${e.checkpointId}${reply}`;
  }
}
