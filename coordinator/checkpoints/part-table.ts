/**
 * The parts of a checkpoint in flight, one per app, patched as acks arrive. A plan may hold a
 * thousand apps: patching by copying the whole parts array at every ack made a checkpoint round
 * quadratic in the number of apps, so parts are found through an index and the immutable array the
 * record carries is built only when someone reads it after a change.
 */
import type { AppPart } from '../model.js';

export class PartTable {
  private readonly parts: AppPart[];
  private readonly byApp = new Map<string, number>();
  private readonly byServer = new Map<string, number[]>();
  private view: readonly AppPart[] | undefined;

  constructor(initial: readonly AppPart[]) {
    this.parts = [...initial];
    this.parts.forEach((p, i) => {
      this.byApp.set(key(p.server, p.app), i);
      const onServer = this.byServer.get(p.server) ?? [];
      onServer.push(i);
      this.byServer.set(p.server, onServer);
    });
    this.view = initial;
  }

  /** The parts as the record carries them; the same array until the next patch. */
  get all(): readonly AppPart[] {
    this.view ??= [...this.parts];
    return this.view;
  }

  get(server: string, app: string): AppPart | undefined {
    const i = this.byApp.get(key(server, app));
    return i === undefined ? undefined : this.parts[i];
  }

  /** Patches one app's part, or every part of the server when `app` is undefined; false when none is known. */
  patch(server: string, app: string | undefined, patch: Partial<AppPart>): boolean {
    const indices = app === undefined ? (this.byServer.get(server) ?? []) : [this.byApp.get(key(server, app))].filter((i): i is number => i !== undefined);
    // Object.assign rather than a spread: see coordinator/bus.ts send().
    for (const i of indices) this.parts[i] = Object.assign({}, this.parts[i] as AppPart, patch);
    if (indices.length > 0) this.view = undefined;
    return indices.length > 0;
  }
}

function key(server: string, app: string): string {
  return `${server}/${app}`;
}
