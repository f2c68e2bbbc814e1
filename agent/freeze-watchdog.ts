/**
 * The freeze watchdog outside the agent's event loop: a small detached shell process, armed by
 * every freeze that has a mount or a hook to undo, before its first filesystem is frozen, that
 * sleeps until the freeze's deadline and then thaws by itself, whatever became of the agent. The agent's own timer (agent/freeze.ts) is a
 * timer in its event loop: an app in the agent's process that writes synchronously to a frozen
 * mount blocks that loop, and with it the timer, until the mount is thawed, which nothing in the
 * process can do any more. This process is not the agent's event loop: it thaws when the agent is
 * blocked, stopped (SIGSTOP), or dead (SIGKILL, OOM).
 *
 * The two never thaw at the same time. Whoever begins a thaw first *claims* it by creating the
 * freeze's claim directory (`mkdir` is atomic: exactly one of them succeeds):
 *   - the agent claims at the start of every thaw (a command, its own timer, shutdown, a failed
 *     freeze, recovery); having claimed, it kills the watchdog (asleep: it claimed nothing), so a
 *     normal thaw leaves no process behind;
 *   - the watchdog claims when its sleep ends; having claimed, it runs `fsfreeze -u` on every
 *     configured mount, last one first, and then the `thaw` and `resume` hooks in the freeze's
 *     undo order, but the hooks only where running them cannot overtake the agent's own undo order:
 *     when the freeze has no sessions (a session is released between the mounts and the thaw hooks,
 *     and only the agent can release it), or when the agent process is gone (its sessions let go
 *     when their stdin closed). Each step's exit code and times go to the results file;
 *   - an agent whose claim fails waits for the watchdog to end, takes every step the results file
 *     reports done as done (so no hook runs twice), and carries out the rest itself;
 *   - with the agent gone and every step done, the watchdog writes the status file (thawed, cause
 *     `watchdog`); otherwise it leaves it saying frozen, for the next agent's recovery.
 *
 * Each step runs under `timeout` (coreutils) with the hook limits. The watchdog's own output and its
 * hooks' output are appended to `<stateDir>/freeze-watchdog.log`. It never thaws before the
 * deadline: if `sleep` refuses a fraction of a second it sleeps the whole seconds rounded up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { HookAction } from '../src/wire/index.js';
import { FREEZE_STATUS_FILE } from './freeze-status.js';

/**
 * Under the state directory: per armed watchdog, a ticket `<id>.armed` holding its pid (written
 * before anything is frozen, so that an agent started after this one died finds every watchdog it
 * left, whatever the status file says), its claim directory and its results file.
 */
export const WATCHDOG_DIR = 'freeze-watchdog';
/** Under the state directory: what watchdogs that fired printed, and their hooks' output. */
export const WATCHDOG_LOG = 'freeze-watchdog.log';
/** A ticket's name: `<agent pid>-<checkpoint>-<random>.armed`. */
const TICKET = /^((\d+)-[0-9a-z-]+)\.armed$/;
/** How often an agent waiting for another process's watchdog (recovery) looks whether it ended. */
const ADOPTED_POLL_MS = 20;

/** One thaw step the watchdog may carry out; `stepKey` names it alike in the agent and in the results file. */
export type WatchdogStep =
  | { readonly kind: 'fsfreeze'; readonly mount: string }
  | { readonly kind: 'hook'; readonly action: 'thaw' | 'resume'; readonly path: string; readonly app?: string; readonly stateDir: string };

export function stepKey(step: { kind: 'fsfreeze'; mount: string } | { kind: 'hook'; action: HookAction; path: string }): string {
  return step.kind === 'fsfreeze' ? `fsfreeze ${step.mount}` : `${step.action} ${step.path}`;
}

export interface WatchdogPlan {
  readonly stateDir: string;
  readonly checkpointId: number;
  /** Unique per freeze: names its claim and results, and lets a later agent recognise the process. */
  readonly id: string;
  readonly sleepMs: number;
  readonly fsfreeze: string;
  /** The mount steps first (in thaw order), then the hook steps (in thaw order). */
  readonly steps: readonly WatchdogStep[];
  /** Run the hook steps even while the agent process lives (false when the freeze holds sessions). */
  readonly hooksWhileAgentAlive: boolean;
  readonly hookTimeoutMs: number;
  readonly hookKillGraceMs: number;
  /** The hooks' environment, as for the agent's own thaw (SNAP_ACTION, SNAP_APP, SNAP_STATE_DIR are set per step). */
  readonly env: NodeJS.ProcessEnv;
}

