/**
 * snapctl with several coordinators (`--address a:50051,b:50051`, docs/ha.md): a call that one of
 * them answers UNAVAILABLE (a standby's NOT_LEADER, or one that cannot be reached) is made again on
 * the next, and the one that answered stays the first choice for the calls after. Only calls that
 * return a CallResult are retried this way; a stream (watch) goes to the current choice.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

interface Closable {
  close(): void;
}

function isUnavailable(result: unknown): boolean {
  if (typeof result !== 'object' || result === null || !('ok' in result) || result.ok !== false) return false;
  const error = (result as { error?: { code?: unknown } }).error;
  return error?.code === GrpcStatus.UNAVAILABLE;
}

/** A client of the same shape that tries `addresses` in turn while they answer UNAVAILABLE. */
export function failoverClient<C extends Closable>(addresses: readonly string[], connect: (address: string) => C): C {
  const clients = addresses.map(connect);
  let current = 0;
  const first = clients[0];
  if (first === undefined) throw new Error('failoverClient needs at least one address');
  return new Proxy(first, {
    get(_target, prop) {
      if (prop === 'close') return () => clients.forEach((c) => c.close());
      const chosen = clients[current] as C;
      const member: unknown = Reflect.get(chosen, prop, chosen);
      if (typeof member !== 'function') return member;
      return (...args: unknown[]): unknown => {
        const start = current;
        const attempt = (i: number): unknown => {
          const client = clients[i] as C;
          const out: unknown = (Reflect.get(client, prop, client) as (...a: unknown[]) => unknown).apply(client, args);
          if (!(out instanceof Promise)) return out;
          return out.then((result: unknown) => {
            const next = (i + 1) % clients.length;
            if (isUnavailable(result) && next !== start) return attempt(next);
            if (!isUnavailable(result)) current = i;
            return result;
          });
        };
        return attempt(start);
      };
    },
  });
}
