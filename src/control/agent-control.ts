/**
 * The agent's control decisions as a pure machine (DESIGN §3, §5): which of the coordinator's
 * commands to carry out, which to fence, which to answer from memory, and how every event the agent
 * publishes is stamped. The agent daemon (agent/agent.ts) is the shell: it feeds decoded commands and
 * the events its apps and hooks produce, and carries out the effects.
 *
 * - **Epochs per plan.** The agent keeps one epoch per plan it serves. A command of an older epoch
 *   of its plan is fenced (`stale-epoch`); other plans on the same server are not affected, so a
 *   rollback of plan A never makes plan B's triggers stale, and a new plan over apps that were
 *   restored into is served at once.
 * - A newer epoch than the agent knows is adopted by a restore once it succeeded (the `restored`
 *   answer), by a freeze (a crash-level rollback announces the plan's epoch with it), and by any
 *   other command of a plan the agent knows nothing of (it restarted, or the plan is new to it:
 *   there is no past of that plan here to fence). Any other command of a newer epoch means the agent
 *   missed a restore: its apps still hold the abandoned future, so it is refused (`stale-epoch`,
 *   "behind") until the restore comes. Except a quiesce, and a resume naming (opaque) apps: they
 *   only stop and start apps (a rollback of opaque apps quiesces them before restoring them), and
 *   the capture that would store their state stays fenced.
 * - **A restore moves its plan's epoch forward.** One older than the agent's epoch of its plan, or
 *   at an epoch whose restore the agent knows has ended here, is stale and declined (`stale-epoch`),
 *   unless its request id is remembered (then it is a duplicate, answered from memory). The agent
 *   knows a restore at epoch E ended when it answered `restored` to it, or when it took the plan's
 *   resume without apps at E: the operation resumes only once every server restored. So a resend
 *   of a restore that reaches an agent which restored, restarted (forgetting the request id) and was
 *   resumed is refused instead of pausing the apps again with no resume to follow. A restore of a
 *   plan the agent knows nothing of is carried out: that is how a restarted agent gets its apps'
 *   state back; and so is one at the epoch a trigger brought, since a checkpoint may be admitted at
 *   the new epoch while the restore is still on its way.
 * - **Deduplication with remembered answers.** Every command's request id is remembered with the
 *   answers the agent published for it (replies, and the acks and declines of a trigger's
 *   checkpoint). A duplicate is not carried out again: its remembered answers are published again,
 *   byte for byte the same events, so a coordinator that resends a command until it is answered
 *   gets its answer and the work is done once.
 * - Abort and thaw are never fenced: they only release (blocked inputs, a frozen guest).
 * - **Plan layouts.** A plan's trigger broadcast carries no per-server part (its size would grow with
 *   the plan, and every agent decodes it: a round quadratic in the servers). A Trigger addressed to
 *   this server that names a layout is kept as the plan's layout; a broadcast of that layout is
 *   carried out as that Trigger with the broadcast's ids, epoch and policy, and one of another layout
 *   is ignored (`not-served`): this agent is not in the plan, or the coordinator sends it the Trigger
 *   with its part under the same request id.
 *
 * The freeze deadline is not a timer of this machine: the FreezeController (agent/freeze.ts) owns the
 * watchdog, which must thaw the guest even when the daemon's event loop is wedged on NATS, and keeps
 * its deadline in a status file that survives a restart of the agent.
 */
import type { CheckpointId, Epoch } from '../ids.js';
import type { AgentEvent, AgentEventBody, AppName, Control, PlanTrigger, RequestId, WireDeclineReason } from '../wire/types.js';
import type { NegativeControls } from './negative-controls.js';

export interface AgentControlConfig {
  readonly tenant: string;
  readonly server: string;
  /** Makes this agent's event ids unique across its restarts (the shell draws it once at start). */
  readonly bootId: string;
  /** The apps configured on this server. */
  readonly apps: readonly AppName[];
  /** Request ids remembered, with their answers, to answer duplicates; the oldest is forgotten first. */
  readonly requestsRememberedMax: number;
  /** Answers remembered for one request (a trigger's acks and declines, one per app and retry). */
  readonly answersPerRequestMax: number;
  /**
   * Checkpoints whose plan, epoch and acks are remembered, to stamp late acks and to publish the
   * acks again for a resent trigger; the oldest goes first. Small: an ack may carry an inline state.
   */
  readonly checkpointsRememberedMax: number;
  /** Only `epoch-per-agent` concerns this machine: one epoch for all plans (defect 1 of issue 9). */
  readonly negativeControls: NegativeControls;
}

