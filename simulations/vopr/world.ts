/**
 * One seed's world: the agenda, the stores, the two directions of the bus, the agents and the
 * coordinator, wired together, with the ledger watching the KV. Nothing here decides anything of the
 * protocol; that is the machines' (through the hosts) and the workload's (through the API).
 */
import type { NegativeControl } from '../../src/control/negative-controls.js';
import type { AgentEvent, Control } from '../../src/wire/index.js';
import { Prng } from '../prng.js';
import { AgentHost } from './agent-host.js';
import { Agenda } from './agenda.js';
import { CoordinatorHost } from './coordinator-host.js';
import { NO_FAULTS, drawFaultProfile, type FaultProfile } from './faults.js';
import { Ledger } from './invariants.js';
import type { KnownFinding } from './known-findings.js';
import { Io } from './io.js';
import { describeControl, describeEvent } from './messages.js';
import { Network } from './network.js';
import { OperationsHost, type OperationsLedger } from './operation-host.js';
import { liveVolumeRefs, type CheckpointRecord } from './records.js';
import { SimKv, SimObjects, SimVolumes } from './stores.js';
import { drawTopology, type Topology } from './topology.js';

export class World {
  readonly agenda = new Agenda();
  readonly topology: Topology;
  readonly faultProfile: FaultProfile;
  faultsActive = true;
  readonly ledger: Ledger;
  readonly kv: SimKv;
  readonly objects: SimObjects;
  readonly volumes: SimVolumes;
  /** Every line of the trace, `<time> <what>` (the failure report picks its minimal trace from them). */
  readonly traceAll: string[] = [];
  readonly controls: Network<Control>;
  readonly events: Network<AgentEvent>;
  readonly agents = new Map<string, AgentHost>();
  readonly coordinator: CoordinatorHost;
  readonly operations: OperationsHost;
  readonly operationsLedger: OperationsLedger = { lastState: new Map(), protectedIds: new Set(), declinedRepairs: new Set(), epochAtStart: new Map(), persisted: new Map(), volumesPutBack: new Set(), recoveredRepairs: new Set() };
  /** Random choices of the workload and the crashes, apart from the network's and the stores'. */
  readonly prng: Prng;
  /**
   * The protection service's choices about staged checkpoints (which takes are begun, when and how
   * it finishes): a stream of its own, forked last, so that the other streams draw as they did
   * before staged checkpoints were simulated.
   */
  readonly callerPrng: Prng;
  /** When each volume snapshot was taken (coordinator-host.ts records them). */
  readonly snapshotTimes = new Map<string, { readonly fromMs: number; readonly toMs: number }>();
  readonly counts: Record<string, number> = {};
  /** Rounds that a coordinator crash cut short. */
  readonly cutByCrash = new Set<number>();
  readonly preemptsRefused = new Set<number>();
  /** The checkpoint whose state storage damaged, if any. */
  damaged: number | undefined;
  /** When each checkpoint's clean-up was asked for (to recognise states stored after it). */
  readonly cleanUps = new Map<number, number>();

