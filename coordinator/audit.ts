/**
 * The audit trail of the gRPC API: every call of a method that changes something (grpc/auth.ts
 * isMutating), refused or not, is one JSON message on the JetStream stream `snap-audit`: who, their
 * tenant, the method, its arguments, the status code and the time. `snapctl audit` reads it.
 *
 * Arguments are the request as the caller sent it, cut to AUDIT_ARGUMENTS_CHARS_MAX characters;
 * no request field of the API carries a credential (tokens travel in metadata, never here).
 */
import { DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager, type NatsConnection } from 'nats';
import type { Logger } from 'pino';

export const AUDIT_STREAM = 'snap-audit';
export const AUDIT_SUBJECT = 'snap.audit';
export const AUDIT_ARGUMENTS_CHARS_MAX = 4_096;
/** How long entries are kept. */
export const AUDIT_MAX_AGE_MS = 90 * 24 * 3_600_000;

export interface AuditEntry {
  /** ISO 8601, the coordinator's clock when the call ended. */
  readonly time: string;
  /** The authenticated identity; "" when the call was refused before one was known. */
  readonly identity: string;
  readonly tenant: string;
  readonly method: string;
  /** The request's JSON, cut to AUDIT_ARGUMENTS_CHARS_MAX characters. */
  readonly arguments: string;
  /** The gRPC status code's name: OK, PERMISSION_DENIED, NOT_FOUND, ... */
  readonly code: string;
}

export interface AuditSink {
  record(entry: AuditEntry): void;
}

export function auditArguments(request: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(request, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? '';
  } catch {
    text = '(not serializable)';
  }
  return text.length > AUDIT_ARGUMENTS_CHARS_MAX ? `${text.slice(0, AUDIT_ARGUMENTS_CHARS_MAX)}...` : text;
}

async function ensureStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  try {
    await jsm.streams.info(AUDIT_STREAM);
  } catch {
    await jsm.streams.add({
      name: AUDIT_STREAM,
      subjects: [AUDIT_SUBJECT],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: AUDIT_MAX_AGE_MS * 1_000_000,
    });
  }
}

/**
 * A sink appending to `snap-audit` (created when missing). Appends are not awaited by the call: a
 * failed one is an error log line with the entry (never the call's answer changed).
 */
export async function jetStreamAudit(nc: NatsConnection, options: { replicas: number; logger: Logger }): Promise<AuditSink> {
  await ensureStream(await nc.jetstreamManager(), options.replicas);
  const js = nc.jetstream();
  const log = options.logger.child({ component: 'audit' });
  return {
    record(entry) {
      js.publish(AUDIT_SUBJECT, JSON.stringify(entry)).then(
        () => undefined,
        (error: unknown) => log.error({ entry, err: error }, `audit entry not stored: ${error instanceof Error ? error.message : String(error)}`),
      );
    },
  };
}

/** The entries since `sinceMs` (unix ms; absent: all), of one tenant when given, oldest first. */
export async function readAudit(nc: NatsConnection, filter: { tenant?: string; sinceMs?: number }): Promise<AuditEntry[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(AUDIT_STREAM);
  if (info.state.messages === 0) return [];
  const js = nc.jetstream();
  const consumer = await js.consumers.get(AUDIT_STREAM, {
    ...(filter.sinceMs !== undefined ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(filter.sinceMs).toISOString() } : {}),
  });
  const out: AuditEntry[] = [];
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 256, expires: 1_000 });
    let got = 0;
    let pending = 0;
    for await (const m of batch) {
      got++;
      pending = m.info.pending;
      const entry = m.json<AuditEntry>();
      if (filter.tenant === undefined || entry.tenant === filter.tenant) out.push(entry);
    }
    if (got === 0 || pending === 0) return out;
  }
}