export const AGENT_CONTROL_DEFAULTS = {
  requestsRememberedMax: 4_096,
  answersPerRequestMax: 256,
  checkpointsRememberedMax: 64,
} as const;

/** Problems of a config, or [] when it is usable. */
export function validateAgentControlConfig(c: AgentControlConfig): string[] {
  const problems: string[] = [];
  for (const name of ['requestsRememberedMax', 'answersPerRequestMax', 'checkpointsRememberedMax'] as const) {
    const v = c[name];
    if (!Number.isSafeInteger(v) || v < 1) problems.push(`${name} must be a positive integer, got ${String(v)}`);
  }
  if (c.apps.length === 0) problems.push('apps must name at least one app');
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(c.bootId)) problems.push(`bootId must be 1 to 32 of [A-Za-z0-9_-], got ${JSON.stringify(c.bootId)}`);
  return problems;
}

export type AgentControlInput =
  /** A decoded command from the agent's control subject. */
  | { readonly type: 'control'; readonly control: Control }
  /** A decoded trigger broadcast of one of the tenant's plans. */
  | { readonly type: 'plan-trigger'; readonly trigger: PlanTrigger }
  /** Something the shell reports: an answer to `inReplyTo`, or unsolicited (acks, watchdog thaws, heartbeats). */
  | { readonly type: 'event'; readonly body: AgentEventBody; readonly inReplyTo?: RequestId };

/**
 * What the shell must do, in this order: every `publish` first (remembered answers, refusals), then
 * at most one `execute`.
 */
export type AgentControlEffect =
  /** Publish this event on the agent's event subject, as it is. */
  | { readonly type: 'publish'; readonly event: AgentEvent }
  /**
   * Carry out this command for these apps: the plan's apps of a trigger, the apps a resume after a
   * restore releases, every configured app for commands about the whole server.
   */
  | { readonly type: 'execute'; readonly control: Control; readonly apps: readonly AppName[] };

export type AgentControlRejection =
  /** Addressed to another tenant or server. */
  | 'foreign'
  /** A request id seen before; its remembered answers (if any yet) were published again. */
  | 'duplicate'
  /** A command of an epoch older than the agent's for its plan. */
  | 'stale-epoch'
  /** A command of a newer epoch of a plan whose restore this agent has not done. */
  | 'behind'
  /** A trigger broadcast of a layout this agent does not hold (not in the plan, or not told yet). */
  | 'not-served';

export interface AgentControlStep {
  readonly effects: readonly AgentControlEffect[];
  readonly rejected?: { readonly reason: AgentControlRejection; readonly detail: string };
}

interface RequestMemory {
  readonly control: Control;
  readonly answers: AgentEvent[];
}

/** This server's part of a plan's triggers, as the last Trigger that named a layout gave it. */
interface PlanLayout {
  readonly layout: string;
  readonly apps: readonly AppName[];
  readonly initiatorApps: readonly AppName[];
  readonly backEdgeChannels: readonly string[];
}

interface CheckpointMemory {
  readonly plan: string;
  readonly epoch: Epoch;
  /** The trigger (or freeze, quiesce) that brought the checkpoint: its acks are answers to it. */
  readonly requestId: RequestId;
  /** Its acks and declines published without inReplyTo (the endpoints'), kept with the checkpoint. */
  readonly answers: AgentEvent[];
}

/** Commands that carry out nothing but a fresh answer; never remembered. */
function isProbe(c: Control): c is Extract<Control, { type: 'ping' | 'hello' }> {
  return c.type === 'ping' || c.type === 'hello';
}

