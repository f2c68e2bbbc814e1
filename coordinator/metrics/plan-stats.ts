/**
 * A plan's summary statistics (GetPlanStats, `snapctl stats`), like Flink's checkpoint overview:
 * counts by outcome, min/avg/max duration and size of the completed checkpoints, the latest
 * completed one and the last failure with its reason. Computed from the checkpoint records the
 * store holds for the plan, page by page, so it reflects what retention kept.
 */
import type { CheckpointsApi } from '../api.js';
import { checkpointStats } from '../checkpoint-view.js';
import { ok, type Result } from '../errors.js';
import type { FailureReason } from '../model.js';

export interface PlanStats {
  readonly planId: string;
  readonly checkpointsTotal: number;
  readonly completed: number;
  readonly aborted: number;
  readonly inFlight: number;
  /** Of the completed ones; 0 when none completed. */
  readonly durationMinMs: number;
  readonly durationAvgMs: number;
  readonly durationMaxMs: number;
  readonly sizeMinBytes: number;
  readonly sizeAvgBytes: number;
  readonly sizeMaxBytes: number;
  /** 0 when none completed. */
  readonly latestCompletedId: number;
  readonly latestCompletedAtUnixMs: number;
  readonly lastFailure?: { readonly id: number; readonly reason?: FailureReason; readonly detail: string; readonly atUnixMs: number };
}

const PAGE_SIZE = 500;

export async function planStats(list: CheckpointsApi['list'], planId: string): Promise<Result<PlanStats>> {
  let total = 0;
  let completed = 0;
  let aborted = 0;
  const durations: number[] = [];
  const sizes: number[] = [];
  let latest: { id: number; at: number } | undefined;
  let failure: PlanStats['lastFailure'];
  let token = '';
  do {
    const page = await list({ planId }, PAGE_SIZE, token);
    if (!page.ok) return page;
    for (const r of page.value.items) {
      total += 1;
      if (r.state === 'completed') {
        completed += 1;
        const s = checkpointStats(r);
        durations.push(s.durationMs);
        sizes.push(s.sizeBytes);
        if (latest === undefined || r.id > latest.id) latest = { id: r.id, at: r.finishedAtUnixMs ?? 0 };
      } else if (r.state === 'aborted') {
        aborted += 1;
        if (failure === undefined || r.id > failure.id) {
          failure = { id: r.id, ...(r.failureReason !== undefined ? { reason: r.failureReason } : {}), detail: r.failureDetail ?? '', atUnixMs: r.finishedAtUnixMs ?? 0 };
        }
      }
    }
    token = page.value.nextPageToken;
  } while (token !== '');
  const summary = (xs: number[]): [number, number, number] => (xs.length === 0 ? [0, 0, 0] : [Math.min(...xs), Math.round(xs.reduce((a, b) => a + b, 0) / xs.length), Math.max(...xs)]);
  const [durationMinMs, durationAvgMs, durationMaxMs] = summary(durations);
  const [sizeMinBytes, sizeAvgBytes, sizeMaxBytes] = summary(sizes);
  return ok({
    planId,
    checkpointsTotal: total,
    completed,
    aborted,
    inFlight: total - completed - aborted,
    durationMinMs,
    durationAvgMs,
    durationMaxMs,
    sizeMinBytes,
    sizeAvgBytes,
    sizeMaxBytes,
    latestCompletedId: latest?.id ?? 0,
    latestCompletedAtUnixMs: latest?.at ?? 0,
    ...(failure !== undefined ? { lastFailure: failure } : {}),
  });
}
