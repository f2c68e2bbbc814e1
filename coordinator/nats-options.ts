/**
 * Options every NATS connection of the coordinator sets. `noAsyncTraces`: for every request (each
 * KV read or write is one) nats.js otherwise makes an Error, stack trace and all, only to append
 * where the request began to a timeout's stack, and a second one for the timeout it may never
 * raise. Without them a checkpoint of 21 apps costs the coordinator about 8 % less CPU (1.52
 * against 1.66 ms, medians of eight runs of bench/ab/coordinator.ts). Its errors reach callers as
 * typed values (store/nats-errors.ts), which carry no stack.
 */
export const COORDINATOR_NATS_OPTIONS = { noAsyncTraces: true } as const;
