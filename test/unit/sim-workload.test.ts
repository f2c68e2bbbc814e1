/**
 * A simulated app's live state lives in fields of its process (simulations/workload.ts). A snapshot
 * must be a copy the app's later work cannot change, and a restore must leave the record it came
 * from untouched by what the app does next: the same record may be restored again at a later crash.
 */
import { describe, expect, it } from 'vitest';
import { captureApp, restoreApp, type AppState, type LiveApp } from '../../simulations/workload.js';

function live(): LiveApp {
  return { tokens: 0, count: 0, outbox: [] };
}

describe('captureApp and restoreApp', () => {
  it('tokens: a snapshot keeps the amount it saw, a restore sets it', () => {
    const app = live();
    restoreApp(app, { kind: 'tokens', tokens: 100 });
    const snapshot = captureApp('tokens', app);
    app.tokens -= 7;
    expect(snapshot).toEqual({ kind: 'tokens', tokens: 100 });
    restoreApp(app, snapshot);
    expect(app.tokens).toBe(100);
  });

  it('counting: the outbox is copied both ways, entry by entry', () => {
    const app = live();
    const record: AppState = { kind: 'counting', count: 3, outbox: [{ channel: 'a->b', value: 3 }] };
    restoreApp(app, record);
    app.count += 1;
    app.outbox.push({ channel: 'a->b', value: 4 });
    (app.outbox[0] as { value: number }).value = 99;
    expect(record).toEqual({ kind: 'counting', count: 3, outbox: [{ channel: 'a->b', value: 3 }] });

    const snapshot = captureApp('counting', app);
    app.outbox.length = 0;
    app.count = 0;
    expect(snapshot).toEqual({
      kind: 'counting',
      count: 4,
      outbox: [
        { channel: 'a->b', value: 99 },
        { channel: 'a->b', value: 4 },
      ],
    });
  });
});
