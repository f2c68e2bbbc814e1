import { describe, expect, it } from 'vitest';
import { checkpointView } from '../../coordinator/checkpoint-view.js';
import { checkpointFromProto, checkpointToProto } from '../../coordinator/grpc/convert.js';
import { checkpointsTable, checkpointText } from '../../coordinator/snapctl/render.js';
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

describe('snapctl show and list at crash level', () => {
  // As a crash-level run records it: servers frozen and thawed, apps never acking.
  const crash = checkpointView({
    ...checkpointRecord({ id: 9, state: 'completed', levelRequested: 'crash', levelAchieved: 'crash' }),
    servers: [
      { server: 'srv1', frozenAtUnixMs: 1_767_225_600_000, thawedAtUnixMs: 1_767_225_600_120, hooks: [] },
      { server: 'srv2', frozenAtUnixMs: 1_767_225_600_010, thawedAtUnixMs: 1_767_225_600_130, hooks: [] },
    ],
  });

  it('show gives the servers frozen instead of app acks and no table of unacked apps', () => {
    const text = checkpointText(crash);
    expect(text).toMatch(/^servers frozen +2\/2$/m);
    expect(text).not.toMatch(/^acked /m);
    expect(text).not.toMatch(/^APP +ACKED/m);
    expect(text).toContain('apps: srv1/APP1, srv2/APP2 (crash level');
    expect(text).toMatch(/^srv1 +\S+ +\S+ +120ms +no$/m);
  });

  it('show and list give each copy at another site with its lag, or that it failed; show names where an imported checkpoint came from', () => {
    const copied = checkpointView(
      checkpointRecord({
        id: 11,
        state: 'completed',
        levelAchieved: 'app',
        parts: [{ server: 'srv1', app: 'APP1', acked: true }],
        copies: [
          { site: 'dr', state: 'copied', copiedAtUnixMs: 1_700_000_002_000, lagMs: 1_500 },
          { site: 'far', state: 'failed', failedAtUnixMs: 1_700_000_003_000, detail: 'site far cannot be reached' },
        ],
        importedFrom: { site: 'dr', sourceSite: 'primary', sourceCheckpointId: 4, copiedAtUnixMs: 1_700_000_001_000 },
      }),
    );
    const text = checkpointText(copied);
    expect(text).toMatch(/^imported +from site dr: checkpoint 4 of site primary/m);
    expect(text).toMatch(/^COPY AT SITE +STATE +AT +LAG +DETAIL/m);
    expect(text).toMatch(/^dr +copied +\S+ +1\.50s/m);
    expect(text).toMatch(/^far +failed .*site far cannot be reached$/m);
    const table = checkpointsTable([copied, crash]);
    expect(table).toMatch(/^ID +PLAN +LEVEL +STATE +PROGRESS +AGE +DURATION +SIZE +COPIES +FAILURE/);
    expect(table).toMatch(/^11 .* dr 1\.50s, far failed/m);
    expect(checkpointsTable([crash])).not.toContain('COPIES');
  });

  it('list gives a crash-level checkpoint its servers frozen and an app-level one its apps acked', () => {
    const app = checkpointView(checkpointRecord({ id: 8, state: 'completed', levelAchieved: 'app', parts: [{ server: 'srv1', app: 'APP1', acked: true }] }));
    const table = checkpointsTable([crash, app]);
    expect(table).toMatch(/^ID +PLAN +LEVEL +STATE +PROGRESS/);
    expect(table).toMatch(/^9 +demo +crash +completed +2\/2 frozen/m);
    expect(table).toMatch(/^8 +demo +app +completed +1\/1 acked/m);
  });
});
