/**
 * One simulated agent: the real `AgentControl` machine (src/control/agent-control.ts) in a shell that
 * does what agent/agent.ts does with its effects, against a simulated guest. The guest outlives the
 * agent process: a freeze stays until a thaw or the watchdog (which, as agent/freeze.ts's, thaws at
 * the deadline even when the daemon is dead), while apps paused by a restore run again when the
 * agent restarts (the endpoints that held them are gone with it).
 *
 * Apps here have no channels between them, so an app-level snapshot is: store the app's state as an
 * object, then ack it. What is under test is the control plane, not the barrier core (which the
 * data-plane simulator covers).
 */
import { AGENT_CONTROL_DEFAULTS, AgentControl } from '../../src/control/agent-control.js';
import type { NegativeControls } from '../../src/control/negative-controls.js';
import type { AgentEvent, AgentEventBody, Control, RequestId } from '../../src/wire/index.js';
import type { Prng } from '../prng.js';
import type { Agenda } from './agenda.js';
import type { Io } from './io.js';
import type { Ledger } from './invariants.js';
import type { Network } from './network.js';
import { SimProcess } from './process.js';
import type { SimObjects } from './stores.js';
import { TENANT } from './topology.js';

export const HEARTBEAT_MS = 1_000;
/** How long a restored app may stay paused waiting for its resume before it counts as held too long. */
export const PAUSE_DEADLINE_MS = 10_000;
/** An opaque app still stopped this long after its quiesce is resumed by the agent (agent/opaque.ts freezeDeadlineMsMax). */
export const OPAQUE_QUIESCE_DEADLINE_MS = 5_000;

export interface AgentWorld {
  readonly agenda: Agenda;
  readonly prng: Prng;
  readonly io: Io;
  readonly objects: SimObjects;
  readonly ledger: Ledger;
  readonly events: Network<AgentEvent>;
  readonly trace: (what: string) => void;
  /** The plans that have apps on this server (for the epoch observations). */
  readonly plansHere: readonly string[];
  readonly negativeControls: NegativeControls;
  /** The opaque channels out of an app (`server/app`). */
  readonly channelsFrom: (app: string) => readonly string[];
}

export class AgentHost {
  readonly process: SimProcess;
  private control: AgentControl;
  /** Freezes of the guest by checkpoint id, with the watchdog's deadline. */
  private readonly freezes = new Map<number, { readonly atMs: number }>();
  private readonly aborted = new Set<number>();
  private boots = 0;

  constructor(
    readonly server: string,
    private readonly apps: readonly string[],
    private readonly w: AgentWorld,
  ) {
    this.process = new SimProcess(`agent ${server}`, w.agenda, w.trace);
    this.control = this.newControl();
  }

  get controlMachine(): AgentControl {
    return this.control;
  }

  private newControl(): AgentControl {
    this.boots++;
    return new AgentControl({
      tenant: TENANT,
      server: this.server,
      bootId: `b${this.boots}`,
      apps: this.apps,
      requestsRememberedMax: AGENT_CONTROL_DEFAULTS.requestsRememberedMax,
      answersPerRequestMax: AGENT_CONTROL_DEFAULTS.answersPerRequestMax,
      checkpointsRememberedMax: AGENT_CONTROL_DEFAULTS.checkpointsRememberedMax,
      negativeControls: this.w.negativeControls,
    });
  }

  /** The process comes up: a fresh machine, a registration, heartbeats. */
  boot(restarted: boolean): void {
    this.process.restart();
    if (restarted) {
      this.control = this.newControl();
      this.aborted.clear();
      this.observeEpochs(true);
    }
    this.emit({ type: 'register', apps: this.apps, version: 'vopr' });
    this.heartbeat();
  }

  crash(): void {
    this.process.crash();
    // The endpoints that held restored apps paused are gone: the apps run again.
    this.w.ledger.releaseAll(`${this.server}/`, 'quiesced');
    // Opaque apps stopped by their hooks stay stopped, and the timer that would have resumed them is gone.
    this.w.ledger.recogniseHolds(`${this.server}/`, 'stopped', 'opaque-stopped-after-agent-restart');
  }

