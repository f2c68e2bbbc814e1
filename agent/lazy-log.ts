/**
 * A pino child logger made only when a line is written at an enabled level. The agent binds the
 * request and checkpoint id to a child per control message; making the child (pino serialises the
 * bindings) cost more than handling the message, and most messages log nothing at the usual level.
 * A small class rather than a Proxy of the logger: a Proxy's trap on every property read showed in
 * the agents' profile once per trigger.
 */
import { pino, type Logger } from 'pino';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/**
 * pino's standard level values. The agent's loggers use no custom levels, so comparing with
 * `levelVal` says what `isLevelEnabled` says, without its lookups (a few per trigger, 2 % of the
 * agents' samples at 1,000 agents).
 */
const LEVEL_VALUES: Readonly<Record<Level, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export class LazyLog {
  private child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}

  trace(obj: object | string, msg?: string): void {
    this.line('trace', obj, msg);
  }

  debug(obj: object | string, msg?: string): void {
    this.line('debug', obj, msg);
  }

  info(obj: object | string, msg?: string): void {
    this.line('info', obj, msg);
  }

  warn(obj: object | string, msg?: string): void {
    this.line('warn', obj, msg);
  }

  error(obj: object | string, msg?: string): void {
    this.line('error', obj, msg);
  }

  fatal(obj: object | string, msg?: string): void {
    this.line('fatal', obj, msg);
  }

  private line(level: Level, obj: object | string, msg: string | undefined): void {
    if (!levelEnabled(this.parent, level)) return;
    this.child ??= this.parent.child(this.bindings);
    if (typeof obj === 'string') this.child[level](obj);
    else this.child[level](obj, msg);
  }
}

/**
 * Where pino keeps a logger's level value: its `levelVal` getter returns exactly this. Read directly
 * because a getter called on the 500 loggers of different shapes a benchmark worker holds went
 * megamorphic: 7-9 % of the trigger's and the ack's samples at 1,000 agents, for two reads. pino
 * exports its symbols for integrations (`pino.symbols`).
 */
const LEVEL_VALUE = pino.symbols.levelValSym;

/** `logger.isLevelEnabled(level)` for pino's standard levels, as a comparison (see LEVEL_VALUES). */
export function levelEnabled(logger: Logger, level: Level): boolean {
  return LEVEL_VALUES[level] >= ((logger as unknown as Readonly<Record<symbol, number>>)[LEVEL_VALUE] ?? logger.levelVal);
}

export function lazyChild(parent: Logger, bindings: Record<string, unknown>): LazyLog {
  return new LazyLog(parent, bindings);
}