  constructor(
    readonly seed: number,
    readonly negativeControls: ReadonlySet<NegativeControl>,
  ) {
    const root = new Prng(seed);
    this.topology = drawTopology(root.fork());
    this.faultProfile = drawFaultProfile(root.fork());
    this.prng = root.fork();
    const faults = (): FaultProfile => (this.faultsActive ? this.faultProfile : NO_FAULTS);
    const plans = new Map(this.topology.plans.map((p) => [p.id, p]));
    this.ledger = new Ledger((plan) => plans.get(plan)?.maxConcurrent ?? 1);
    this.kv = new SimKv((key, value) => this.observe(key, value));
    this.objects = new SimObjects((name) => this.ledger.itemDeleted(name, this.agenda.now), () => this.agenda.now);
    this.volumes = new SimVolumes((id) => this.ledger.itemDeleted(id, this.agenda.now));
    const io = new Io(this.agenda, root.fork(), faults);
    this.controls = new Network<Control>(this.agenda, root.fork(), faults, describeControl);
    this.events = new Network<AgentEvent>(this.agenda, root.fork(), faults, describeEvent);
    const trace = (what: string): void => this.note(what);
    for (const server of [...this.topology.servers, ...this.topology.spareServers]) {
      const agent = new AgentHost(server, this.topology.appsOf.get(server) ?? [], {
        agenda: this.agenda,
        prng: root.fork(),
        io,
        objects: this.objects,
        ledger: this.ledger,
        events: this.events,
        trace,
        plansHere: this.topology.plans.filter((p) => p.servers.includes(server)).map((p) => p.id),
        negativeControls,
        channelsFrom: (app) => this.topology.plans.flatMap((p) => p.channels.filter((c) => c.from === app).map((c) => c.id)),
      });
      this.agents.set(server, agent);
      this.controls.listen(server, (c) => agent.receive(c));
    }
    const coordinatorWorld = {
      agenda: this.agenda,
      prng: root.fork(),
      io,
      kv: this.kv,
      objects: this.objects,
      volumes: this.volumes,
      ledger: this.ledger,
      controls: this.controls,
      topology: this.topology,
      faults,
      negativeControls,
      trace,
      cleanUps: this.cleanUps,
      protectedIds: this.operationsLedger.protectedIds,
      preemptsRefused: this.preemptsRefused,
      deleting: (id: number) => this.ledger.deleted(id),
      callerPrng: (this.callerPrng = root.fork()),
      snapshotTimes: this.snapshotTimes,
      count: (what: string) => this.count(what),
    };
    this.coordinator = new CoordinatorHost(coordinatorWorld);
    this.operations = new OperationsHost(this.coordinator, coordinatorWorld, this.operationsLedger);
    this.events.listen('coordinator', (e) => this.coordinator.onEvent(e));
    this.ledger.knownInFlight = (ids) => (ids.some((id) => this.preemptsRefused.has(id)) ? 'preempt-while-committing' : undefined);
    this.ledger.exemptHold = (kind, checkpoint) => kind === 'quiesced' && this.operationsLedger.declinedRepairs.has(checkpoint);
    this.ledger.knownHold = (kind, checkpoint) => (kind === 'quiesced' && this.operationsLedger.recoveredRepairs.has(checkpoint) ? 'paused-after-recovered-needs-repair' : undefined);
  }

  note(what: string): void {
    this.traceAll.push(`${String(this.agenda.now).padStart(7)} ${what}`);
  }

  count(what: string, n = 1): void {
    this.counts[what] = (this.counts[what] ?? 0) + n;
  }

  /** The ledger learns of completed checkpoints and epochs from what lands in the KV, as a reader of the store would. */
  private observe(key: string, value: unknown): void {
    if (key.startsWith('ckpt.')) {
      const id = Number(key.slice('ckpt.'.length));
      const r = value as CheckpointRecord | undefined;
      if (r !== undefined && r.state === 'completed' && r.deleting !== true) {
        this.checkConsistent(r);
        this.ledger.committed(id, r.plan, r.parts.map((p) => p.ref.name), liveVolumeRefs(r), this.agenda.now, (x) => this.objects.get(x) !== undefined || this.volumes.has(x));
      }
      else this.ledger.deleted(id);
    } else if (key.startsWith('epoch.') && typeof value === 'number') {
      this.ledger.planEpoch(key.slice('epoch.'.length), value, this.agenda.now);
    }
  }