  receive(c: Control): void {
    if (!this.process.up) return;
    const r = this.control.step({ type: 'control', control: c });
    if (r.rejected && r.rejected.reason !== 'duplicate') this.w.trace(`${this.server} refused ${c.type} [${c.requestId}]: ${r.rejected.reason}`);
    for (const e of r.effects) {
      if (e.type === 'publish') this.w.events.send(this.server, 'coordinator', e.event);
      else this.execute(e.control, e.apps);
    }
    this.observeEpochs(false);
  }

  private observeEpochs(restarted: boolean): void {
    for (const plan of this.w.plansHere) {
      const epoch = this.control.epochOf(plan);
      if (epoch !== undefined) this.w.ledger.agentEpoch(this.server, plan, epoch, this.w.agenda.now, restarted);
    }
  }

  /** An event of the agent's own (an answer when `inReplyTo`), stamped by the machine and published. */
  private emit(body: AgentEventBody, inReplyTo?: RequestId): void {
    if (!this.process.up) return;
    const r = this.control.step(inReplyTo !== undefined ? { type: 'event', body, inReplyTo } : { type: 'event', body });
    for (const e of r.effects) if (e.type === 'publish') this.w.events.send(this.server, 'coordinator', e.event);
  }

  private heartbeat(): void {
    this.process.later(HEARTBEAT_MS, '', () => {
      this.emit({ type: 'heartbeat', frozen: this.freezes.size > 0, checkpointsInFlight: [], highestCheckpointId: 0 });
      this.heartbeat();
    });
  }

  private execute(c: Control, apps: readonly string[]): void {
    const now = this.w.agenda.now;
    switch (c.type) {
      case 'trigger':
        for (const app of apps) this.snapshotApp(c.checkpointId, app);
        return;
      case 'abort':
        this.aborted.add(c.checkpointId);
        return;
      case 'complete':
        return;
      case 'freeze':
        this.process.later(1 + this.w.prng.int(10), '', () => {
          if (!this.freezes.has(c.checkpointId)) {
            this.freezes.set(c.checkpointId, { atMs: this.w.agenda.now });
            for (const app of this.apps) this.w.ledger.hold(`${this.server}/${app}#${c.checkpointId}`, 'frozen', c.checkpointId, this.w.agenda.now, c.deadlineMs);
            this.armWatchdog(c.checkpointId, c.deadlineMs);
          }
          this.emit({ type: 'frozen', checkpointId: c.checkpointId, frozenAtUnixMs: this.w.agenda.now, hooksMs: 1, hooks: [] }, c.requestId);
        });
        return;
      case 'thaw': {
        const frozen = this.thaw(c.checkpointId);
        this.emit({ type: 'thawed', checkpointId: c.checkpointId, thawedAtUnixMs: now, byWatchdog: false, hooks: [], frozenAtUnixMs: frozen ?? 0 }, c.requestId);
        return;
      }
      case 'restore':
        this.restore(c);
        return;
      case 'resume':
        if (c.apps.length > 0) {
          // Opaque apps after their capture: their resume hooks run; nobody waits for an answer.
          for (const app of c.apps) this.resumeOpaque(c.checkpointId, app);
          return;
        }
        for (const app of apps) this.w.ledger.release(`${this.server}/${app}`, 'quiesced');
        this.emit({ type: 'resumed' }, c.requestId);
        return;
      case 'ping':
      case 'hello':
        this.emit({ type: 'register', apps: this.apps, version: 'vopr' });
        return;
      case 'quiesce':
        for (const app of c.apps) this.quiesceOpaque(c.checkpointId, app, c.requestId);
        return;
      case 'capture':
        for (const app of c.apps) this.captureOpaque(c.checkpointId, app, c.requestId);
        return;
    }
  }

  /**
   * An opaque app's quiesce hook drains it and stops it, and it reports how much it sent on each
   * output. The app stays stopped (outside the agent) until a resume; the agent resumes it by itself
   * at its quiesce deadline, with a timer of the agent process (agent/opaque.ts), which dies with it.
   */
  private quiesceOpaque(checkpointId: number, app: string, requestId: string): void {
    this.process.later(1 + this.w.prng.int(10), '', () => {
      const who = `${this.server}/${app}`;
      this.w.ledger.hold(`${who}#${checkpointId}`, 'stopped', checkpointId, this.w.agenda.now, OPAQUE_QUIESCE_DEADLINE_MS);
      this.process.later(OPAQUE_QUIESCE_DEADLINE_MS, '', () => this.w.ledger.release(`${who}#${checkpointId}`, 'stopped'));
      const outputs = this.w.channelsFrom(who);
      const positions: Record<string, number> = {};
      for (const ch of outputs) positions[ch] = Math.floor(this.w.agenda.now / 10);
      this.emit({ type: 'quiesced', checkpointId, app, outputPositions: positions, hooks: [] }, requestId);
    });
  }

