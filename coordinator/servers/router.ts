/**
 * The control bus of a coordinator with a server backend: a round's `freeze` and `thaw` for a
 * server the plan marks agentless (PlanInput.agentlessServers) are carried out by the server
 * backend instead of going out over NATS, and answered with the `frozen` / `thawed` (or `decline`)
 * events an agent would have sent. Every other command, and every command for a server with an
 * agent, goes out as before. The round machine and its runner see no difference.
 *
 * Like an agent's watchdog, a paused server is resumed at the freeze's deadline even if no thaw
 * came. A thaw waits for a freeze under way to settle, so a machine paused late is still resumed.
 * If the coordinator process itself dies while a machine is paused, the next coordinator's recovery
 * sends the round's servers an abort notice, on which a server without an agent is resumed here.
 */
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { AgentEvent, HookResult } from '../../src/wire/index.js';
import { ControlBus, type ControlBusLimits, type ControlWithoutId } from '../bus.js';
import type { Result } from '../errors.js';
import type { AgentlessServer, Plan } from '../model.js';
import { freezeHookName, type HeldServer, type ServerBackend } from './backend.js';

/** A failed resume is tried again this many times, this far apart, before it is left to an operator. */
const RESUME_ATTEMPTS_MAX = 3;
const RESUME_RETRY_MS = 1_000;
/** Plans remembered by checkpoint, for the volume routing of rounds in flight (coordinator/servers/volumes.ts). */
const PLANS_REMEMBERED_MAX = 256;

type Freeze = Extract<ControlWithoutId, { type: 'freeze' }>;
type Thaw = Extract<ControlWithoutId, { type: 'thaw' }>;

interface Entry {
  /** Settles once the freeze is decided and carried out (or handed to NATS). */
  op: Promise<void>;
  kind: 'deciding' | 'agent' | 'agentless';
  server?: AgentlessServer;
  held?: HeldServer;
  frozenAtUnixMs?: number;
  watchdog?: NodeJS.Timeout;
  /** The thaw already carried out, replayed to a later thaw (as an agent answers a duplicate). */
  thawed?: { thawedAtUnixMs: number; byWatchdog: boolean };
}

export interface PlanReader {
  get(planId: string): Promise<Result<Plan>>;
}

export class ServerRoutingBus extends ControlBus {
  private readonly entries = new Map<string, Entry>();
  private readonly own = new Set<(e: AgentEvent) => void>();
  private readonly plansByCheckpoint = new Map<number, Plan>();
  private readonly rlog: Logger;

  constructor(
    nc: NatsConnection,
    log: Logger,
    private readonly servers: ServerBackend,
    private readonly plans: PlanReader,
    limits: Partial<ControlBusLimits> = {},
    private readonly nowUnixMs: () => number = Date.now,
  ) {
    super(nc, log, limits);
    this.rlog = log.child({ component: 'server-router' });
  }

  override onEvents(listener: (e: AgentEvent) => void): () => void {
    const off = super.onEvents(listener);
    this.own.add(listener);
    return () => {
      off();
      this.own.delete(listener);
    };
  }

  /** The plan a freeze of this checkpoint was routed by, while it is remembered. */
  planOf(checkpointId: number): Plan | undefined {
    return this.plansByCheckpoint.get(checkpointId);
  }

  override send(control: ControlWithoutId, requestId?: string): string {
    if (control.type === 'abort') return this.abort(control, requestId ?? this.newRequestId());
    if (control.type !== 'freeze') return super.send(control, requestId);
    const id = requestId ?? this.newRequestId();
    const key = `${control.checkpointId}/${control.server}`;
    const entry: Entry = { op: Promise.resolve(), kind: 'deciding' };
    this.entries.set(key, entry);
    entry.op = this.plans.get(control.plan).then(async (plan) => {
      const server = plan.ok && plan.value.tenant === control.tenant ? plan.value.agentlessServers?.find((s) => s.server === control.server) : undefined;
      if (!plan.ok) this.rlog.warn({ plan: control.plan, error: plan.error.message }, 'plan not readable: freeze sent to the agent');
      if (server === undefined) {
        entry.kind = 'agent';
        this.entries.delete(key);
        try {
          super.send(control, id);
        } catch (error) {
          this.emit(control, { type: 'decline', checkpointId: control.checkpointId, reason: 'freeze-failed', detail: `the freeze could not be sent: ${String(error)}` }, id);
        }
        return;
      }
      entry.kind = 'agentless';
      entry.server = server;
      this.remember(control.checkpointId, plan.ok ? plan.value : undefined);
      await this.freeze(control, id, entry, server);
    });
    return id;
  }