  /** A completed checkpoint covers its whole plan: every app's state, or every volume, at one epoch. */
  private checkConsistent(r: CheckpointRecord): void {
    const plan = this.topology.plans.find((p) => p.id === r.plan);
    if (plan === undefined) return;
    const byApp = plan.level !== 'crash';
    const want = byApp ? plan.apps.map((a) => `${a.server}/${a.app}`) : plan.volumes.map((v) => v.volume);
    // A staged checkpoint's volumes are the caller's snapshots, given with its finish.
    const volumes = r.holdMs !== undefined ? (r.callerVolumes ?? []) : r.volumes;
    const have = byApp ? r.parts.map((p) => `${p.server}/${p.app}`) : volumes.map((v) => v.volumeId);
    if (!byApp) {
      const members = (r.holdMs !== undefined ? (r.callerVolumes ?? []) : r.volumes).map((v) => ({ ref: v.snapshotRef, ...(this.snapshotTimes.get(v.snapshotRef) ?? { fromMs: -1, toMs: -1 }) }));
      this.ledger.crashCut(r.id, r.plan, plan.servers, members, this.agenda.now);
    }
    const missing = want.filter((x) => !have.includes(x));
    const extra = have.filter((x, i) => !want.includes(x) || have.indexOf(x) !== i);
    if (missing.length > 0 || extra.length > 0) {
      this.ledger.violate('completed-checkpoints-whole', `checkpoint ${r.id}`, this.agenda.now, `checkpoint ${r.id} of plan ${r.plan} completed without ${missing.join(', ') || '-'} / with extra ${extra.join(', ') || '-'}`);
    }
    if (r.epoch > this.ledger.epochOf(r.plan)) this.ledger.violate('completed-checkpoints-whole', `checkpoint ${r.id}`, this.agenda.now, `checkpoint ${r.id} completed at epoch ${r.epoch}, ahead of plan ${r.plan}'s ${this.ledger.epochOf(r.plan)}`);
  }

  /** Leaked items the world can name as a known finding (known-findings.ts). */
  knownLeak(item: string): KnownFinding | undefined {
    const v = /^vs-\d+ \(ckpt-(\d+)\)$/.exec(item);
    if (v !== null) return this.cutByCrash.has(Number(v[1])) ? 'volume-snapshots-of-dead-coordinator' : undefined;
    const m = /^ckpt\/(\d+)\//.exec(item);
    if (m === null) return undefined;
    const cleaned = this.cleanUps.get(Number(m[1]));
    const stored = this.objects.get(item)?.storedAtMs;
    return cleaned !== undefined && stored !== undefined && stored >= cleaned ? 'late-state-after-abort' : undefined;
  }

  crashCoordinator(): void {
    for (const id of [...this.coordinator.runningIds(), ...this.coordinator.volumeCallsPending, ...this.coordinator.volumeDeletesPending]) this.cutByCrash.add(id);
    this.coordinator.crash();
    this.operations.crash();
  }

  /** The completed checkpoints of a plan as a client lists them, oldest first. */
  completedOf(plan: string): CheckpointRecord[] {
    return this.kv
      .keys('ckpt.')
      .map((k) => this.kv.get(k)?.value as CheckpointRecord)
      .filter((r) => r.plan === plan && r.state === 'completed' && r.deleting !== true)
      .sort((a, b) => a.id - b.id);
  }

  /** At the end: every record that says completed still has every part. */
  checkCompletedRecords(): void {
    for (const key of this.kv.keys('ckpt.')) {
      const r = this.kv.get(key)?.value as CheckpointRecord;
      if (r.state !== 'completed' || r.deleting === true) continue;
      const missing = [...r.parts.map((p) => p.ref.name).filter((n) => this.objects.get(n) === undefined), ...liveVolumeRefs(r).filter((v) => !this.volumes.has(v))];
      if (missing.length === 0) continue;
      this.ledger.violate('completed-checkpoints-whole', `checkpoint ${r.id}`, this.agenda.now, `the record of checkpoint ${r.id} says completed, but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} gone`);
    }
  }

  /** Objects and volume snapshots that a completed record or a checkpoint still in flight owns. */
  inFlightItems(): Set<string> {
    const live = new Set<string>();
    // A record that still says completed owns its parts, whatever a delete cut short did.
    for (const key of this.kv.keys('ckpt.')) {
      const r = this.kv.get(key)?.value as CheckpointRecord;
      if (r.state === 'completed' && r.deleting !== true) for (const x of [...r.parts.map((p) => p.ref.name), ...liveVolumeRefs(r)]) live.add(x);
    }
    for (const plan of this.topology.plans) {
      for (const id of this.coordinator.runningOf(plan.id)) {
        for (const o of this.objects.list()) if (o.name.startsWith(`ckpt/${id}/`)) live.add(o.name);
        for (const v of this.volumes.list()) if (v.tag === `ckpt-${id}`) live.add(v.id);
      }
    }
    return live;
  }
}