  private captureOpaque(checkpointId: number, app: string, requestId: string): void {
    const name = `ckpt/${checkpointId}/${this.server}/${app}`;
    const ref = { name, digest: `SHA-256=${checkpointId}-${this.server}-${app}`, sizeBytes: 100 };
    this.w.io.call(
      this.process,
      `put ${name}`,
      () => this.w.objects.put(ref),
      (r) => {
        if (r.ok) this.emit({ type: 'captured', checkpointId, app, state: ref, hooks: [] }, requestId);
        else this.emit({ type: 'decline', checkpointId, app, reason: 'store-failed', detail: r.error }, requestId);
      },
    );
  }

  private resumeOpaque(checkpointId: number, app: string): void {
    this.w.ledger.release(`${this.server}/${app}#${checkpointId}`, 'stopped');
  }

  /** Ends one freeze of the guest; its start, or undefined when it was not frozen by that checkpoint. */
  private thaw(checkpointId: number): number | undefined {
    const f = this.freezes.get(checkpointId);
    if (f === undefined) return undefined;
    this.freezes.delete(checkpointId);
    for (const app of this.apps) this.w.ledger.release(`${this.server}/${app}#${checkpointId}`, 'frozen', this.w.agenda.now);
    return f.atMs;
  }

  /** The guest's watchdog: not the agent process's, so it fires whether the agent is up or not. */
  private armWatchdog(checkpointId: number, deadlineMs: number): void {
    const frozenAt = this.w.agenda.now;
    this.w.agenda.after(deadlineMs, '', () => {
      if (this.thaw(checkpointId) === undefined) return;
      this.w.trace(`${this.server} watchdog thawed ckpt ${checkpointId}`);
      this.emit({ type: 'thawed', checkpointId, thawedAtUnixMs: this.w.agenda.now, byWatchdog: true, hooks: [], frozenAtUnixMs: frozenAt });
    });
  }

  /** Store the app's state, then ack it; an abort that came first stops the ack (the object may still land). */
  private snapshotApp(checkpointId: number, app: string): void {
    this.process.later(1 + this.w.prng.int(20), '', () => {
      if (this.aborted.has(checkpointId)) return;
      const name = `ckpt/${checkpointId}/${this.server}/${app}`;
      const ref = { name, digest: `SHA-256=${checkpointId}-${this.server}-${app}`, sizeBytes: 100 };
      this.w.io.call(
        this.process,
        `put ${name}`,
        () => this.w.objects.put(ref),
        (r) => {
          if (this.aborted.has(checkpointId)) return;
          if (!r.ok) {
            this.emit({ type: 'decline', checkpointId, app, reason: 'store-failed', detail: r.error });
            return;
          }
          const stats = { startDelayMs: 0, alignmentMs: 0, syncMs: 1, asyncMs: 1, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false };
          this.emit({ type: 'ack', checkpointId, app, counts: { sent: {}, received: {} }, state: { kind: 'object', ref }, stats });
        },
      );
    });
  }

  /** Check each app's state is there, put the apps back and keep them paused until the resume. */
  private restore(c: Extract<Control, { type: 'restore' }>): void {
    const missing = c.apps.filter((a) => a.state.kind === 'object' && this.w.objects.get(a.state.ref.name)?.digest !== a.state.ref.digest);
    if (missing.length > 0) {
      this.emit({ type: 'decline', checkpointId: c.checkpointId, reason: 'restore-failed', detail: `state of ${missing.map((a) => a.app).join(', ')} missing or changed` }, c.requestId);
      return;
    }
    for (const a of c.apps) this.w.ledger.hold(`${this.server}/${a.app}`, 'quiesced', c.checkpointId, this.w.agenda.now, PAUSE_DEADLINE_MS);
    this.emit({ type: 'restored', checkpointId: c.checkpointId, apps: c.apps.map((a) => a.app) }, c.requestId);
  }
}