  /**
   * An abort notice: an agent thaws on it; a server without an agent is resumed here. The recovery
   * of rounds a stopped coordinator left sends it, and that coordinator may have left the machine
   * paused (or its file systems frozen): both are undone, since which one it did died with it.
   */
  private abort(control: Extract<ControlWithoutId, { type: 'abort' }>, id: string): string {
    const entry = this.entries.get(`${control.checkpointId}/${control.server}`);
    if (entry !== undefined) {
      void entry.op.then(async () => {
        if (entry.kind === 'agent') super.send(control, id);
        else await this.thawEntry(control, entry, false);
      });
      return id;
    }
    void this.plans.get(control.plan).then(async (plan) => {
      const server = plan.ok && plan.value.tenant === control.tenant ? plan.value.agentlessServers?.find((s) => s.server === control.server) : undefined;
      if (server === undefined) {
        try {
          super.send(control, id);
        } catch (error) {
          this.rlog.warn({ server: control.server, checkpointId: control.checkpointId, err: error }, 'abort notice not sent');
        }
        return;
      }
      const undo: HeldServer[] = server.guestAgentRef !== undefined ? [{ method: 'guest-fsfreeze', wasPaused: false }] : [];
      undo.push({ method: 'hypervisor-pause', wasPaused: false });
      for (const held of undo) {
        const r = await this.servers.thaw(server, held, control.checkpointId);
        const fields = { server: control.server, checkpointId: control.checkpointId, method: held.method };
        if (r.ok) this.rlog.warn(fields, 'server of an aborted round resumed (a stopped coordinator may have left it held)');
        else this.rlog.error({ ...fields, error: r.error.message }, 'server of an aborted round NOT resumed: it may still be held; resume it by hand');
      }
    });
    return id;
  }

  private remember(checkpointId: number, plan: Plan | undefined): void {
    if (plan === undefined) return;
    this.plansByCheckpoint.set(checkpointId, plan);
    if (this.plansByCheckpoint.size > PLANS_REMEMBERED_MAX) this.plansByCheckpoint.delete(this.plansByCheckpoint.keys().next().value as number);
  }

  private async freeze(control: Freeze, id: string, entry: Entry, server: AgentlessServer): Promise<void> {
    const startedAt = this.nowUnixMs();
    const r = await this.servers.freeze(server, control.checkpointId);
    const durationMs = this.nowUnixMs() - startedAt;
    if (!r.ok) {
      // The backend undid what it could; a later thaw has nothing to resume.
      entry.thawed = { thawedAtUnixMs: this.nowUnixMs(), byWatchdog: false };
      const hook = hookResult(this.servers.failedFreezeMethod(server), 'freeze', durationMs, r.error.message);
      this.emit(control, { type: 'decline', checkpointId: control.checkpointId, reason: 'freeze-failed', detail: r.error.message, hooks: [hook] }, id);
      return;
    }
    entry.held = r.value;
    entry.frozenAtUnixMs = this.nowUnixMs();
    // As an agent's watchdog: resumed at the deadline whatever became of the coordinator's thaw.
    entry.watchdog = setTimeout(() => void this.thawEntry(control, entry, true), control.deadlineMs);
    const hook = hookResult(r.value.method, 'freeze', durationMs, '');
    this.emit(control, { type: 'frozen', checkpointId: control.checkpointId, frozenAtUnixMs: entry.frozenAtUnixMs, hooksMs: durationMs, hooks: [hook] }, id);
  }

