/**
 * What a run did, as lines `<time> <what>`. The last `keep` lines are kept for the failure report
 * (TigerBeetle prints the tail of its log the same way); every line also goes into a running FNV-1a
 * hash, so two runs of one seed can be compared byte for byte without keeping either in memory.
 */
export class Trace {
  private readonly lines: string[] = [];
  private head = 0;
  private hash = 0x811c9dc5;
  private count = 0;

  constructor(private readonly keep: number) {
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`trace keep must be a positive integer, got ${keep}`);
  }

  add(nowMs: number, what: string): void {
    const line = `${String(nowMs).padStart(7)} ${what}`;
    for (let i = 0; i < line.length; i++) this.hash = Math.imul(this.hash ^ line.charCodeAt(i), 0x01000193) >>> 0;
    this.hash = Math.imul(this.hash ^ 10, 0x01000193) >>> 0;
    this.count++;
    if (this.lines.length < this.keep) this.lines.push(line);
    else {
      this.lines[this.head] = line;
      this.head = (this.head + 1) % this.keep;
    }
  }

  /** Lines added since the start. */
  get length(): number {
    return this.count;
  }

  /** FNV-1a (32 bits) of every line, as 8 hex digits. */
  digest(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  /** The last lines, oldest first. */
  tail(): string[] {
    return [...this.lines.slice(this.head), ...this.lines.slice(0, this.head)];
  }
}
