/** The hook runtime: hook files in a directory, run bounded, with sessions held across a freeze. */
export { discoverHooks, EMPTY_HOOK_SET, SESSION_DIR, unknownHookEntries, type HookFile, type HookSet, type Skipped } from './discover.js';
export { describeHookResult, hookFailed, HOOK_NAME_CHARS_MAX, HOOK_RETRY_PAUSE_MS, runHook, runHookWithOutput, type HookCommand, type RunLimits, type RunOptions } from './run.js';
export { HookSession, SESSION_READY_LINE, SESSION_RELEASE_LINE, type SessionLimits, type SessionStart } from './session.js';
export { STDIO_DRAIN_MS } from './process.js';
