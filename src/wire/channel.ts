/**
 * Envelope and Credit (the data channels): proto fields <-> `Envelope` / `Credit`. These are the
 * hot path (one per app message), so the mapping stays flat and allocation-light.
 */
import { type FieldReader, type Fields, plainBytes } from './fields.js';
import { oneofCase } from './oneof.js';
import type { ChannelItem, Credit, Envelope } from './types.js';

const bodyMembers = ['payload', 'barrier', 'run'] as const;

export function readEnvelope(reader: FieldReader, message: Fields): Envelope {
  const channel = reader.channel(message.channel, 'channel');
  const epoch = reader.uint(message.epoch, 'epoch');
  const body = oneofCase(reader, message, 'body', bodyMembers);
  if (body === 'barrier') {
    const barrier = reader.message(message.barrier, 'barrier');
    const checkpointId = reader.positive(barrier.checkpoint_id, 'barrier.checkpoint_id');
    const barrierEpoch = reader.uint(barrier.epoch, 'barrier.epoch');
    if (barrierEpoch !== epoch) reader.fail('barrier.epoch', `must equal the envelope's epoch ${epoch}, got ${barrierEpoch}`);
    const read: Envelope = { type: 'barrier', channel, epoch, afterSeq: reader.uint(message.seq, 'seq'), checkpointId };
    return reader.bool(barrier.overtaking, 'barrier.overtaking') ? Object.assign(read, { overtaking: true as const }) : read;
  }
  const seq = reader.positive(message.seq, 'seq');
  if (body === 'run') {
    const run = reader.message(message.run, 'run');
    const payloads = reader.list(run.payloads, 'run.payloads').map((p, i) => plainBytes(reader.bytes(p, `run.payloads[${i}]`)));
    if (payloads.length < 2) reader.fail('run.payloads', `must hold at least two messages, got ${payloads.length}`);
    if (payloads.length - 1 > Number.MAX_SAFE_INTEGER - seq) reader.fail('seq', `a run of ${payloads.length} from ${seq} goes past ${Number.MAX_SAFE_INTEGER}`);
    return { type: 'run', channel, epoch, firstSeq: seq, payloads };
  }
  const payload = body === 'payload' ? plainBytes(reader.bytes(message.payload, 'payload')) : new Uint8Array(0);
  return { type: 'message', channel, epoch, seq, payload };
}

/** The proto fields for `envelope`; not validated here (the encoder runs `readEnvelope` on them). */
export function envelopeFields(envelope: Envelope): Fields {
  const epoch = envelope.epoch === 0 ? undefined : envelope.epoch;
  if (envelope.type === 'barrier') {
    return {
      channel: envelope.channel,
      epoch,
      seq: envelope.afterSeq === 0 ? undefined : envelope.afterSeq,
      barrier: { checkpoint_id: envelope.checkpointId, epoch, overtaking: envelope.overtaking === true ? true : undefined },
    };
  }
  if (envelope.type === 'run') return { channel: envelope.channel, epoch, seq: envelope.firstSeq, run: { payloads: envelope.payloads } };
  return { channel: envelope.channel, epoch, seq: envelope.seq, payload: envelope.payload };
}

/** A message or barrier as it is; a run as its messages, in order. */
export function forEachItem(envelope: Envelope, fn: (item: ChannelItem) => void): void {
  if (envelope.type !== 'run') {
    fn(envelope);
    return;
  }
  const { channel, epoch, firstSeq, payloads } = envelope;
  for (let i = 0; i < payloads.length; i++) fn({ type: 'message', channel, epoch, seq: firstSeq + i, payload: payloads[i] as Uint8Array });
}

export function readCredit(reader: FieldReader, message: Fields): Credit {
  const credit: Credit = {
    channel: reader.channel(message.channel, 'channel'),
    epoch: reader.uint(message.epoch, 'epoch'),
    receivedSeq: reader.uint(message.received_seq, 'received_seq'),
    window: reader.uint32(message.window, 'window'),
  };
  const resendFrom = reader.uint(message.resend_from, 'resend_from');
  return resendFrom === 0 ? credit : { ...credit, resendFrom };
}

export function creditFields(credit: Credit): Fields {
  return {
    channel: credit.channel,
    epoch: credit.epoch === 0 ? undefined : credit.epoch,
    received_seq: credit.receivedSeq === 0 ? undefined : credit.receivedSeq,
    window: credit.window === 0 ? undefined : credit.window,
    resend_from: credit.resendFrom === undefined || credit.resendFrom === 0 ? undefined : credit.resendFrom,
  };
}