/** One step the watchdog carried out. `timeout` exits 124 when it stopped the step, 137 after its SIGKILL. */
export interface WatchdogStepResult {
  readonly exitCode: number;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

export function watchdogStepFailed(r: WatchdogStepResult): boolean {
  return r.timedOut || r.exitCode !== 0;
}

/** What a watchdog that claimed the thaw did, read from its results file. */
export interface WatchdogReport {
  /** When it claimed the thaw (its wall clock; the deadline when its clock could not say). */
  readonly claimedAtUnixMs: number;
  /** Its steps by `stepKey`. */
  readonly steps: ReadonlyMap<string, WatchdogStepResult>;
  /** False when it was still running when the agent stopped waiting, or ended without finishing. */
  readonly finished: boolean;
}

export type ArmResult = { ok: true; watchdog: FreezeWatchdog } | { ok: false; message: string };

export class FreezeWatchdog {
  private cleaned = false;

  private constructor(
    readonly id: string,
    readonly pid: number,
    private readonly stateDir: string,
    private readonly deadlineAtUnixMs: number,
    /** Resolves once the process is gone. */
    private readonly gone: Promise<void>,
    private readonly child?: ChildProcess,
  ) {}

  /** Starts the watchdog process; fails only when it cannot be started at all. */
  static arm(plan: WatchdogPlan, deadlineAtUnixMs: number): ArmResult {
    const dir = join(plan.stateDir, WATCHDOG_DIR);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      return { ok: false, message: `cannot create ${dir}: ${(error as Error).message}` };
    }
    let child: ChildProcess;
    try {
      // Its own session and process group: a signal meant for the agent's group does not reach it,
      // and the agent stops it (and its `sleep`) with one kill of the group.
      child = spawn('/bin/sh', ['-c', watchdogScript(plan), `snapagent-freeze-watchdog-${plan.id}`], { detached: true, stdio: 'ignore', env: plan.env });
    } catch (error) {
      return { ok: false, message: `cannot start /bin/sh: ${(error as Error).message}` };
    }
    // Failures to start are reported by an 'error' event, after this turn; a started child has its pid now.
    child.once('error', () => undefined);
    if (child.pid === undefined) return { ok: false, message: 'cannot start /bin/sh' };
    child.unref();
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const watchdog = new FreezeWatchdog(plan.id, child.pid, plan.stateDir, deadlineAtUnixMs, gone, child);
    try {
      writeFileSync(watchdog.ticketPath, `${child.pid}\n`);
    } catch (error) {
      watchdog.claim();
      void watchdog.cleanUp();
      return { ok: false, message: `cannot write ${watchdog.ticketPath}: ${(error as Error).message}` };
    }
    return { ok: true, watchdog };
  }

  /**
   * Every watchdog armed by an agent process that is gone (listed by their tickets), taken over:
   * each one still asleep is claimed (and stopped), each one that claimed is waited for (at most
   * `waitMs` in all). Resolves with how many there were and what those that thawed did, merged.
   */
  /** Whether an agent process that is gone left a watchdog's ticket (cheap: one directory listing). */
  static async leftoversExist(stateDir: string, deadAgent: (agentPid: number) => boolean): Promise<boolean> {
    const names = await readdir(join(stateDir, WATCHDOG_DIR)).catch(() => [] as string[]);
    return names.some((name) => {
      const m = TICKET.exec(name);
      return m !== null && deadAgent(Number(m[2]));
    });
  }

