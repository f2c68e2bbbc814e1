/**
 * Which agents exist and whether they are alive, from the events they send (AgentsApi).
 *
 * Status is derived at read time from the last sign of life and the clock, never stored, so it
 * needs no timer: online until `lateAfterMs` without an event, late until `offlineAfterMs`, then
 * offline. Any event counts as a sign of life (an agent busy acking is alive even if a heartbeat
 * is queued behind the acks). Time is injected (`now`), so tests move it by hand.
 */
import type { Logger } from 'pino';
import type { AgentEvent } from '../src/wire/index.js';
import type { AgentsApi } from './api.js';
import type { ControlBus } from './bus.js';
import { fail, ok, type Result } from './errors.js';
import type { AgentInfo, AgentStatus } from './model.js';

export interface AgentRegistryLimits {
  /** No event for longer than this: late (checkpoints including it may time out). */
  readonly lateAfterMs: number;
  /** No event for longer than this: offline (treated as gone). */
  readonly offlineAfterMs: number;
  /** Agents tracked at most; a new one beyond this is refused (and logged), existing ones still update. */
  readonly agentsMax: number;
}

export const agentRegistryLimitsDefault: AgentRegistryLimits = {
  lateAfterMs: 15_000,
  offlineAfterMs: 60_000,
  agentsMax: 100_000,
};

export function validateAgentRegistryLimits(l: AgentRegistryLimits): string | undefined {
  for (const [name, value] of Object.entries(l)) {
    if (!Number.isSafeInteger(value) || value < 1) return `${name} must be a positive integer, got ${String(value)}`;
  }
  if (l.offlineAfterMs <= l.lateAfterMs) return `offlineAfterMs (${l.offlineAfterMs}) must be greater than lateAfterMs (${l.lateAfterMs})`;
  return undefined;
}

/**
 * What a rollback or restore needs to know of the agents before it sends them anything: is one alive
 * on this server? AgentRegistry is one; tests pass a map.
 */
export type AgentPresence = Pick<AgentRegistry, 'get'>;

/** The checkpoint ids the agents' apps have begun: a plan's next id goes above them (AgentRegistry is one). */
export type AgentFences = Pick<AgentRegistry, 'highestCheckpointId'>;

/** What observing one event did; `ignored` outcomes are logged at debug by the caller if it wants. */
export type ObserveOutcome =
  | 'registered'
  | 're-registered'
  | 'heartbeat'
  | 'frozen'
  | 'thawed'
  | 'alive'
  /** An event from an agent that has not registered with this coordinator: tracked, apps unknown. */
  | 'unregistered'
  /** A new agent beyond agentsMax. */
  | 'registry-full';

interface Entry {
  tenant: string;
  server: string;
  apps: readonly string[];
  version: string;
  /** 0 when the agent was first seen by another event than register (e.g. after a coordinator restart). */
  registeredAtUnixMs: number;
  lastSeenAtUnixMs: number;
  frozen: boolean;
  /** The highest checkpoint id its apps have begun, as its last heartbeat said (0: none or not told). */
  highestCheckpointId: number;
}

function key(tenant: string, server: string): string {
  return `${tenant}/${server}`;
}

export class AgentRegistry implements AgentsApi {
  private readonly agents = new Map<string, Entry>();
  private readonly limits: AgentRegistryLimits;
  private readonly now: () => number;
  private readonly log: Logger | undefined;

  constructor(options: { limits?: Partial<AgentRegistryLimits>; now?: () => number; logger?: Logger } = {}) {
    this.limits = { ...agentRegistryLimitsDefault, ...options.limits };
    const invalid = validateAgentRegistryLimits(this.limits);
    if (invalid !== undefined) throw new Error(`invalid agent registry limits: ${invalid}`);
    this.now = options.now ?? Date.now;
    this.log = options.logger?.child({ component: 'agents' });
  }

