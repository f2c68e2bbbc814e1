/**
 * The daemons' root logger (adapters/logger.ts): one `component` per line, the innermost, and a
 * logged `level` field never taking the place of the line's level.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { rootLogger } from '../../adapters/logger.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

/** How often `key` occurs as a key of the JSON line's top-level object. */
function keyCount(line: string, key: string): number {
  return line.split(`"${key}":`).length - 1;
}

describe('root logger', () => {
  it('a child that binds component again names only the innermost component, once', () => {
    const { lines, stream } = capture();
    const log = rootLogger({ level: 'info', bindings: { component: 'agent' }, destination: stream });
    log.child({ tenant: 't1' }).child({ component: 'endpoint' }).child({ component: 'channel-out', channel: 'a' }).info('sent');
    log.info('root');
    expect(lines).toHaveLength(2);
    expect(keyCount(lines[0] as string, 'component')).toBe(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ component: 'channel-out', tenant: 't1', channel: 'a', msg: 'sent' });
    expect(JSON.parse(lines[1] as string)).toMatchObject({ component: 'agent', msg: 'root' });
  });

  it("a logged level field keeps the line's level (30 for info) and is kept as level_", () => {
    const { lines, stream } = capture();
    rootLogger({ level: 'info', destination: stream }).info({ level: 'crash', deadlineMs: 5 }, 'freezing');
    expect(keyCount(lines[0] as string, 'level')).toBe(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 30, level_: 'crash', deadlineMs: 5 });
  });
});
