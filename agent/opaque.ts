/**
 * Opaque apps (channel kind `opaque`: the app's own TCP, invisible to the agent): the agent can
 * only run the app's hooks. The coordinator drives the cut (src/control/round-opaque.ts, over the
 * pure `QuiescePlan`); this file carries out its three commands for one app at a time:
 *
 *   quiesce  the app's hooks (`<hooksDir>/<app>/`, lexical order) run with action `freeze`: they
 *            let the app consume its inputs up to SNAP_DRAIN_TO, stop it, write its state into
 *            SNAP_STATE_DIR (emptied by the agent first) and print `position <channel> <n>` on
 *            stdout for every output of the app. Answered by `quiesced` with those positions.
 *   capture  SNAP_STATE_DIR packed (JSON of {relative path: base64}, sorted by path) and stored as
 *            the app's state object. Answered by `captured`.
 *   resume   the app's hooks with action `resume`, in reverse order. Answered by `resumed`.
 *
 * A rollback or restore of such a checkpoint (src/control/operation.ts) quiesces the apps (no drain
 * positions), then sends `restore` for each: `restore` here writes the stored state back into
 * SNAP_STATE_DIR (emptied first) and runs the app's hooks with action `restore`, lexical order, with
 * the limits of the freeze hooks. The app stays quiesced until the operation's resume.
 *
 * A quiesced app that no resume reaches is resumed by the agent itself after freezeDeadlineMsMax
 * (the same bound as a crash-level freeze): an app must never stay stopped because a coordinator
 * went away. A capture after that is refused (the state no longer matches a stopped app).
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import type { Logger } from 'pino';
import type { ChannelId, CheckpointId } from '../src/ids.js';
import { isChannelId, type HookResult, type ObjectRef } from '../src/wire/index.js';
import type { AgentAppConfig, FreezeConfig } from './config.js';
import { describeHookResult, discoverHooks, hookFailed, runHook, runHookWithOutput, type HookFile } from './hooks/index.js';

export type OpaqueOutcome<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly reason: 'hook-failed' | 'unknown-app' | 'store-failed' | 'freeze-failed'; readonly detail: string; readonly hooks: readonly HookResult[] };

export interface OpaqueAppsOptions {
  readonly tenant: string;
  readonly server: string;
  readonly apps: readonly AgentAppConfig[];
  readonly config: FreezeConfig;
  /** The agent's runtime directory; app state directories live in `<stateDir>/opaque/<app>`. */
  readonly stateDir: string;
  readonly logger: Logger;
  readonly store: (name: string, bytes: Uint8Array) => Promise<ObjectRef>;
}

interface Quiesced {
  readonly checkpointId: CheckpointId;
  watchdog: NodeJS.Timeout | undefined;
  resumedByWatchdog: boolean;
  /**
   * Every quiesce hook succeeded and reported its positions: only then does SNAP_STATE_DIR hold the
   * state of the stopped app. The app counts as quiesced (for the resume) from before its hooks run.
   */
  stateReady: boolean;
}

/** `position <channel> <n>` lines of a hook's stdout; other lines are ignored. */
export function parsePositions(stdout: string): { ok: true; positions: Record<ChannelId, number> } | { ok: false; message: string } {
  const positions: Record<ChannelId, number> = {};
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'position') continue;
    const [, channel, n] = words;
    if (words.length !== 3 || channel === undefined || n === undefined || !isChannelId(channel) || !/^\d{1,15}$/.test(n)) {
      return { ok: false, message: `bad position line ${JSON.stringify(line.trim())}: expected "position <channel id> <count>"` };
    }
    if (Object.hasOwn(positions, channel) && positions[channel] !== Number(n)) return { ok: false, message: `two positions for ${channel}` };
    positions[channel] = Number(n);
  }
  return { ok: true, positions };
}

