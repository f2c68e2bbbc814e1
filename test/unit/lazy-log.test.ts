/**
 * The agent's level check (agent/lazy-log.ts) reads pino's level value directly; it must say what
 * pino's own `isLevelEnabled` says for roots, children that inherit their level, children with their
 * own, and after a level changes at run time.
 */
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { lazyChild, levelEnabled } from '../../agent/lazy-log.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

function agrees(logger: Logger): void {
  for (const level of LEVELS) expect([level, levelEnabled(logger, level)]).toEqual([level, logger.isLevelEnabled(level)]);
}

describe('levelEnabled', () => {
  it("says what isLevelEnabled says, for every level of a root logger", () => {
    for (const level of [...LEVELS, 'silent'] as const) agrees(pino({ level }));
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

  it('keeps a lazy child silent below the level and writes at it', () => {
    const lines: string[] = [];
    const root = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const log = lazyChild(root, { checkpointId: 7 });
    log.debug({ x: 1 }, 'not written');
    log.info({ x: 2 }, 'written');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: 'written', checkpointId: 7, x: 2 });
  });
});
