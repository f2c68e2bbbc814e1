/** The NATS wire format: typed messages, their codec, and the validation rules they share. */
export {
  checkWireLimits,
  decodeControl,
  decodeCredit,
  decodeEnvelope,
  decodeEvent,
  decodePlanTrigger,
  encodeControl,
  encodePlanTrigger,
  encodeCredit,
  encodeEnvelope,
  encodeEvent,
  encodeEventTrusted,
  encodeEnvelopeTrusted,
  wireLimitsDefault,
} from './codec.js';
export { ChannelCodec } from './channel-codec.js';
export { forEachItem } from './channel.js';
export { isChannelId, isName, isProcessId, wireFormat } from './fields.js';
export type {
  AgentEvent,
  AgentEventBody,
  AgentEventHeader,
  AgentEventType,
  AppName,
  AppRestore,
  AppState,
  Control,
  ControlCommand,
  ControlHeader,
  ControlType,
  ChannelItem,
  Credit,
  Envelope,
  ObjectRef,
  PlanTrigger,
  ProgressPhase,
  RequestId,
  ServerId,
  LayoutId,
  TenantId,
  WireAckStats,
  HookAction,
  HookResult,
  WireDeclineReason,
  WireError,
  WireErrorKind,
  WireLimits,
  WireResult,
} from './types.js';
export * from './subjects.js';
export { CHANNEL_STATE_BYTES_MAX, decodeChannelState, encodeChannelState, type ChannelStates } from './channel-state.js';
