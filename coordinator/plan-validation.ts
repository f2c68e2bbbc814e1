/**
 * What makes a plan acceptable. Plans are written by people (or by the protection service from
 * people's choices), so every problem is reported at once, each naming the field as the .proto
 * spells it (`apps[2].server`, `channels[0].log_stream`) and the offending value.
 *
 * Pure: no I/O, so the whole rule set is unit-tested from a table.
 */
import { validateGraph } from '../src/graph/index.js';
import { isLogSubject, processId } from '../src/wire/index.js';
import { fail, ok, type Result } from './errors.js';
import type { AppRef, PlanInput } from './model.js';

export interface PlanLimits {
  readonly planServersMax: number;
  readonly planAppsMax: number;
  readonly planChannelsMax: number;
  readonly planVolumesMax: number;
  /** Longest volume backend_ref, in characters. */
  readonly backendRefCharsMax: number;
  /** Problems listed in one error message; the rest are counted. */
  readonly problemsReportedMax: number;
}

export const planLimitsDefault: PlanLimits = {
  planServersMax: 1_000,
  planAppsMax: 5_000,
  planChannelsMax: 20_000,
  planVolumesMax: 5_000,
  backendRefCharsMax: 1_024,
  problemsReportedMax: 10,
};

export function validatePlanLimits(limits: PlanLimits): string | undefined {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) return `${name} must be a positive integer, got ${String(value)}`;
  }
  return undefined;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** JetStream stream names: no whitespace, dots, wildcards or path separators. */
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const KINDS: readonly string[] = ['in-band', 'log', 'opaque'];

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  return String(value);
}

