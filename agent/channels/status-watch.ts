/**
 * A channel's watch of its connection's status events, which it stops when it closes. nats.js drops
 * a status listener only when the listener's iterator ends, and an iterator waited on in a
 * `for await` ends only at the next event: without the stop, every channel closed (restores and
 * rollbacks reopen them) stayed registered, with everything it holds, until the connection's next
 * status event, which on a steady connection may be days away.
 */
import type { NatsConnection, QueuedIterator, Status } from 'nats';

export function watchStatus(nc: NatsConnection): QueuedIterator<Status> {
  // nats.js types status() as an AsyncIterable; what it returns is its QueuedIterator.
  return nc.status() as QueuedIterator<Status>;
}
