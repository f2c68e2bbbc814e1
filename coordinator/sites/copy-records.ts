/**
 * The copies a site holds, in its KV bucket `snap-site-copies`: one key per copied checkpoint,
 * `copy.<source site>.<id, zero-padded to 16 digits>`, whose value is the checkpoint record with its
 * object refs renamed to where the copy's objects live at the site, and the plan it was taken of.
 *
 * A record is written only after every object it names was written and read back with its digest
 * (copy.ts), so a listed copy is a complete one: an interrupted copy leaves objects and no record.
 */
import type { KV, KvEntry } from 'nats';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord, PlanInput } from '../model.js';
import { decodeJsonObject, encodeJson } from '../store/json.js';
import { storeError } from '../store/nats-errors.js';
import { getLive, listKeys } from '../store/scan.js';

export const BUCKET_SITE_COPIES = 'snap-site-copies';
const PREFIX = 'copy.';
const ID_DIGITS = 16;

export interface SiteCopy {
  /** The deployment that took the checkpoint (its `siteName`) and the id it has there. */
  readonly sourceSite: string;
  readonly sourceCheckpointId: number;
  readonly copiedAtUnixMs: number;
  /** The record as at the source, its object refs renamed to the site's copies (same digests). */
  readonly record: CheckpointRecord;
  /** The plan as registered at the source when copied; absent if it had been deleted. */
  readonly plan?: PlanInput;
  readonly objects: number;
  readonly bytes: number;
}

export function copyKey(sourceSite: string, sourceCheckpointId: number): string {
  return `${PREFIX}${sourceSite}.${String(sourceCheckpointId).padStart(ID_DIGITS, '0')}`;
}

function decode(entry: KvEntry): Result<SiteCopy> {
  const json = decodeJsonObject(entry.value, entry.key);
  if (!json.ok) return json;
  const v = json.value;
  const record = v['record'] as Record<string, unknown> | undefined;
  if (
    typeof v['sourceSite'] !== 'string' ||
    typeof v['sourceCheckpointId'] !== 'number' ||
    copyKey(v['sourceSite'], v['sourceCheckpointId']) !== entry.key ||
    typeof record !== 'object' ||
    record === null ||
    !Array.isArray(record['parts'])
  ) {
    return fail('internal', `the site's ${entry.key} is not a checkpoint copy`);
  }
  return ok(v as unknown as SiteCopy);
}

export class SiteCopyRecords {
  constructor(private readonly kv: KV) {}

  /** Written last, once the copy's data is verified at the site; a copy made again replaces it. */
  async put(copy: SiteCopy): Promise<Result<void>> {
    try {
      await this.kv.put(copyKey(copy.sourceSite, copy.sourceCheckpointId), encodeJson(copy));
      return ok(undefined);
    } catch (error) {
      return { ok: false, error: storeError(error, `writing the copy of checkpoint ${copy.sourceCheckpointId} of ${copy.sourceSite}`) };
    }
  }

  /** Removes the record of a copy; one already gone is no error. */
  async delete(sourceSite: string, sourceCheckpointId: number): Promise<Result<void>> {
    try {
      await this.kv.delete(copyKey(sourceSite, sourceCheckpointId));
      return ok(undefined);
    } catch (error) {
      return { ok: false, error: storeError(error, `deleting the copy of checkpoint ${sourceCheckpointId} of ${sourceSite}`) };
    }
  }

  async get(sourceSite: string, sourceCheckpointId: number): Promise<Result<SiteCopy | undefined>> {
    const entry = await getLive(this.kv, copyKey(sourceSite, sourceCheckpointId));
    if (!entry.ok) return entry;
    return entry.value === undefined ? ok(undefined) : decode(entry.value);
  }

  /** Every copy held, oldest source first; only those of `sourceSite` or of checkpoint `id` when given. */
  async list(filter: { sourceSite?: string; sourceCheckpointId?: number }): Promise<Result<SiteCopy[]>> {
    const id = filter.sourceCheckpointId === undefined ? '*' : String(filter.sourceCheckpointId).padStart(ID_DIGITS, '0');
    const keys = await listKeys(this.kv, `${PREFIX}${filter.sourceSite ?? '*'}.${id}`);
    if (!keys.ok) return keys;
    const copies: SiteCopy[] = [];
    for (const key of keys.value.sort()) {
      const entry = await getLive(this.kv, key);
      if (!entry.ok) return entry;
      if (entry.value === undefined) continue;
      const copy = decode(entry.value);
      if (!copy.ok) return copy;
      copies.push(copy.value);
    }
    return ok(copies);
  }
}