  /** Removes what an agent process that exited before its clean-up left: claims and results without a ticket. */
  static async removeStale(stateDir: string, deadAgent: (agentPid: number) => boolean): Promise<void> {
    const dir = join(stateDir, WATCHDOG_DIR);
    const names = await readdir(dir).catch(() => [] as string[]);
    const armed = new Set(names.filter((n) => TICKET.test(n)).map((n) => n.slice(0, -'.armed'.length)));
    for (const name of names) {
      const m = /^((\d+)-[0-9a-z-]+)\.(claim|results)$/.exec(name);
      if (m && !armed.has(m[1] as string) && deadAgent(Number(m[2]))) await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  static async takeOverLeftovers(stateDir: string, deadAgent: (agentPid: number) => boolean, waitMs: number): Promise<{ found: number; report?: WatchdogReport }> {
    const dir = join(stateDir, WATCHDOG_DIR);
    const names = await readdir(dir).catch(() => [] as string[]);
    const endAt = performance.now() + waitMs;
    const reports: WatchdogReport[] = [];
    let found = 0;
    for (const name of names) {
      const m = TICKET.exec(name);
      if (!m || !deadAgent(Number(m[2]))) continue;
      found += 1;
      const id = m[1] as string;
      const pid = Number((await readFile(join(dir, name), 'utf8').catch(() => '')).trim());
      const w = FreezeWatchdog.adopt(stateDir, id, Number.isSafeInteger(pid) && pid > 0 ? pid : 0, Date.now());
      if (!w.claim()) reports.push(await w.report(Math.max(0, endAt - performance.now())));
      await w.cleanUp();
    }
    await FreezeWatchdog.removeStale(stateDir, deadAgent);
    if (reports.length === 0) return { found };
    const steps = new Map<string, WatchdogStepResult>();
    for (const r of reports) for (const [k, v] of r.steps) if (!steps.has(k) || watchdogStepFailed(steps.get(k) as WatchdogStepResult)) steps.set(k, v);
    return { found, report: { claimedAtUnixMs: Math.min(...reports.map((r) => r.claimedAtUnixMs)), steps, finished: reports.every((r) => r.finished) } };
  }

  /** The watchdog another agent process armed, from its ticket. */
  private static adopt(stateDir: string, id: string, pid: number, deadlineAtUnixMs: number): FreezeWatchdog {
    const gone = (async () => {
      while (watchdogRunning(pid, id)) await new Promise((resolve) => setTimeout(resolve, ADOPTED_POLL_MS));
    })();
    return new FreezeWatchdog(id, pid, stateDir, deadlineAtUnixMs, gone);
  }

  private get claimPath(): string {
    return join(this.stateDir, WATCHDOG_DIR, `${this.id}.claim`);
  }

  private get resultsPath(): string {
    return join(this.stateDir, WATCHDOG_DIR, `${this.id}.results`);
  }

  private get ticketPath(): string {
    return join(this.stateDir, WATCHDOG_DIR, `${this.id}.armed`);
  }

  /**
   * Claims the thaw for the agent, synchronously (it is also called from an `exit` handler). True:
   * the agent thaws, and the watchdog has been stopped. False: the watchdog claimed first and is
   * thawing, or has thawed; see `report()`.
   */
  claim(): boolean {
    try {
      mkdirSync(this.claimPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      // The claim cannot be made (the state directory is gone or unwritable): the agent thaws.
    }
    this.stop();
    // At once: a process that exits before `cleanUp` is done must not leave a ticket behind (the
    // next agent would take it for a freeze it never thawed). The claim stays until the process is gone.
    rmSync(this.ticketPath, { force: true });
    return true;
  }

  /** SIGKILL to the watchdog's process group: only ever while it is asleep (the agent claimed). */
  private stop(): void {
    if (this.child ? this.child.exitCode !== null || this.child.signalCode !== null : !watchdogRunning(this.pid, this.id)) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // ESRCH: gone already.
    }
  }

  /** After a failed claim: waits (at most `waitMs`) for the watchdog to end and reads what it did. */
  async report(waitMs: number): Promise<WatchdogReport> {
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([this.gone.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waitMs)))]);
    clearTimeout(timer);
    const text = await readFile(this.resultsPath, 'utf8').catch(() => '');
    return parseResults(text, this.deadlineAtUnixMs, ended);
  }

  /** Removes the claim, the results and, last, the ticket once the process is gone; the log stays. */
  async cleanUp(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await this.gone;
    await rm(this.claimPath, { recursive: true, force: true }).catch(() => undefined);
    await rm(this.resultsPath, { force: true }).catch(() => undefined);
    await rm(this.ticketPath, { force: true }).catch(() => undefined);
  }
}

/**
 * Whether `pid` is a live (not zombie) process that is this watchdog: its command line names the
 * id. A pid reused by an unrelated process is never taken for it.
 */
export function watchdogRunning(pid: number, id: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`snapagent-freeze-watchdog-${id}`);
  } catch {
    return false;
  }
}

function parseResults(text: string, deadlineAtUnixMs: number, ended: boolean): WatchdogReport {
  let claimedAtUnixMs = deadlineAtUnixMs;
  let finished = false;
  const steps = new Map<string, WatchdogStepResult>();
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'claimed') {
      const at = Number(f[1]);
      if (Number.isSafeInteger(at) && at > 0) claimedAtUnixMs = at;
    } else if (f[0] === 'done') {
      finished = ended;
    } else if (f[0] === 'step' && f.length >= 5) {
      const exitCode = Number(f[1]);
      if (!Number.isInteger(exitCode)) continue;
      const durationMs = Number(f[3]) - Number(f[2]);
      const timedOut = exitCode === 124 || exitCode === 137;
      steps.set(f.slice(4).join('\t'), { exitCode: timedOut ? -1 : exitCode, timedOut, durationMs: Number.isFinite(durationMs) && durationMs >= 0 ? durationMs : 0 });
    }
  }
  return { claimedAtUnixMs, steps, finished };
}

/** Single-quoted for sh: nothing inside is expanded. */
function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}

