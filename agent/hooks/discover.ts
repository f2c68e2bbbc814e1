/**
 * Finds the hooks in a hook directory, in the layout of qemu-guest-agent's `fsfreeze-hook.d`:
 *
 *   <hooksDir>/NN-name              server-wide hooks
 *   <hooksDir>/<app>/NN-name        hooks of one configured app (run with SNAP_APP set)
 *   <hooksDir>/session.d/NN-name    long-lived sessions (started at freeze, released at thaw)
 *   <hooksDir>/<app>/session.d/...  sessions of one app
 *
 * Within a directory, executables run in lexical order of their names (plain code-unit order, the
 * same in every locale). Dotfiles, non-executables and anything that is not a regular file are
 * skipped, and every skip is reported so that the log says why a hook did not run.
 */
import { constants, type Stats } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { nearest } from '../../adapters/config-schema.js';

export const SESSION_DIR = 'session.d';

export interface HookFile {
  /** The file name, reported as `HookResult.hook` (sessions: `session.d/<name>`). */
  readonly name: string;
  readonly path: string;
  /** Absent for a server-wide hook. */
  readonly app?: string;
}

export interface Skipped {
  readonly path: string;
  readonly why: string;
  /**
   * A directory the layout has no place for (most often a misspelt app name or `session.d`), as
   * opposed to a hook switched off on purpose (a dotfile, `chmod -x`). Refused at start-up.
   */
  readonly unknown?: true;
}

export interface HookSet {
  /**
   * In the order of the "doing" actions (prepare, freeze, restore): each app's hooks, apps in
   * lexical order of their names, then the server-wide hooks. The "undoing" actions (thaw, resume)
   * run the exact reverse.
   */
  readonly hooks: readonly HookFile[];
  /** Sessions in start order (same rule); released in reverse. */
  readonly sessions: readonly HookFile[];
  readonly skipped: readonly Skipped[];
}

export const EMPTY_HOOK_SET: HookSet = { hooks: [], sessions: [], skipped: [] };

/** Code-unit order: `sort()` without a locale. */
function lexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The executables of one directory; subdirectories are returned apart for the caller to judge. */
async function scan(dir: string, app: string | undefined, namePrefix: string, skipped: Skipped[]): Promise<{ files: HookFile[]; dirs: string[] }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], dirs: [] };
    throw error;
  }
  const files: HookFile[] = [];
  const dirs: string[] = [];
  for (const name of names.sort(lexical)) {
    const path = join(dir, name);
    if (name.startsWith('.')) {
      skipped.push({ path, why: 'a dotfile' });
      continue;
    }
    const st = await statOrUndefined(path);
    if (!st) {
      skipped.push({ path, why: 'unreadable or a dangling link' });
      continue;
    }
    if (st.isDirectory()) {
      dirs.push(name);
      continue;
    }
    if (!st.isFile()) {
      skipped.push({ path, why: 'not a regular file' });
      continue;
    }
    if (!(await isExecutable(path))) {
      skipped.push({ path, why: 'not executable (chmod +x to enable it)' });
      continue;
    }
    files.push({ name: `${namePrefix}${name}`, path, ...(app !== undefined ? { app } : {}) });
  }
  return { files, dirs };
}

/**
 * Reads the hook directory now (hooks added or removed take effect at the next freeze). A missing
 * `<hooksDir>` is an error: an operator who configured hooks must not get a freeze without them.
 */
export async function discoverHooks(hooksDir: string, apps: readonly string[]): Promise<HookSet> {
  const st = await statOrUndefined(hooksDir);
  if (!st || !st.isDirectory()) throw new Error(`the hook directory ${hooksDir} does not exist or is not a directory`);
  const skipped: Skipped[] = [];
  const top = await scan(hooksDir, undefined, '', skipped);
  const sessionsIn = async (dir: string, app: string | undefined): Promise<HookFile[]> => {
    const found = await scan(dir, app, `${SESSION_DIR}/`, skipped);
    for (const sub of found.dirs) skipped.push({ path: join(dir, sub), why: 'a directory inside session.d', unknown: true });
    return found.files;
  };
  const serverSessions = top.dirs.includes(SESSION_DIR) ? await sessionsIn(join(hooksDir, SESSION_DIR), undefined) : [];
  const configured = new Set(apps);
  const hooks: HookFile[] = [];
  const sessions: HookFile[] = [];
  for (const dir of top.dirs) {
    if (dir === SESSION_DIR) continue;
    if (!configured.has(dir)) {
      const near = nearest(dir, [...configured, SESSION_DIR]);
      const hint = near !== undefined ? `; did you mean ${near}?` : '';
      skipped.push({ path: join(hooksDir, dir), why: `a directory that names no configured app (apps: ${[...configured].join(', ') || 'none'})${hint}`, unknown: true });
    }
  }
  // top.dirs is sorted, so apps come in lexical order.
  for (const app of top.dirs.filter((d) => configured.has(d))) {
    const appDir = join(hooksDir, app);
    const own = await scan(appDir, app, '', skipped);
    hooks.push(...own.files);
    for (const sub of own.dirs) {
      if (sub === SESSION_DIR) sessions.push(...(await sessionsIn(join(appDir, SESSION_DIR), app)));
      else skipped.push({ path: join(appDir, sub), why: 'a directory inside an app hook directory (only session.d is read)', unknown: true });
    }
  }
  hooks.push(...top.files);
  sessions.push(...serverSessions);
  return { hooks, sessions, skipped };
}

/**
 * What in the hook directory has no place in its layout, one problem per entry, for the agent to
 * refuse to start on: a hook directory of a misspelt app would otherwise be skipped at every freeze.
 */
export async function unknownHookEntries(hooksDir: string, apps: readonly string[]): Promise<string[]> {
  let set: HookSet;
  try {
    set = await discoverHooks(hooksDir, apps);
  } catch (error) {
    return [`freeze.hooksDir: ${error instanceof Error ? error.message : String(error)}`];
  }
  return set.skipped.filter((s) => s.unknown).map((s) => `freeze.hooksDir: ${s.path} is ${s.why}`);
}
