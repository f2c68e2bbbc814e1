/**
 * The operator's part of a log channel: the JetStream stream that carries it, made before the agents
 * start (they check it is there). File storage and limits retention: the stream keeps the messages a
 * rollback replays until its limits drop them (docs/channels.md, *Retention*).
 */
import { RetentionPolicy, StorageType, type NatsConnection } from 'nats';
import type { PlanInput } from '../../coordinator/model.js';

export async function createLogStreams(nc: NatsConnection, plan: PlanInput): Promise<void> {
  const streams = new Set(plan.channels.flatMap((c) => (c.kind === 'log' && c.logStream !== undefined ? [c.logStream] : [])));
  if (streams.size === 0) return;
  const jsm = await nc.jetstreamManager();
  for (const name of streams) {
    await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File, retention: RetentionPolicy.Limits });
  }
}