/** The watchdog's program. Every value in it is quoted; the id is made of [0-9a-z-] only. */
export function watchdogScript(plan: WatchdogPlan): string {
  const dir = join(plan.stateDir, WATCHDOG_DIR);
  const mounts = plan.steps.filter((s): s is Extract<WatchdogStep, { kind: 'fsfreeze' }> => s.kind === 'fsfreeze');
  const hooks = plan.steps.filter((s): s is Extract<WatchdogStep, { kind: 'hook' }> => s.kind === 'hook');
  const claim = sh(join(dir, `${plan.id}.claim`));
  const lines = [
    `sleep ${seconds(plan.sleepMs)} 2>/dev/null || sleep ${Math.ceil(Math.max(0, plan.sleepMs) / 1000)}`,
    // Exit only if the agent claimed: a claim that cannot be made (the directory gone, a full
    // disk) must not keep the guest frozen.
    `mkdir -p ${sh(dir)} 2>/dev/null; if ! mkdir ${claim} 2>/dev/null; then [ -d ${claim} ] && exit 0; fi`,
    `results=${sh(join(dir, `${plan.id}.results`))}`,
    // A redirection that fails ends the shell when it is exec's: open the log first.
    `log=${sh(join(plan.stateDir, WATCHDOG_LOG))}; ( : >>"$log" ) 2>/dev/null || log=/dev/null; exec >>"$log" 2>&1`,
    `now() { date +%s%3N; }`,
    `ok=1`,
    `printf 'claimed\\t%s\\n' "$(now)" >> "$results"`,
    `echo "$(date -u +%FT%T.%3NZ) snapagent freeze watchdog ${plan.id}: the freeze deadline passed without a thaw from the agent (pid ${process.pid}): thawing"`,
    // `timeout` starts the step in a process group of its own and kills the whole group.
    `if command -v timeout >/dev/null 2>&1; then bound="timeout -k ${seconds(plan.hookKillGraceMs)} ${seconds(plan.hookTimeoutMs)}"; else bound=; fi`,
    `step() { k=$1; shift; s=$(now); "$@"; rc=$?; [ "$rc" = 0 ] || ok=0; printf 'step\\t%s\\t%s\\t%s\\t%s\\n' "$rc" "$s" "$(now)" "$k" >> "$results"; echo "snapagent freeze watchdog ${plan.id}: $k: exit $rc"; }`,
    `hook() { ( cd "$3" 2>/dev/null; SNAP_ACTION=$1 SNAP_STATE_DIR=$3 SNAP_ATTEMPT=1; export SNAP_ACTION SNAP_STATE_DIR SNAP_ATTEMPT; if [ -n "$4" ]; then SNAP_APP=$4; export SNAP_APP; else unset SNAP_APP; fi; exec $bound "$2" "$1" ); }`,
    ...mounts.map((m) => `step ${sh(stepKey(m))} $bound ${sh(plan.fsfreeze)} -u ${sh(m.mount)}`),
  ];
  lines.push(`alive() { [ -r /proc/${process.pid}/stat ] && ! grep -q '^State:[[:space:]]*Z' /proc/${process.pid}/status 2>/dev/null; }`);
  if (hooks.length > 0) {
    lines.push(
      `if ${plan.hooksWhileAgentAlive ? 'true' : '! alive'}; then`,
      ...hooks.map((h) => `  step ${sh(stepKey(h))} hook ${h.action} ${sh(h.path)} ${sh(h.stateDir)} ${sh(h.app ?? '')}`),
      `fi`,
    );
  }
  // With the agent gone and every step done, the status file says what `snapagent status` should:
  // thawed by the watchdog. Otherwise it is left saying frozen, for the next agent to recover.
  // frozenAtUnixMs is read from the top level of the status the agent wrote (indented by two).
  const status = sh(join(plan.stateDir, FREEZE_STATUS_FILE));
  lines.push(
    `if [ "$ok" = 1 ] && ! alive; then`,
    `  fa=$(sed -n 's/^  "frozenAtUnixMs": \\([0-9]*\\),\\{0,1\\}$/\\1/p' ${status} 2>/dev/null | head -n 1); t=$(now)`,
    `  printf '{\\n  "frozen": false,\\n  "state": "thawed",\\n  "frozenMounts": [],\\n  "lastThaw": {\\n    "checkpointId": ${plan.checkpointId},\\n    "frozenAtUnixMs": %s,\\n    "thawedAtUnixMs": %s,\\n    "cause": "watchdog"\\n  },\\n  "pid": ${process.pid},\\n  "updatedAtUnixMs": %s\\n}\\n' "\${fa:-0}" "$t" "$t" > ${status}.watchdog && mv -f ${status}.watchdog ${status}`,
    `fi`,
    `printf 'done\\t%s\\n' "$(now)" >> "$results"`,
  );
  return lines.join('\n');
}