  override request(control: ControlWithoutId, timeoutMs: number): Promise<AgentEvent | undefined> {
    if (control.type !== 'thaw') return super.request(control, timeoutMs);
    const entry = this.entries.get(`${control.checkpointId}/${control.server}`);
    if (entry === undefined) return super.request(control, timeoutMs);
    const answer = entry.op.then(() => (entry.kind === 'agent' ? super.request(control, timeoutMs) : this.thawEntry(control, entry, false)));
    // As for an agent, the round waits for the answer at most `timeoutMs`; a resume still under way
    // (a slow or wedged monitor, its retries) goes on, and reports its `thawed` when it ends.
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      timer.unref();
      void answer.then((e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
  }

  /** Resumes the server (once; a second thaw is answered with the first one's outcome). */
  private async thawEntry(control: Freeze | Thaw | Extract<ControlWithoutId, { type: 'abort' }>, entry: Entry, byWatchdog: boolean): Promise<AgentEvent | undefined> {
    clearTimeout(entry.watchdog);
    entry.watchdog = undefined;
    const server = entry.server as AgentlessServer;
    const key = `${control.checkpointId}/${control.server}`;
    if (entry.thawed !== undefined || entry.held === undefined) {
      if (!byWatchdog) this.entries.delete(key);
      const t = entry.thawed ?? { thawedAtUnixMs: this.nowUnixMs(), byWatchdog: false };
      return this.emit(control, { type: 'thawed', checkpointId: control.checkpointId, thawedAtUnixMs: t.thawedAtUnixMs, byWatchdog: t.byWatchdog, hooks: [], frozenAtUnixMs: entry.frozenAtUnixMs ?? 0 });
    }
    const held = entry.held;
    entry.held = undefined;
    const startedAt = this.nowUnixMs();
    let r = await this.servers.thaw(server, held, control.checkpointId);
    for (let attempt = 2; !r.ok && attempt <= RESUME_ATTEMPTS_MAX; attempt++) {
      this.rlog.warn({ server: control.server, checkpointId: control.checkpointId, attempt, error: r.error.message }, 'resuming the server failed: trying again');
      await new Promise((resolve) => setTimeout(resolve, RESUME_RETRY_MS));
      r = await this.servers.thaw(server, held, control.checkpointId);
    }
    if (!byWatchdog) this.entries.delete(key);
    if (!r.ok) {
      this.rlog.error({ server: control.server, checkpointId: control.checkpointId, error: r.error.message }, 'server NOT resumed: it may still be paused; resume it by hand');
      return undefined;
    }
    entry.thawed = { thawedAtUnixMs: this.nowUnixMs(), byWatchdog };
    const hook = hookResult(held.method, 'thaw', this.nowUnixMs() - startedAt, '');
    return this.emit(control, { type: 'thawed', checkpointId: control.checkpointId, thawedAtUnixMs: entry.thawed.thawedAtUnixMs, byWatchdog, hooks: [hook], frozenAtUnixMs: entry.frozenAtUnixMs ?? 0 });
  }

  /** An event as the server's agent would have sent it, to every listener (the service's rounds). */
  private emit(control: ControlWithoutId, body: Extract<AgentEvent, { type: 'frozen' | 'thawed' | 'decline' }> extends infer E ? DistributiveOmit<E, 'requestId' | 'inReplyTo' | 'tenant' | 'server' | 'epoch'> : never, inReplyTo?: string): AgentEvent {
    const e = Object.assign({ requestId: this.newRequestId(), tenant: control.tenant, server: control.server, epoch: control.epoch }, inReplyTo !== undefined ? { inReplyTo } : {}, body) as AgentEvent;
    for (const l of this.own) {
      try {
        l(e);
      } catch (error) {
        this.rlog.error({ err: error, event: e.type }, 'event listener failed');
      }
    }
    return e;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function hookResult(method: HeldServer['method'], action: 'freeze' | 'thaw', durationMs: number, error: string): HookResult {
  return { hook: freezeHookName(method), action, exitCode: error === '' ? 0 : 1, timedOut: false, durationMs, stderr: error, attempts: 1 };
}

/**
 * The plan of a checkpoint, for ServerAwareVolumes: the one its freezes were routed by, else read
 * through the checkpoint's record (a round that froze nothing, a clean-up after a restart).
 */
export function planOfCheckpoint(router: ServerRoutingBus, checkpoints: { get(id: number): Promise<Result<{ record: { planId: string } }>> }, plans: PlanReader): (id: number) => Promise<Result<Plan>> {
  return async (id) => {
    const known = router.planOf(id);
    if (known !== undefined) return { ok: true, value: known };
    const stored = await checkpoints.get(id);
    if (!stored.ok) return stored;
    return plans.get(stored.value.record.planId);
  };
}