/** The state directory packed deterministically: JSON of {relative path: base64}, sorted by path. */
export async function packDir(dir: string): Promise<Uint8Array> {
  const files: [string, string][] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const path = join(d, name);
      const st = await stat(path);
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) files.push([relative(dir, path), (await readFile(path)).toString('base64')]);
    }
  };
  await walk(dir);
  files.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return new TextEncoder().encode(JSON.stringify(Object.fromEntries(files)));
}

/** The inverse of `packDir`, for tests and restore tools. */
export function unpackState(bytes: Uint8Array): Record<string, Buffer> {
  const json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, string>;
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

/** `unpackState` that refuses a path leaving the directory (an absolute one, or one through `..`). */
function unpackInto(bytes: Uint8Array): { ok: true; files: [string, Buffer][] } | { ok: false; message: string } {
  let files: Record<string, Buffer>;
  try {
    files = unpackState(bytes);
  } catch (error) {
    return { ok: false, message: `the stored state is not a packed state directory: ${error instanceof Error ? error.message : String(error)}` };
  }
  const bad = Object.keys(files).filter((f) => f === '' || normalize(f).startsWith('..') || normalize(f).startsWith('/'));
  if (bad.length > 0) return { ok: false, message: `the stored state names paths outside its directory: ${bad.join(', ')}` };
  return { ok: true, files: Object.entries(files) };
}

export class OpaqueApps {
  private readonly quiesced = new Map<string, Quiesced>();
  private readonly log: Logger;
  /** One operation per app at a time, in arrival order. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly o: OpaqueAppsOptions) {
    this.log = o.logger.child({ component: 'opaque' });
  }

  stateDirOf(app: string): string {
    return join(this.o.stateDir, 'opaque', app);
  }

  private enqueue<T>(app: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(app) ?? Promise.resolve()).then(fn, fn);
    this.queues.set(app, run.catch(() => undefined));
    return run;
  }

  private async hooksOf(app: string): Promise<HookFile[]> {
    if (this.o.config.hooksDir === undefined) return [];
    const set = await discoverHooks(this.o.config.hooksDir, [app]);
    return set.hooks.filter((h) => h.app === app);
  }

  private env(app: string, checkpointId: CheckpointId, action: string, drainTo: Readonly<Record<ChannelId, number>>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SNAP_')) env[k] = v;
    env['SNAP_ACTION'] = action;
    env['SNAP_APP'] = app;
    env['SNAP_CHECKPOINT_ID'] = String(checkpointId);
    env['SNAP_LEVEL'] = 'app';
    env['SNAP_TENANT'] = this.o.tenant;
    env['SNAP_SERVER'] = this.o.server;
    env['SNAP_STATE_DIR'] = this.stateDirOf(app);
    env['SNAP_DRAIN_TO'] = Object.entries(drainTo)
      .map(([c, n]) => `${c}=${n}`)
      .join(',');
    return env;
  }

  private limits(): { hookTimeoutMs: number; hookRetriesMax: number; hookKillGraceMs: number } {
    const c = this.o.config;
    return { hookTimeoutMs: c.hookTimeoutMs, hookRetriesMax: c.hookRetriesMax, hookKillGraceMs: c.hookKillGraceMs };
  }

  quiesce(checkpointId: CheckpointId, app: string, drainTo: Readonly<Record<ChannelId, number>>): Promise<OpaqueOutcome<{ outputPositions: Record<ChannelId, number>; hooks: HookResult[] }>> {
    return this.enqueue(app, async () => {
      const cfg = this.o.apps.find((a) => a.name === app);
      if (!cfg) return { ok: false, reason: 'unknown-app', detail: `${app} is not configured on ${this.o.server}`, hooks: [] };
      const dir = this.stateDirOf(app);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      // Recorded before the hooks run: a failed quiesce is resumed too (hooks must be idempotent).
      this.markQuiesced(checkpointId, app);
      const hooks: HookResult[] = [];
      const positions: Record<ChannelId, number> = {};
      let files: HookFile[];
      try {
        files = await this.hooksOf(app);
      } catch (error) {
        return { ok: false, reason: 'hook-failed', detail: `${app}: ${error instanceof Error ? error.message : String(error)}`, hooks };
      }
      for (const file of files) {
        const { result, stdout } = await runHookWithOutput(
          { name: file.name, file: file.path, args: ['freeze'], app },
          { action: 'freeze', env: this.env(app, checkpointId, 'freeze', drainTo), cwd: dir, log: this.log, ...this.limits() },
        );
        hooks.push(result);
        if (hookFailed(result)) return { ok: false, reason: 'hook-failed', detail: `${describeHookResult(result)}: ${result.stderr.slice(-1_500)}`, hooks };
        const parsed = parsePositions(stdout);
        if (!parsed.ok) return { ok: false, reason: 'hook-failed', detail: `${file.name} (app ${app}) freeze: ${parsed.message}`, hooks };
        Object.assign(positions, parsed.positions);
      }
      const foreign = Object.keys(positions).filter((c) => !cfg.outputs.includes(c));
      if (foreign.length > 0) return { ok: false, reason: 'hook-failed', detail: `${app}: the hooks reported positions for ${foreign.join(', ')}, which are not outputs of ${app}`, hooks };
      const missing = cfg.outputs.filter((c) => positions[c] === undefined);
      if (missing.length > 0) return { ok: false, reason: 'hook-failed', detail: `${app}: no hook reported the position of output ${missing.join(', ')} (print "position <channel> <n>")`, hooks };
      const q = this.quiesced.get(app);
      if (q?.checkpointId === checkpointId) q.stateReady = true;
      this.log.info({ checkpointId, app, positions }, 'opaque app quiesced');
      return { ok: true, outputPositions: positions, hooks };
    });
  }

  capture(checkpointId: CheckpointId, app: string, objectName: string): Promise<OpaqueOutcome<{ state: ObjectRef }>> {
    return this.enqueue(app, async () => {
      const q = this.quiesced.get(app);
      if (!q || q.checkpointId !== checkpointId) {
        const why = q?.resumedByWatchdog ? 'was resumed by the agent at the quiesce deadline' : `is not quiesced for checkpoint ${checkpointId}`;
        return { ok: false, reason: 'freeze-failed', detail: `${app} ${why}`, hooks: [] };
      }
      // Packing a directory the hooks did not finish writing would store a state of no moment at all.
      if (!q.stateReady) return { ok: false, reason: 'freeze-failed', detail: `${app}: its quiesce for checkpoint ${checkpointId} did not succeed, so its state directory is incomplete`, hooks: [] };
      try {
        const bytes = await packDir(this.stateDirOf(app));
        const state = await this.o.store(objectName, bytes);
        this.log.info({ checkpointId, app, bytes: bytes.length }, 'opaque app captured');
        return { ok: true, state };
      } catch (error) {
        return { ok: false, reason: 'store-failed', detail: `${app}: ${error instanceof Error ? error.message : String(error)}`, hooks: [] };
      }
    });
  }

  /** Whether `app` is quiesced (by a checkpoint or an operation) and not resumed yet. */
  isQuiesced(app: string): boolean {
    const q = this.quiesced.get(app);
    return q !== undefined && q.checkpointId !== 0;
  }

  /**
   * Writes a stored state (what `capture` packed) back into the app's SNAP_STATE_DIR and runs its
   * hooks with action `restore`. The app must be quiesced: the operation stops every app before it
   * restores any, and resumes them afterwards.
   */
  restore(checkpointId: CheckpointId, app: string, bytes: Uint8Array): Promise<OpaqueOutcome<{ hooks: HookResult[] }>> {
    return this.enqueue(app, async () => {
      if (!this.o.apps.some((a) => a.name === app)) return { ok: false, reason: 'unknown-app', detail: `${app} is not configured on ${this.o.server}`, hooks: [] };
      if (!this.isQuiesced(app)) {
        const why = this.quiesced.get(app)?.resumedByWatchdog ? 'was resumed by the agent at the quiesce deadline' : 'is not quiesced';
        return { ok: false, reason: 'freeze-failed', detail: `${app} ${why}: an opaque app is restored only while stopped`, hooks: [] };
      }
      const unpacked = unpackInto(bytes);
      if (!unpacked.ok) return { ok: false, reason: 'store-failed', detail: `${app}: ${unpacked.message}`, hooks: [] };
      const dir = this.stateDirOf(app);
      const hooks: HookResult[] = [];
      let files: HookFile[];
      try {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        for (const [name, content] of unpacked.files) {
          await mkdir(dirname(join(dir, name)), { recursive: true });
          await writeFile(join(dir, name), content);
        }
        files = await this.hooksOf(app);
      } catch (error) {
        return { ok: false, reason: 'hook-failed', detail: `${app}: ${error instanceof Error ? error.message : String(error)}`, hooks };
      }
      for (const file of files) {
        const { result } = await runHookWithOutput(
          { name: file.name, file: file.path, args: ['restore'], app },
          { action: 'restore', env: this.env(app, checkpointId, 'restore', {}), cwd: dir, log: this.log, ...this.limits() },
        );
        hooks.push(result);
        if (hookFailed(result)) return { ok: false, reason: 'hook-failed', detail: `${describeHookResult(result)}: ${result.stderr.slice(-1_500)}`, hooks };
      }
      this.log.info({ checkpointId, app, files: unpacked.files.length, hooks: hooks.length }, 'opaque app restored');
      return { ok: true, hooks };
    });
  }

  resume(checkpointId: CheckpointId, app: string, cause: 'command' | 'watchdog' = 'command'): Promise<HookResult[]> {
    return this.enqueue(app, async () => {
      const q = this.quiesced.get(app);
      if (q?.watchdog) clearTimeout(q.watchdog);
      if (cause === 'watchdog') {
        if (!q || q.checkpointId !== checkpointId) return [];
        this.quiesced.set(app, { checkpointId: 0, watchdog: undefined, resumedByWatchdog: true, stateReady: false });
      } else {
        this.quiesced.delete(app);
      }
      const hooks: HookResult[] = [];
      let files: HookFile[] = [];
      try {
        files = await this.hooksOf(app);
      } catch (error) {
        this.log.error({ app, err: error }, 'resume hooks not found');
      }
      for (const file of [...files].reverse()) {
        hooks.push(
          await runHook({ name: file.name, file: file.path, args: ['resume'], app }, { action: 'resume', env: this.env(app, checkpointId, 'resume', {}), cwd: this.stateDirOf(app), log: this.log, ...this.limits() }),
        );
      }
      const failed = hooks.filter(hookFailed);
      if (failed.length > 0) this.log.error({ app, hooks: failed.map(describeHookResult) }, 'opaque app resume hooks failed');
      else this.log.info({ checkpointId, app, cause }, 'opaque app resumed');
      return hooks;
    });
  }

  private markQuiesced(checkpointId: CheckpointId, app: string): void {
    const prior = this.quiesced.get(app);
    if (prior?.watchdog) clearTimeout(prior.watchdog);
    const entry: Quiesced = { checkpointId, watchdog: undefined, resumedByWatchdog: false, stateReady: false };
    entry.watchdog = setTimeout(() => {
      this.log.warn({ checkpointId, app, afterMs: this.o.config.freezeDeadlineMsMax }, 'opaque app still quiesced at the deadline: resuming it');
      void this.resume(checkpointId, app, 'watchdog');
    }, this.o.config.freezeDeadlineMsMax);
    entry.watchdog.unref();
    this.quiesced.set(app, entry);
  }

  /** Resumes every app still quiesced (agent shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.quiesced.entries()].filter(([, q]) => q.checkpointId !== 0).map(([app, q]) => this.resume(q.checkpointId, app)));
  }
}
