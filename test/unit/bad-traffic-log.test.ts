/** adapters/bad-traffic-log.ts: bad traffic logged at a bounded rate per kind, the rest summarized. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BadTrafficLog } from '../../adapters/bad-traffic-log.js';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('bad traffic is counted, not narrated', () => {
  it('a flood writes the window\'s lines and one summary per kind, not a line per message', () => {
    const { logger, lines } = capture();
    const log = new BadTrafficLog(logger, { linesPerWindow: 3, windowMs: 1_000 }, () => Date.now());
    for (let i = 0; i < 10_000; i++) log.warn('malformed-event', { n: i }, 'malformed event dropped');
    log.warn('forged-event', {}, 'forged');
    expect(lines()).toHaveLength(4);
    vi.advanceTimersByTime(1_000);
    const all = lines();
    expect(all).toHaveLength(5);
    expect(all[4]).toMatchObject({ kind: 'malformed-event', suppressed: 9_997, logged: 3 });
    // A new window writes lines again.
    log.warn('malformed-event', { n: 'later' }, 'malformed event dropped');
    expect(lines()).toHaveLength(6);
  });

  it('nothing suppressed: no summary; flush writes what is due', () => {
    const { logger, lines } = capture();
    const log = new BadTrafficLog(logger, { linesPerWindow: 2, windowMs: 1_000 }, () => Date.now());
    log.warn('k', {}, 'one');
    vi.advanceTimersByTime(5_000);
    expect(lines()).toHaveLength(1);
    for (let i = 0; i < 5; i++) log.warn('k', {}, 'again');
    log.flush();
    expect(lines().at(-1)).toMatchObject({ kind: 'k', suppressed: 3 });
  });
});