/** Checks a plan; the error message lists every problem found (up to problemsReportedMax). */
export function validatePlan(plan: PlanInput, limits: PlanLimits = planLimitsDefault): Result<PlanInput> {
  const problems: string[] = [];
  const problem = (text: string): void => {
    problems.push(text);
  };
  const name = (field: string, value: string): boolean => {
    if (NAME.test(value)) return true;
    problem(`${field} ${show(value)} must match [A-Za-z0-9_-]{1,64}`);
    return false;
  };

  name('id', plan.id);
  name('tenant', plan.tenant);

  const sizes: [string, number, number][] = [
    ['servers', plan.servers.length, limits.planServersMax],
    ['apps', plan.apps.length, limits.planAppsMax],
    ['channels', plan.channels.length, limits.planChannelsMax],
    ['volumes', plan.volumes.length, limits.planVolumesMax],
  ];
  for (const [field, count, max] of sizes) {
    if (count > max) problem(`${field} has ${count} entries, more than the maximum of ${max}`);
  }
  // Past a size limit the rest is not worth checking entry by entry.
  if (problems.length > 0 && sizes.some(([, count, max]) => count > max)) return report(problems, limits);

  if (plan.servers.length === 0) problem('servers is empty: a plan protects at least one server');
  const servers = new Set<string>();
  plan.servers.forEach((server, i) => {
    if (!name(`servers[${i}]`, server)) return;
    if (servers.has(server)) problem(`servers[${i}] ${show(server)} is listed twice`);
    servers.add(server);
  });

  const appRef = (field: string, ref: AppRef | undefined): string | undefined => {
    if (ref === undefined) {
      problem(`${field} is missing`);
      return undefined;
    }
    const serverOk = name(`${field}.server`, ref.server);
    const appOk = name(`${field}.app`, ref.app);
    return serverOk && appOk ? processId(ref.server, ref.app) : undefined;
  };

  const apps = new Set<string>();
  plan.apps.forEach((ref, i) => {
    const id = appRef(`apps[${i}]`, ref);
    if (id === undefined) return;
    if (!servers.has(ref.server)) problem(`apps[${i}].server ${show(ref.server)} is not one of the plan's servers`);
    if (apps.has(id)) problem(`apps[${i}] ${id} is listed twice`);
    apps.add(id);
  });

  const channels = new Set<string>();
  const logSubjects = new Set<string>();
  const graphChannels: { from: string; to: string }[] = [];
  plan.channels.forEach((channel, i) => {
    const field = `channels[${i}]`;
    const from = appRef(`${field}.from_app`, channel.from);
    const to = appRef(`${field}.to_app`, channel.to);
    if (!KINDS.includes(channel.kind)) problem(`${field}.kind ${show(channel.kind)} must be one of ${KINDS.join(', ')}`);
    if (channel.kind === 'log') {
      if (channel.logStream === undefined || channel.logStream === '') problem(`${field}.log_stream is required for a log channel`);
      else if (!STREAM_NAME.test(channel.logStream)) problem(`${field}.log_stream ${show(channel.logStream)} must match [A-Za-z0-9_-]{1,64}`);
      if (channel.logSubject !== undefined && channel.logSubject !== '') {
        if (!isLogSubject(channel.logSubject)) problem(`${field}.log_subject ${show(channel.logSubject)} must be dot-separated tokens of [A-Za-z0-9_-], no wildcards`);
        else if (logSubjects.has(channel.logSubject)) problem(`${field}.log_subject ${channel.logSubject} is the subject of another log channel: each channel needs its own`);
        logSubjects.add(channel.logSubject);
      }
    } else {
      if (channel.logStream !== undefined && channel.logStream !== '') problem(`${field}.log_stream is only for log channels, not ${channel.kind}`);
      if (channel.logSubject !== undefined && channel.logSubject !== '') problem(`${field}.log_subject is only for log channels, not ${channel.kind}`);
    }
    if (from === undefined || to === undefined) return;
    if (from === to) {
      problem(`${field} connects ${from} to itself`);
      return;
    }
    for (const [end, id] of [['from_app', from], ['to_app', to]] as const) {
      if (!apps.has(id)) problem(`${field}.${end} ${id} is not one of the plan's apps`);
    }
    const key = `${from}->${to}`;
    if (channels.has(key)) problem(`${field} ${key} is listed twice (one channel per ordered pair of apps)`);
    channels.add(key);
    graphChannels.push({ from, to });
  });

  const volumes = new Set<string>();
  plan.volumes.forEach((volume, i) => {
    const field = `volumes[${i}]`;
    if (name(`${field}.id`, volume.id)) {
      if (volumes.has(volume.id)) problem(`${field}.id ${show(volume.id)} is listed twice`);
      volumes.add(volume.id);
    }
    if (name(`${field}.server`, volume.server) && !servers.has(volume.server)) {
      problem(`${field}.server ${show(volume.server)} is not one of the plan's servers`);
    }
    if (volume.backendRef === '') problem(`${field}.backend_ref is empty`);
    else if (volume.backendRef.length > limits.backendRefCharsMax) problem(`${field}.backend_ref is longer than ${limits.backendRefCharsMax} characters`);
    else if (CONTROL_CHARS.test(volume.backendRef)) problem(`${field}.backend_ref contains control characters`);
  });

  // A server without an agent runs no app, and is only worth pausing if its disks are snapshotted.
  const agentless = new Set<string>();
  (plan.agentlessServers ?? []).forEach((a, i) => {
    const field = `agentless_servers[${i}]`;
    if (!name(`${field}.server`, a.server)) return;
    if (!servers.has(a.server)) problem(`${field}.server ${show(a.server)} is not one of the plan's servers`);
    if (agentless.has(a.server)) problem(`${field}.server ${show(a.server)} is listed twice`);
    agentless.add(a.server);
    for (const [key, ref] of [['backend_ref', a.backendRef ?? ''], ['guest_agent_ref', a.guestAgentRef]] as const) {
      if (ref === undefined) continue;
      if (ref === '') problem(`${field}.${key} is empty`);
      else if (ref.length > limits.backendRefCharsMax) problem(`${field}.${key} is longer than ${limits.backendRefCharsMax} characters`);
      else if (CONTROL_CHARS.test(ref)) problem(`${field}.${key} contains control characters`);
    }
    if (!plan.volumes.some((v) => v.server === a.server)) problem(`${field}.server ${show(a.server)} has no volume: list its disks (the system disk too) as volumes of the plan`);
  });
  plan.apps.forEach((ref, i) => {
    if (ref !== undefined && agentless.has(ref.server)) problem(`apps[${i}].server ${show(ref.server)} runs no agent (agentless_servers), so it cannot host an app`);
  });

  // The graph module is the one definition of a valid app graph; the checks above only give
  // better field names. Anything it still finds is reported in its own words. A plan without apps
  // is valid (servers and volumes only: CRASH and NONE levels), so an empty graph is not checked.
  if (problems.length === 0 && apps.size > 0) {
    const graph = validateGraph({ processes: [...apps], channels: graphChannels });
    if (!graph.ok) for (const e of graph.errors) problem(`app graph: ${e.message}`);
  }

  return problems.length === 0 ? ok(plan) : report(problems, limits);
}

function report(problems: readonly string[], limits: PlanLimits): Result<PlanInput> {
  const shown = problems.slice(0, limits.problemsReportedMax);
  const more = problems.length - shown.length;
  const noun = problems.length === 1 ? 'problem' : 'problems';
  return fail('invalid-argument', `invalid plan: ${problems.length} ${noun}: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`);
}
