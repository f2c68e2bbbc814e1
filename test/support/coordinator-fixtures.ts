/**
 * Small valid coordinator values for tests: a plan with a diamond and a cycle, and a checkpoint
 * record, each changeable field by field.
 */
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';

export function planInput(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    id: 'demo',
    tenant: 'acme',
    servers: ['srv1', 'srv2', 'srv3'],
    apps: [
      { server: 'srv1', app: 'APP1' },
      { server: 'srv2', app: 'APP2' },
      { server: 'srv3', app: 'APP3' },
    ],
    channels: [
      { from: { server: 'srv1', app: 'APP1' }, to: { server: 'srv2', app: 'APP2' }, kind: 'in-band' },
      { from: { server: 'srv2', app: 'APP2' }, to: { server: 'srv3', app: 'APP3' }, kind: 'in-band' },
      { from: { server: 'srv1', app: 'APP1' }, to: { server: 'srv3', app: 'APP3' }, kind: 'log', logStream: 'ORDERS' },
      { from: { server: 'srv3', app: 'APP3' }, to: { server: 'srv1', app: 'APP1' }, kind: 'opaque' },
    ],
    volumes: [{ id: 'vol1', server: 'srv1', backendRef: 'pool/vol1' }],
    ...overrides,
  };
}

export function checkpointRecord(overrides: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id: 1,
    planId: 'demo',
    tenant: 'acme',
    levelRequested: 'app',
    state: 'pending',
    epoch: 0,
    options: { timeoutMs: 60_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 30_000 },
    createdAtUnixMs: 1_700_000_000_000,
    parts: [
      { server: 'srv1', app: 'APP1', acked: false },
      { server: 'srv2', app: 'APP2', acked: false },
    ],
    volumes: [],
    safety: false,
    ...overrides,
  };
}
