/**
 * Cron expressions of schedule policies: the five standard fields (minute hour day-of-month month
 * day-of-week), evaluated in UTC, each a `*`, a number, a range `a-b`, a step `*\/n` or `a-b/n`,
 * or a comma list of those; day-of-week 0-7 (0 and 7 are Sunday). As in Vixie cron, when both
 * day-of-month and day-of-week are restricted, a day matching either one fires. Names (JAN, MON)
 * and the `@hourly` shorthands are not accepted: an error names what is wrong.
 */

export interface CronExpression {
  readonly text: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly daysOfWeek: ReadonlySet<number>;
  readonly domRestricted: boolean;
  readonly dowRestricted: boolean;
}

export type CronParse = { readonly ok: true; readonly cron: CronExpression } | { readonly ok: false; readonly message: string };

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

function parseField(text: string, field: (typeof FIELDS)[number]): Set<number> | string {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) return `${field.name} "${part}" is not a number, a range a-b, * or a step /n`;
    const step = m[4] === undefined ? 1 : Number(m[4]);
    let from: number = field.min;
    let to: number = field.max;
    if (m[1] !== '*') {
      from = Number(m[2]);
      to = m[3] === undefined ? (m[4] === undefined ? from : field.max) : Number(m[3]);
    }
    if (from < field.min || to > field.max || from > to) return `${field.name} "${part}" is outside ${field.min}-${field.max}`;
    if (step < 1) return `${field.name} "${part}" has a step of 0`;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

export function parseCron(text: string): CronParse {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5 || parts[0] === '') return { ok: false, message: `cron "${text}" must have 5 fields (minute hour day-of-month month day-of-week), got ${parts[0] === '' ? 0 : parts.length}` };
  const sets: Set<number>[] = [];
  for (let i = 0; i < 5; i++) {
    const set = parseField(parts[i] as string, FIELDS[i] as (typeof FIELDS)[number]);
    if (typeof set === 'string') return { ok: false, message: `cron "${text}": ${set}` };
    sets.push(set);
  }
  const [minutes, hours, daysOfMonth, months, dow] = sets as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  if (dow.has(7)) dow.add(0);
  dow.delete(7);
  return {
    ok: true,
    cron: { text, minutes, hours, daysOfMonth, months, daysOfWeek: dow, domRestricted: parts[2] !== '*', dowRestricted: parts[4] !== '*' },
  };
}

function dayMatches(c: CronExpression, d: Date): boolean {
  if (!c.months.has(d.getUTCMonth() + 1)) return false;
  const dom = c.daysOfMonth.has(d.getUTCDate());
  const dow = c.daysOfWeek.has(d.getUTCDay());
  if (c.domRestricted && c.dowRestricted) return dom || dow;
  return dom && dow;
}

const MINUTE_MS = 60_000;
/** Four years and a day: a 29 February schedule still fires within it. */
const SEARCH_DAYS_MAX = 4 * 366 + 1;

/** The first fire time strictly after `afterUnixMs` (a whole minute, UTC); undefined if it never fires (e.g. 31 February). */
export function nextFire(c: CronExpression, afterUnixMs: number): number | undefined {
  let t = (Math.floor(afterUnixMs / MINUTE_MS) + 1) * MINUTE_MS;
  const end = t + SEARCH_DAYS_MAX * 86_400_000;
  while (t < end) {
    const d = new Date(t);
    if (!dayMatches(c, d)) {
      // The next day at 00:00.
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
      continue;
    }
    if (!c.hours.has(d.getUTCHours())) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1);
      continue;
    }
    if (c.minutes.has(d.getUTCMinutes())) return t;
    t += MINUTE_MS;
  }
  return undefined;
}
