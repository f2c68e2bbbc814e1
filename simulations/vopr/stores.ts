/**
 * The durable world the coordinator talks to: a KV bucket with compare-and-set (JetStream KV's
 * create/update-on-revision), an Object Store of app states, and a volume backend. Their contents
 * outlive any process; a restarted coordinator knows only what they hold.
 *
 * The contents change synchronously here; `Io` (io.ts) puts latency and faults in front of them.
 * Values are kept as JSON text, so a caller can never change a stored value by holding on to it.
 */

export interface KvEntry {
  readonly value: unknown;
  readonly revision: number;
}

export type KvWriteResult = { readonly ok: true; readonly revision: number } | { readonly ok: false; readonly reason: 'exists' | 'wrong-revision' | 'missing' };

export class SimKv {
  private readonly entries = new Map<string, { text: string; revision: number }>();
  private revision = 0;

  /** Called at every write and delete that lands (value undefined: deleted); the ledger watches records through it. */
  constructor(private readonly observer: (key: string, value: unknown) => void = () => undefined) {}

  get(key: string): KvEntry | undefined {
    const e = this.entries.get(key);
    return e === undefined ? undefined : { value: JSON.parse(e.text) as unknown, revision: e.revision };
  }

  /** Keys starting with `prefix`, sorted, so iteration order never depends on insertion history. */
  keys(prefix: string): string[] {
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  put(key: string, value: unknown): KvWriteResult {
    return this.write(key, value);
  }

  /** Writes only when the key does not exist. */
  create(key: string, value: unknown): KvWriteResult {
    if (this.entries.has(key)) return { ok: false, reason: 'exists' };
    return this.write(key, value);
  }

  /** Writes only when the key is at `revision` (compare-and-set). */
  update(key: string, value: unknown, revision: number): KvWriteResult {
    const e = this.entries.get(key);
    if (e === undefined) return { ok: false, reason: 'missing' };
    if (e.revision !== revision) return { ok: false, reason: 'wrong-revision' };
    return this.write(key, value);
  }

  delete(key: string): void {
    if (this.entries.delete(key)) this.observer(key, undefined);
  }

  private write(key: string, value: unknown): KvWriteResult {
    this.revision++;
    this.entries.set(key, { text: JSON.stringify(value), revision: this.revision });
    this.observer(key, value);
    return { ok: true, revision: this.revision };
  }
}

export interface StoredObject {
  readonly name: string;
  readonly digest: string;
  readonly sizeBytes: number;
  /** When the put landed (set by the store). */
  readonly storedAtMs?: number;
}

export class SimObjects {
  private readonly objects = new Map<string, StoredObject>();

  constructor(
    private readonly onDelete: (name: string) => void = () => undefined,
    private readonly now: () => number = () => 0,
  ) {}

  put(object: StoredObject): void {
    this.objects.set(object.name, Object.assign({}, object, { storedAtMs: this.now() }));
  }

  get(name: string): StoredObject | undefined {
    return this.objects.get(name);
  }

  /** Storage damage: the object's bytes no longer match the digest it was stored with. */
  corrupt(name: string): void {
    const o = this.objects.get(name);
    if (o !== undefined) this.objects.set(name, Object.assign({}, o, { digest: `${o.digest}-corrupt` }));
  }

  delete(name: string): boolean {
    const had = this.objects.delete(name);
    if (had) this.onDelete(name);
    return had;
  }

  /** Every object, sorted by name. */
  list(): StoredObject[] {
    return [...this.objects.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

export interface VolumeSnapshot {
  readonly id: string;
  readonly volume: string;
  /** What the caller asked the backend to name it by (the checkpoint it is for). */
  readonly tag: string;
  readonly takenAtMs: number;
}

export class SimVolumes {
  private readonly snapshots = new Map<string, VolumeSnapshot>();
  private counter = 0;

  constructor(private readonly onDelete: (id: string) => void = () => undefined) {}

  /** One snapshot per volume, as one group. */
  snapshot(volumes: readonly string[], tag: string, nowMs: number): VolumeSnapshot[] {
    return volumes.map((volume) => {
      const s = { id: `vs-${++this.counter}`, volume, tag, takenAtMs: nowMs };
      this.snapshots.set(s.id, s);
      return s;
    });
  }

  has(id: string): boolean {
    return this.snapshots.has(id);
  }

  delete(id: string): boolean {
    const had = this.snapshots.delete(id);
    if (had) this.onDelete(id);
    return had;
  }

  list(): VolumeSnapshot[] {
    return [...this.snapshots.values()].sort((a, b) => a.id.localeCompare(b.id, 'en'));
  }
}