export class AgentControl {
  private readonly epochs = new Map<string, Epoch>();
  private readonly requests = new Map<RequestId, RequestMemory>();
  private readonly checkpoints = new Map<CheckpointId, CheckpointMemory>();
  /** Per plan: the apps its last restore paused (and a resume without apps releases). */
  private readonly restoredApps = new Map<string, readonly AppName[]>();
  /**
   * Per plan: the newest epoch whose restore has ended on this agent (it answered `restored`, or took
   * the operation's resume): a restore at that epoch or older is stale. Never above `epochs`.
   */
  private readonly restoresEnded = new Map<string, Epoch>();
  /** Per app: the epoch it was last restored into: the generation its channels open at. */
  private readonly generations = new Map<AppName, Epoch>();
  /** Per plan: its layout (one per plan this server is in; plans are few). */
  private readonly layouts = new Map<string, PlanLayout>();
  private eventCounter = 0;

  constructor(private readonly config: AgentControlConfig) {
    const problems = validateAgentControlConfig(config);
    if (problems.length > 0) throw new Error(`invalid agent control config: ${problems.join('; ')}`);
  }

  /** The agent's epoch of `plan`; undefined when it knows nothing of the plan. */
  epochOf(plan: string): Epoch | undefined {
    return this.epochs.get(this.key(plan));
  }

  /** The generation an app's channels open at: the epoch of its last restore, 0 if none. */
  generationOf(app: AppName): Epoch {
    return this.generations.get(app) ?? 0;
  }

  step(input: AgentControlInput): AgentControlStep {
    switch (input.type) {
      case 'control':
        return this.onControl(input.control);
      case 'plan-trigger':
        return this.onPlanTrigger(input.trigger);
      case 'event':
        return { effects: [{ type: 'publish', event: this.onEvent(input.body, input.inReplyTo) }] };
    }
  }

  /** The negative control keeps one epoch for every plan: the defect the per-plan map fixes. */
  private key(plan: string): string {
    return this.config.negativeControls.has('epoch-per-agent') ? '' : plan;
  }

  private onPlanTrigger(t: PlanTrigger): AgentControlStep {
    if (t.tenant !== this.config.tenant) return { effects: [], rejected: { reason: 'foreign', detail: `trigger of tenant ${t.tenant}` } };
    // The same command as a Trigger already taken (the coordinator sends both while it is unsure
    // this server holds the layout): its answers are on their way, nothing to publish again.
    if (this.requests.has(t.requestId)) return { effects: [], rejected: { reason: 'duplicate', detail: `request ${t.requestId} came as a Trigger first` } };
    const mine = this.layouts.get(t.plan);
    if (mine === undefined || mine.layout !== t.layout) {
      const held = mine === undefined ? 'none' : mine.layout;
      return { effects: [], rejected: { reason: 'not-served', detail: `plan ${t.plan} layout ${t.layout}; this server holds ${held}` } };
    }
    const control: Control = {
      requestId: t.requestId,
      tenant: t.tenant,
      server: this.config.server,
      plan: t.plan,
      epoch: t.epoch,
      type: 'trigger',
      checkpointId: t.checkpointId,
      policy: t.policy,
      timeoutMs: t.timeoutMs,
      initiatorApps: mine.initiatorApps,
      backEdgeChannels: mine.backEdgeChannels,
      inlineStateBytesMax: t.inlineStateBytesMax,
      apps: mine.apps,
    };
    if (t.completedCheckpointId !== undefined) Object.assign(control, { completedCheckpointId: t.completedCheckpointId });
    return this.onControl(control);
  }

