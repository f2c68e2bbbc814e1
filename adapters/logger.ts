/**
 * The daemons' root logger: pino JSON lines on stdout, with two repairs pino does not make itself.
 *
 * - A child that binds a key its parent bound (`component`, as every component's child logger does
 *   under the daemon's own) would print the key twice in one line; JSON readers then keep one of
 *   the two at random. The child's binding replaces the parent's instead: the line names the
 *   innermost component.
 * - A logged object's `level`, `time`, `pid`, `hostname` or `msg` would print beside pino's own key
 *   of that name (a freeze logged its consistency level as `level: "crash"`, and log readers took
 *   that as the line's level). Such a key is renamed with a trailing underscore (`level_`).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

const RESERVED = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** The bindings a child logger prints, with a key bound again keeping its newest value, in place. */
function deduplicated(chindings: string): string {
  if (chindings === '') return chindings;
  const bindings = JSON.parse(`{${chindings.slice(1)}}`) as Record<string, unknown>;
  return `,${JSON.stringify(bindings).slice(1, -1)}`;
}

export interface RootLoggerOptions {
  readonly level: string;
  /** Bound on every line, e.g. `{ component: 'agent' }`. */
  readonly bindings?: Record<string, unknown>;
  /** Where the lines go; default stdout. */
  readonly destination?: DestinationStream;
}

export function rootLogger(options: RootLoggerOptions): Logger {
  const chindingsSym = pino.symbols.chindingsSym as unknown as string;
  const pinoOptions = {
      level: options.level,
      formatters: {
        log(object: Record<string, unknown>): Record<string, unknown> {
          if (!Object.keys(object).some((k) => RESERVED.has(k))) return object;
          return Object.fromEntries(Object.entries(object).map(([k, v]) => [RESERVED.has(k) ? `${k}_` : k, v]));
        },
      },
      onChild(child: Logger): void {
        const holder = child as unknown as Record<string, string>;
        holder[chindingsSym] = deduplicated(holder[chindingsSym] ?? '');
      },
  };
  const base = options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
  return options.bindings ? base.child(options.bindings) : base;
}
