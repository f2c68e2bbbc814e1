import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { lazyChild, levelEnabled } from '../../agent/lazy-log.js';

function capture(level: string): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level }, sink);
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('lazy child logger', () => {
  it('a line at an enabled level carries the bindings, like a pino child', () => {
    const { logger, lines } = capture('info');
    lazyChild(logger, { checkpointId: 7 }).warn({ app: 'a' }, 'late');
    expect(lines()).toEqual([expect.objectContaining({ checkpointId: 7, app: 'a', msg: 'late' })]);
  });

  it('lines below the level make no child at all', () => {
    const { logger, lines } = capture('warn');
    const child = vi.spyOn(logger, 'child');
    const log = lazyChild(logger, { checkpointId: 7 });
    log.info('trigger');
    log.debug('details');
    expect(child).not.toHaveBeenCalled();
    expect(lines()).toEqual([]);
    log.error('failed');
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines()).toEqual([expect.objectContaining({ checkpointId: 7, msg: 'failed' })]);
  });

  it('writes exactly what pino\'s isLevelEnabled allows, for every level, a level changed at run time included', () => {
    const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
    for (const configured of [...levels, 'silent']) {
      const { logger, lines } = capture('info');
      logger.level = configured;
      const log = lazyChild(logger, {});
      for (const line of levels) log[line](line);
      expect(lines().map((l) => l['msg']), `logger at ${configured}`).toEqual(levels.filter((line) => logger.isLevelEnabled(line)));
    }
  });
});

/**
 * levelEnabled reads pino's level value directly (agent/lazy-log.ts); it must say what pino's own
 * isLevelEnabled says for roots, children that inherit their level, children with their own, and
 * after a level changes at run time.
 */
describe('levelEnabled', () => {
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
  const agrees = (logger: Logger): void => {
    for (const level of levels) expect([level, levelEnabled(logger, level)]).toEqual([level, logger.isLevelEnabled(level)]);
  };

  it('says what isLevelEnabled says, for every level of a root logger', () => {
    for (const level of [...levels, 'silent'] as const) agrees(pino({ level }));
  });

  it('for children that inherit the level, children with their own, and after a change at run time', () => {
    const root = pino({ level: 'warn' });
    const inheriting = root.child({ component: 'a' });
    const own = root.child({ component: 'b' }, { level: 'debug' });
    agrees(inheriting);
    agrees(own);
    expect(levelEnabled(inheriting, 'info')).toBe(false);
    expect(levelEnabled(own, 'debug')).toBe(true);
    root.level = 'info';
    agrees(root);
    agrees(inheriting);
    agrees(own);
    own.level = 'error';
    agrees(own);
    expect(levelEnabled(own, 'warn')).toBe(false);
  });
});