  private onControl(c: Control): AgentControlStep {
    if (c.tenant !== this.config.tenant || c.server !== this.config.server) {
      return { effects: [], rejected: { reason: 'foreign', detail: `addressed to ${c.tenant}/${c.server}` } };
    }
    if (isProbe(c)) return { effects: [{ type: 'execute', control: c, apps: this.config.apps }] };
    if (c.type === 'trigger' && c.layout !== undefined) {
      this.layouts.set(c.plan, { layout: c.layout, apps: this.appsFor(c), initiatorApps: c.initiatorApps, backEdgeChannels: c.backEdgeChannels });
    }
    const seen = this.requests.get(c.requestId);
    if (seen !== undefined) {
      const checkpoint = 'checkpointId' in c ? this.checkpoints.get(c.checkpointId) : undefined;
      const answers = checkpoint?.requestId === c.requestId ? [...seen.answers, ...checkpoint.answers] : seen.answers;
      return {
        effects: answers.map((event) => ({ type: 'publish', event })),
        rejected: { reason: 'duplicate', detail: `request ${c.requestId} (${seen.control.type}) seen before; ${answers.length} answer(s) published again` },
      };
    }
    this.remember(c);
    const fence = this.fence(c);
    if (fence !== undefined) return fence;
    if (c.type === 'trigger' || c.type === 'freeze' || c.type === 'quiesce') {
      this.rememberCheckpoint(c.checkpointId, { plan: c.plan, epoch: c.epoch, requestId: c.requestId, answers: [] });
    }
    // A restore pauses its apps as it begins, so its resume releases all of them, even if some failed.
    if (c.type === 'restore') this.restoredApps.set(this.key(c.plan), c.apps.map((a) => a.app));
    // The operation resumes (a resume without apps) only once every server restored: the restore at this epoch is over.
    if (c.type === 'resume' && c.apps.length === 0) this.restoreEnded(c.plan, c.epoch);
    return { effects: [{ type: 'execute', control: c, apps: this.appsFor(c) }] };
  }

  /** Undefined when `c` may be carried out (adopting its epoch where the rules say so); else the refusal. */
  private fence(c: Exclude<Control, { type: 'ping' | 'hello' }>): AgentControlStep | undefined {
    if (c.type === 'thaw' || c.type === 'abort') return undefined;
    const key = this.key(c.plan);
    const known = this.epochs.get(key);
    if (c.type === 'restore') {
      // Every restore moves its plan to a new epoch (the operation bumps it first), so one at an
      // epoch whose restore ended here is a resend still on the wire: typically one that reached an
      // agent which restored, restarted, forgot the request id and took the operation's resume.
      // Carried out, it would pause the apps after their resume, and no resume follows. Declined, it
      // changes nothing: the operation drops an answer of a phase it has left.
      const ended = this.restoresEnded.get(key);
      if (ended !== undefined && c.epoch <= ended) {
        return this.refuse(c, 'stale-epoch', `agent ${this.config.server}: the restore of plan ${c.plan} at epoch ${ended} has ended here; a restore must move the epoch forward, this one is at ${c.epoch}`);
      }
    }
    if (known !== undefined && c.epoch < known) {
      return this.refuse(c, 'stale-epoch', `agent ${this.config.server} is at epoch ${known} of plan ${c.plan}, the ${c.type} at ${c.epoch}`);
    }
    if (c.type === 'restore') return undefined;
    if (known === undefined || c.type === 'freeze') {
      if (known === undefined || c.epoch > known) this.epochs.set(key, c.epoch);
      return undefined;
    }
    if (c.epoch > known) {
      // Quiesce and resume of named (opaque) apps only stop and start them; the capture, which would
      // store a state of the abandoned future, stays fenced. A rollback of opaque apps quiesces them
      // at its new epoch before their restore brings that epoch here, and resumes them there if a
      // restore failed.
      if (c.type === 'quiesce' || (c.type === 'resume' && c.apps.length > 0)) return undefined;
      return this.refuse(c, 'behind', `agent ${this.config.server} is at epoch ${known} of plan ${c.plan}, the ${c.type} at ${c.epoch}: it missed the restore to epoch ${c.epoch}`);
    }
    return undefined;
  }

  /** A fenced command: refused, with a decline where the coordinator waits for an answer. */
  private refuse(c: Exclude<Control, { type: 'ping' | 'hello' | 'thaw' | 'abort' }>, reason: 'stale-epoch' | 'behind', detail: string): AgentControlStep {
    const declines: { app?: AppName; reason: WireDeclineReason }[] = [];
    switch (c.type) {
      case 'trigger':
        for (const app of this.appsFor(c)) declines.push({ app, reason: 'stale-epoch' });
        break;
      case 'quiesce':
      case 'capture':
        for (const app of c.apps) declines.push({ app, reason: 'stale-epoch' });
        break;
      case 'freeze':
      case 'restore':
        declines.push({ reason: 'stale-epoch' });
        break;
      case 'resume':
      case 'complete':
        break;
    }
    const effects: AgentControlEffect[] = declines.map((d) => ({
      type: 'publish',
      event: this.onEvent({ type: 'decline', checkpointId: c.checkpointId, ...(d.app !== undefined ? { app: d.app } : {}), reason: d.reason, detail }, c.requestId),
    }));
    return { effects, rejected: { reason, detail } };
  }

