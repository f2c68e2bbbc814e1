/**
 * Live progress of a checkpoint for `take --watch`: on a terminal a table per app redrawn in place
 * after every event; otherwise (a pipe, a log file, CI) one line per event, so nothing is lost to
 * cursor movement. Pure: events in, text out; the caller writes it.
 */
import type { CheckpointView } from '../checkpoint-view.js';
import type { ProgressView } from '../grpc/convert.js';
import { CAPTURED_NOTHING, capturedNothing, failureText, levelText, progressText } from './render.js';
import { bytesText, durationText, table } from './table.js';

export type WatchMode = 'tty' | 'lines';

interface AppRow {
  phase: string;
}

export class WatchView {
  private readonly apps = new Map<string, AppRow>();
  private readonly frozenServers = new Set<string>();
  private readonly thawedServers = new Set<string>();
  private last: CheckpointView | undefined;
  private linesDrawn = 0;
  private readonly startedAtMs: number;

  constructor(
    private readonly mode: WatchMode,
    private readonly now: () => number,
  ) {
    this.startedAtMs = now();
  }

  /** The text to write for this event. */
  onEvent(e: ProgressView): string {
    this.last = e.checkpoint;
    for (const a of e.checkpoint.stats.apps) {
      const key = `${a.server}/${a.app}`;
      if (!this.apps.has(key)) this.apps.set(key, { phase: a.acked ? 'acked' : 'waiting' });
    }
    const key = e.server !== undefined && e.app !== undefined ? `${e.server}/${e.app}` : undefined;
    const row = key === undefined ? undefined : this.apps.get(key) ?? { phase: 'waiting' };
    if (key !== undefined && row !== undefined) this.apps.set(key, row);
    switch (e.kind) {
      case 'app-progress':
        if (row !== undefined) row.phase = e.detail ?? 'in progress';
        break;
      case 'app-acked':
        if (row !== undefined) row.phase = 'acked';
        break;
      case 'app-declined':
        if (row !== undefined) row.phase = `declined${e.detail !== undefined ? `: ${e.detail}` : ''}`;
        break;
      case 'server-frozen':
        if (e.server !== undefined) this.frozenServers.add(e.server);
        break;
      case 'server-thawed':
        if (e.server !== undefined) {
          this.frozenServers.delete(e.server);
          this.thawedServers.add(e.server);
        }
        break;
      default:
        break;
    }
    return this.mode === 'tty' ? this.redraw() : this.line(e);
  }

  /** The closing line once the stream ended. */
  finish(): string {
    const c = this.last;
    if (c === undefined) return 'no progress received\n';
    const took = c.stats.durationMs > 0 ? ` in ${durationText(c.stats.durationMs)}` : '';
    if (c.state === 'completed') return `checkpoint ${c.id} completed at level ${c.levelAchieved ?? c.levelRequested}${took}\n${capturedNothing(c) ? `${CAPTURED_NOTHING}\n` : ''}`;
    if (c.state === 'aborted') return `checkpoint ${c.id} aborted: ${failureText(c) || 'no reason given'}\n`;
    return `checkpoint ${c.id} is ${c.state}; the watch ended before it finished\n`;
  }

  private elapsed(): string {
    return durationText(Math.max(0, this.now() - this.startedAtMs));
  }

  /** `acked 1/2`, or `frozen 2/3` at crash level, where servers freeze and apps never ack. */
  private progress(c: CheckpointView): string {
    const [count, what] = progressText(c).split(' ');
    return `${what} ${count}`;
  }

  private header(c: CheckpointView): string {
    // Labelled, so it is not taken for the checkpoint's own duration that finish() reports.
    return `checkpoint ${c.id}  plan ${c.planId}  level ${levelText(c)}  state ${c.state}  ${this.progress(c)}  watching for ${this.elapsed()}`;
  }

  private redraw(): string {
    const c = this.last;
    if (c === undefined) return '';
    return this.frame(c, (c.levelAchieved ?? c.levelRequested) === 'crash' ? this.serverTable(c) : this.appTable(c));
  }