  /** Takes in one decoded, validated event (src/wire decodeEvent) received at `nowUnixMs`. */
  observe(event: AgentEvent, nowUnixMs: number = this.now()): ObserveOutcome {
    const k = key(event.tenant, event.server);
    let entry = this.agents.get(k);
    const isNew = entry === undefined;
    if (entry === undefined) {
      if (this.agents.size >= this.limits.agentsMax) {
        this.log?.warn({ tenant: event.tenant, server: event.server, agentsMax: this.limits.agentsMax }, 'agent refused: registry full');
        return 'registry-full';
      }
      entry = { tenant: event.tenant, server: event.server, apps: [], version: '', registeredAtUnixMs: 0, lastSeenAtUnixMs: nowUnixMs, frozen: false, highestCheckpointId: 0 };
      this.agents.set(k, entry);
    }
    // Events may be handled out of order; the clock of an entry never goes back.
    entry.lastSeenAtUnixMs = Math.max(entry.lastSeenAtUnixMs, nowUnixMs);
    // An event about a checkpoint shows the agent's apps have seen its id: a busy agent sends no
    // heartbeat (any event is a sign of life), so its fence is learnt from these too.
    if ('checkpointId' in event && event.checkpointId > entry.highestCheckpointId) entry.highestCheckpointId = event.checkpointId;
    switch (event.type) {
      case 'register': {
        const again = entry.registeredAtUnixMs !== 0;
        entry.apps = [...event.apps];
        entry.version = event.version;
        entry.registeredAtUnixMs = nowUnixMs;
        // `frozen` is left as last reported: a filesystem freeze outlives an agent restart, and
        // the next heartbeat says how things are.
        this.log?.info({ tenant: event.tenant, server: event.server, apps: event.apps, version: event.version }, again ? 'agent re-registered' : 'agent registered');
        return again ? 're-registered' : 'registered';
      }
      case 'heartbeat':
        if (entry.frozen !== event.frozen) this.log?.info({ tenant: event.tenant, server: event.server, frozen: event.frozen }, 'agent frozen flag changed');
        entry.frozen = event.frozen;
        // The last one told, not the largest ever: a restarted agent (fence 0) no longer holds ids back.
        entry.highestCheckpointId = event.highestCheckpointId;
        return isNew || entry.registeredAtUnixMs === 0 ? 'unregistered' : 'heartbeat';
      case 'frozen':
        entry.frozen = true;
        return entry.registeredAtUnixMs === 0 ? 'unregistered' : 'frozen';
      case 'thawed':
        entry.frozen = false;
        return entry.registeredAtUnixMs === 0 ? 'unregistered' : 'thawed';
      default:
        return entry.registeredAtUnixMs === 0 ? 'unregistered' : 'alive';
    }
  }

  status(lastSeenAtUnixMs: number, nowUnixMs: number): AgentStatus {
    const silentMs = nowUnixMs - lastSeenAtUnixMs;
    if (silentMs > this.limits.offlineAfterMs) return 'offline';
    if (silentMs > this.limits.lateAfterMs) return 'late';
    return 'online';
  }

  /** One agent as AgentsApi shows it, or undefined if never seen. */
  get(tenant: string, server: string): AgentInfo | undefined {
    const entry = this.agents.get(key(tenant, server));
    return entry === undefined ? undefined : this.info(entry, this.now());
  }

  /**
   * The highest checkpoint id the agents on `servers` of `tenant` last reported having begun (0:
   * none): an app refuses a checkpoint below it, so a plan's next id must be above it.
   */
  highestCheckpointId(tenant: string, servers: readonly string[]): number {
    let highest = 0;
    for (const server of servers) highest = Math.max(highest, this.agents.get(key(tenant, server))?.highestCheckpointId ?? 0);
    return highest;
  }

  async list(tenant: string | undefined): Promise<Result<readonly AgentInfo[]>> {
    if (tenant !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) {
      return fail('invalid-argument', `tenant ${JSON.stringify(tenant.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
    }
    const now = this.now();
    const agents = [...this.agents.values()]
      .filter((e) => tenant === undefined || e.tenant === tenant)
      .sort((a, b) => (a.tenant === b.tenant ? (a.server < b.server ? -1 : a.server > b.server ? 1 : 0) : a.tenant < b.tenant ? -1 : 1))
      .map((e) => this.info(e, now));
    return ok(agents);
  }

  private info(e: Entry, now: number): AgentInfo {
    return {
      tenant: e.tenant,
      server: e.server,
      apps: [...e.apps],
      version: e.version,
      status: this.status(e.lastSeenAtUnixMs, now),
      registeredAtUnixMs: e.registeredAtUnixMs,
      lastHeartbeatAtUnixMs: e.lastSeenAtUnixMs,
      frozen: e.frozen,
    };
  }
}

/** How often at most the coordinator asks one unregistered agent to register again. */
export const HELLO_INTERVAL_MS = 1_000;

/**
 * Feeds every event of the bus to the registry and asks an agent the registry does not know as
 * registered to register again (a `hello` on its control subject, at most once per
 * `helloIntervalMs`). After a coordinator restart the agents are known again with their apps at
 * their next sign of life (a heartbeat, at most one heartbeat interval later), without any state
 * kept across the restart. Returns a function that stops it.
 */
export function trackAgents(bus: Pick<ControlBus, 'onEvents' | 'send'>, registry: AgentRegistry, options: { helloIntervalMs?: number; now?: () => number } = {}): () => void {
  const helloIntervalMs = options.helloIntervalMs ?? HELLO_INTERVAL_MS;
  if (!Number.isSafeInteger(helloIntervalMs) || helloIntervalMs < 1) throw new Error(`helloIntervalMs must be a positive integer, got ${String(helloIntervalMs)}`);
  const now = options.now ?? Date.now;
  const askedAt = new Map<string, number>();
  return bus.onEvents((e) => {
    const k = key(e.tenant, e.server);
    if (registry.observe(e) !== 'unregistered') {
      askedAt.delete(k);
      return;
    }
    const t = now();
    if (t - (askedAt.get(k) ?? Number.NEGATIVE_INFINITY) < helloIntervalMs) return;
    askedAt.set(k, t);
    bus.send({ type: 'hello', tenant: e.tenant, server: e.server, plan: '', epoch: 0 });
  });
}