  private appsFor(c: Control): readonly AppName[] {
    switch (c.type) {
      case 'trigger':
        return c.apps !== undefined && c.apps.length > 0 ? c.apps : this.config.apps;
      case 'restore':
        return c.apps.map((a) => a.app);
      case 'resume':
        if (c.apps.length > 0) return c.apps;
        // Never another plan's apps: releasing them could let one send into a restore under way.
        return this.restoredApps.get(this.key(c.plan)) ?? [];
      case 'quiesce':
      case 'capture':
        return c.apps;
      default:
        return this.config.apps;
    }
  }

  /**
   * Stamps an event (id, epoch, inReplyTo), and remembers it as an answer of the request it answers:
   * the one named, or, for an ack or decline of a checkpoint, the command that brought it.
   */
  private onEvent(body: AgentEventBody, inReplyTo: RequestId | undefined): AgentEvent {
    this.eventCounter += 1;
    const answered = inReplyTo !== undefined ? this.requests.get(inReplyTo) : undefined;
    const checkpoint = 'checkpointId' in body ? this.checkpoints.get(body.checkpointId) : undefined;
    if (answered !== undefined && body.type === 'restored' && answered.control.type === 'restore') this.adoptRestore(answered.control, body.apps);
    const epoch = answered !== undefined && !isProbe(answered.control) ? answered.control.epoch : (checkpoint?.epoch ?? 0);
    const header = { requestId: `${this.config.server}:${this.config.bootId}:${this.eventCounter}`, tenant: this.config.tenant, server: this.config.server, epoch };
    if (inReplyTo !== undefined) Object.assign(header, { inReplyTo });
    // Object.assign rather than spreads (Node 20's slow path for spread literals; once per event).
    const event = Object.assign(header, body) as AgentEvent;
    const owner = answered ?? (checkpoint !== undefined && (body.type === 'ack' || body.type === 'decline') ? checkpoint : undefined);
    if (owner !== undefined && owner.answers.length < this.config.answersPerRequestMax) owner.answers.push(event);
    return event;
  }

  private adoptRestore(c: Extract<Control, { type: 'restore' }>, apps: readonly AppName[]): void {
    const key = this.key(c.plan);
    const known = this.epochs.get(key);
    if (known === undefined || c.epoch > known) this.epochs.set(key, c.epoch);
    for (const app of apps) this.generations.set(app, c.epoch);
    this.restoreEnded(c.plan, c.epoch);
  }

  private restoreEnded(plan: string, epoch: Epoch): void {
    const key = this.key(plan);
    const ended = this.restoresEnded.get(key);
    if (ended === undefined || epoch > ended) this.restoresEnded.set(key, epoch);
    const known = this.epochs.get(key);
    // Both callers come after the plan's epoch was set to at least this one (adopted, or passed the fence).
    if (known === undefined || (this.restoresEnded.get(key) as Epoch) > known) throw new Error(`agent control: restore of plan ${plan} ended at epoch ${epoch} above the agent's epoch ${String(known)}`);
  }

  private remember(c: Control): void {
    this.requests.set(c.requestId, { control: c, answers: [] });
    if (this.requests.size > this.config.requestsRememberedMax) this.requests.delete(this.requests.keys().next().value as RequestId);
  }

  private rememberCheckpoint(id: CheckpointId, m: CheckpointMemory): void {
    // A quiesce of a later component of the same checkpoint keeps the first command as the owner.
    if (this.checkpoints.has(id)) return;
    this.checkpoints.set(id, m);
    if (this.checkpoints.size > this.config.checkpointsRememberedMax) this.checkpoints.delete(this.checkpoints.keys().next().value as CheckpointId);
  }
}
