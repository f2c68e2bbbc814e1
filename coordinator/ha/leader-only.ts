/**
 * The API as a standby serves it: the calls that change something (or follow a checkpoint the
 * leader runs) answer UNAVAILABLE with the reason NOT_LEADER and the leader's address, so a
 * client or load balancer goes there; reads (plans, checkpoints and their verification, policies,
 * agents) are answered from the shared store. The leader serves everything.
 */
import type { CheckpointsApi, CoordinatorApi, PlansApi, PoliciesApi, SitesApi } from '../api.js';
import { failWith } from '../errors.js';

export interface Leadership {
  leading(): boolean;
  leaderAddress(): string | undefined;
}

const LEADER_ONLY = {
  plans: ['register', 'delete'],
  checkpoints: ['take', 'watch', 'rollback', 'restore', 'delete', 'cancel', 'begin', 'finish', 'pin'],
  policies: ['create', 'update', 'delete'],
  // A copy writes the checkpoint's record (its copy list), and a restore from a site imports one.
  sites: ['copy', 'restoreFrom'],
} as const satisfies {
  plans: readonly (keyof PlansApi)[];
  checkpoints: readonly (keyof CheckpointsApi)[];
  policies: readonly (keyof PoliciesApi)[];
  sites: readonly (keyof SitesApi)[];
};

/** The UNAVAILABLE answer of a standby; its message names the leader's address when one is known. */
export function notLeaderMessage(leaderAddress: string | undefined): string {
  return leaderAddress === undefined
    ? 'this coordinator is a standby and no leader is known right now; retry shortly'
    : `this coordinator is a standby; the leader is at ${leaderAddress}`;
}

function gate<T extends object>(api: T, methods: readonly string[], leadership: Leadership): T {
  const gated = new Set<string | symbol>(methods);
  return new Proxy(api, {
    get(target, property, receiver) {
      const v: unknown = Reflect.get(target, property, receiver);
      if (typeof v !== 'function') return v;
      if (!gated.has(property)) return v.bind(target);
      return (...args: unknown[]): unknown => {
        if (leadership.leading()) return Reflect.apply(v, target, args);
        const leader = leadership.leaderAddress();
        return Promise.resolve(failWith('unavailable', 'NOT_LEADER', notLeaderMessage(leader), leader === undefined ? {} : { leader_address: leader }));
      };
    },
  });
}

export function leaderOnly(api: CoordinatorApi, leadership: Leadership): CoordinatorApi {
  return {
    plans: gate(api.plans, LEADER_ONLY.plans, leadership),
    checkpoints: gate(api.checkpoints, LEADER_ONLY.checkpoints, leadership),
    agents: api.agents,
    ...(api.policies !== undefined ? { policies: gate(api.policies, LEADER_ONLY.policies, leadership) } : {}),
    ...(api.sites !== undefined ? { sites: gate(api.sites, LEADER_ONLY.sites, leadership) } : {}),
  };
}
