/**
 * The public surface of the pure snapshot core: everything a researcher needs to drive the
 * algorithm from their own scheduler (see docs/core.md), and what the agent and coordinator use.
 */
export * from './ids.js';
export { err, ok, type Err, type Ok, type Result } from './result.js';
export type {
  AckStats,
  ChannelOrder,
  CheckpointAck,
  DeclineReason,
  Effect,
  Effects,
  EffectType,
  Input,
  InputHandle,
  LogEpoch,
  LogRange,
  OutputHandle,
  ParticipantConfig,
  PolicyConfig,
  PolicyKind,
  RecordedMessage,
  Rejection,
  RejectReason,
  SnapshotCounts,
  TimerKey,
} from './core/types.js';
export { EffectBuffer } from './core/effects.js';
export { Participant, type ParticipantConfigError, type ParticipantOptions } from './core/participant.js';
export {
  CheckpointTracker,
  type AbortReason,
  type TrackerConfig,
  type TrackerEffect,
  type TrackerInput,
  type TrackerRejectReason,
  type TrackerResult,
} from './core/tracker.js';
export * from './graph/index.js';
export * from './checker/index.js';
export { epochOfSeq } from './core/log-range.js';
