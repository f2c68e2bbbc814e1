/**
 * The crash-level demo app: it keeps its state on its volume, a directory. Each tick it appends
 * `rec <id>` to `records.log` and then sends the id to every app downstream, which appends
 * `got <channel> <id>` when it receives it. A crash-consistent group snapshot of the volumes never
 * holds a `got` whose `rec` is missing on the sender's volume; a volume-by-volume backup (level none)
 * can. While `<volume>.paused` exists (created by a freeze hook, removed by the thaw hook) the app
 * writes nothing to its volume, as a quiesced app should. The marker sits beside the volume, not in
 * it, so reverting the volume to a snapshot does not take it away half way.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppHandler, AppLink } from '../app.js';
import type { ChannelId } from '../../src/ids.js';

export const RECORDS_FILE = 'records.log';
/** The pause marker of a volume: beside it, so a revert of the volume leaves it alone. */
export function pauseFile(volume: string): string {
  return `${volume}.paused`;
}

function encodeId(id: number): Uint8Array {
  return new TextEncoder().encode(String(id));
}

export class WriterApp implements AppHandler {
  private link: AppLink | undefined;
  private nextId = 1;
  private held: string[] = [];
  private writeErrors = 0;

  constructor(private readonly volume: string) {
    mkdirSync(volume, { recursive: true });
  }

  bind(link: AppLink): void {
    this.link = link;
  }

  private quiesced(): boolean {
    return existsSync(pauseFile(this.volume));
  }

  /** A failed write (the volume being swapped, a full disk) loses this tick, never the agent. */
  private write(lines: string[]): boolean {
    if (lines.length === 0) return true;
    try {
      appendFileSync(join(this.volume, RECORDS_FILE), lines.join(''));
      return true;
    } catch (error) {
      this.writeErrors += 1;
      if (this.writeErrors === 1 || this.writeErrors % 100 === 0) {
        process.emitWarning(`writer app: cannot write to ${this.volume}: ${error instanceof Error ? error.message : String(error)}`);
      }
      return false;
    }
  }

  /** One record, written before it is sent: the sender's volume always has it first. */
  tick(): void {
    const link = this.link;
    if (!link || this.quiesced()) return;
    if (!this.write(this.held)) return;
    this.held = [];
    const id = this.nextId;
    // Sent only once its record is on the volume: the sender's volume always has it first.
    if (!this.write([`rec ${id}\n`])) return;
    this.nextId += 1;
    for (const ch of link.outputs) link.send(ch, encodeId(id)).catch(() => undefined);
  }

  deliver(channel: ChannelId, payload: Uint8Array): void {
    const line = `got ${channel} ${new TextDecoder().decode(payload)}\n`;
    this.held.push(line);
    if (!this.quiesced() && this.write(this.held)) this.held = [];
  }

  snapshot(): Uint8Array {
    return encodeId(this.nextId);
  }

  restore(state: Uint8Array): void {
    this.nextId = Number(new TextDecoder().decode(state));
  }
}

/**
 * Orphans across two volume copies: ids the receiver's copy says it got on `channel` that the
 * sender's copy has no record of.
 */
export function orphansBetween(senderRecords: string, receiverRecords: string, channel: ChannelId): number[] {
  const recs = new Set(senderRecords.split('\n').filter((l) => l.startsWith('rec ')).map((l) => Number(l.slice(4))));
  return receiverRecords
    .split('\n')
    .filter((l) => l.startsWith(`got ${channel} `))
    .map((l) => Number(l.slice(`got ${channel} `.length)))
    .filter((id) => !recs.has(id));
}

export function readRecords(dir: string): string {
  const file = join(dir, RECORDS_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
