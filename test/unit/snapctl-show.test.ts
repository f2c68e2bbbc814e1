import { describe, expect, it } from 'vitest';
import { checkpointView } from '../../coordinator/checkpoint-view.js';
import { checkpointFromProto, checkpointToProto } from '../../coordinator/grpc/convert.js';
import { checkpointText } from '../../coordinator/snapctl/render.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

const crashRecord = {
  ...checkpointRecord(),
  levelRequested: 'app' as const,
  levelAchieved: 'crash' as const,
  fallbackReason: 'app-level checkpoint 4 aborted (timeout: not every app acked within 30000 ms)',
  servers: [
    {
      server: 's1',
      frozenAtUnixMs: 1_767_225_600_000,
      thawedAtUnixMs: 1_767_225_600_420,
      hooks: [
        { hook: '10-db-lock', action: 'freeze' as const, exitCode: 0, timedOut: false, durationMs: 12, stderr: '', attempts: 1, app: 'APP1' },
        { hook: '20-flush', action: 'freeze' as const, exitCode: 1, timedOut: false, durationMs: 4, stderr: 'warming up\ncache flush failed: disk full', attempts: 3 },
      ],
    },
  ],
};

describe('snapctl show', () => {
  it('shows the level requested and achieved, the fallback reason, each frozen window and every hook with its stderr', () => {
    const text = checkpointText(checkpointView(crashRecord));
    expect(text).toContain('requested app, achieved crash');
    expect(text).toContain('fallback         app-level checkpoint 4 aborted');
    expect(text).toMatch(/s1 .*420ms|s1 .*0\.42 ?s/);
    expect(text).toContain('20-flush');
    expect(text).toContain('cache flush failed: disk full');
  });

  it('servers, hooks and the fallback reason survive the gRPC round trip', () => {
    const back = checkpointFromProto(JSON.parse(JSON.stringify(checkpointToProto(crashRecord))));
    expect(back.ok && back.value).toEqual(checkpointView(crashRecord));
  });
});