  /**
   * Crash level: servers freeze and thaw, apps never ack (they are captured on the volumes), so the
   * table is one row per server; a table of apps would show every one "waiting" to the end.
   */
  private serverTable(c: CheckpointView): string {
    const servers = c.servers.length > 0 ? c.servers.map((f) => f.server) : [...new Set(c.stats.apps.map((a) => a.server))];
    const rows = servers.map((server) => {
      const f = c.servers.find((x) => x.server === server);
      const phase = this.thawedServers.has(server) || f?.thawedAtUnixMs !== undefined ? 'thawed' : this.frozenServers.has(server) || f?.frozenAtUnixMs !== undefined ? 'frozen' : 'freezing';
      const frozenFor = f?.frozenAtUnixMs !== undefined && f.thawedAtUnixMs !== undefined ? durationText(f.thawedAtUnixMs - f.frozenAtUnixMs) : '-';
      return [server, phase, frozenFor, String(f?.hooks.length ?? 0)];
    });
    return table(['SERVER', 'PHASE', 'FROZEN FOR', 'HOOKS'], rows);
  }

  private appTable(c: CheckpointView): string {
    const stats = new Map(c.stats.apps.map((a) => [`${a.server}/${a.app}`, a]));
    const rows = [...this.apps.entries()].map(([key, row]) => {
      const s = stats.get(key);
      const server = key.slice(0, key.indexOf('/'));
      return [
        key,
        row.phase + (this.frozenServers.has(server) ? ' (frozen)' : ''),
        s !== undefined && s.alignmentMs > 0 ? durationText(s.alignmentMs) : '-',
        s !== undefined && s.acked ? durationText(s.syncMs) : '-',
        s !== undefined && s.acked ? durationText(s.asyncMs) : '-',
        s !== undefined && s.acked ? bytesText(s.sizeBytes) : '-',
      ];
    });
    return table(['APP', 'PHASE', 'ALIGN', 'SYNC', 'ASYNC', 'SIZE'], rows);
  }

  private frame(c: CheckpointView, body: string): string {
    const frame = `${this.header(c)}\n${body}`;
    // Up to the first line of the previous frame, then clear to the end of the screen.
    const rewind = this.linesDrawn > 0 ? `\u001b[${this.linesDrawn}A\r\u001b[J` : '';
    this.linesDrawn = frame.split('\n').length - 1;
    return rewind + frame;
  }

  private line(e: ProgressView): string {
    const c = e.checkpoint;
    const who = e.server !== undefined ? (e.app !== undefined ? `${e.server}/${e.app}` : e.server) : '';
    const at = `[+${this.elapsed()}] checkpoint ${c.id}`;
    switch (e.kind) {
      case 'state-changed':
        return `${at} ${c.state} (${this.progress(c)})${c.state === 'aborted' || c.state === 'aborting' ? `: ${failureText(c)}` : ''}\n`;
      case 'app-acked': {
        const s = c.stats.apps.find((a) => a.server === e.server && a.app === e.app);
        const detail = s === undefined ? '' : ` (align ${durationText(s.alignmentMs)}, sync ${durationText(s.syncMs)}, async ${durationText(s.asyncMs)}, ${bytesText(s.sizeBytes)})`;
        return `${at} ${who} acked${detail}\n`;
      }
      case 'app-declined':
        return `${at} ${who} declined${e.detail !== undefined ? `: ${e.detail}` : ''}\n`;
      case 'app-progress':
        return `${at} ${who} ${e.detail ?? 'progress'}\n`;
      case 'server-frozen':
        return `${at} ${who} frozen\n`;
      case 'server-thawed':
        return `${at} ${who} thawed\n`;
      case 'volumes-snapshotted':
        return `${at} volumes snapshotted${e.detail !== undefined ? `: ${e.detail}` : ''}\n`;
    }
  }
}
