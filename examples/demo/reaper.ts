/**
 * The demo's dead-man switch. The demo starts nats-server, the coordinator and the agents in process
 * groups of their own, so that a terminal's Ctrl-C (sent to the whole foreground group) reaches only
 * the demo, which then finishes its step, prints its summary and stops them itself. If the demo dies
 * without doing so (SIGKILL, a crash, a second Ctrl-C), nothing would stop them any more: they would
 * run on, holding ports and temporary directories.
 *
 * So the demo starts this small process first, also in a group of its own, with a pipe on its stdin,
 * and tells it on that pipe what to clean up: `group <pid>` for each process group it starts and
 * `dir <path>` for each temporary directory. A pipe closes when its writer dies, however it dies:
 * at end of input this process stops every group announced (SIGTERM, then SIGKILL after a grace
 * period) and removes the directories. After a clean stop the demo kills this process instead, and
 * nothing is done twice.
 */
import { rmSync } from 'node:fs';

/** How long the groups get to stop on SIGTERM before SIGKILL. */
const stopGraceMs = 5_000;
const pollIntervalMs = 100;

const groups: number[] = [];
const dirs: string[] = [];

function take(line: string): void {
  const [kind, value] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
  if (kind === 'group' && /^[1-9][0-9]*$/.test(value)) groups.push(Number(value));
  else if (kind === 'dir' && value.startsWith('/')) dirs.push(value);
}

/** Signals a whole process group; false when it no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

async function reap(): Promise<void> {
  for (const g of groups) signalGroup(g, 'SIGTERM');
  const deadline = Date.now() + stopGraceMs;
  while (groups.some((g) => signalGroup(g, 0)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, pollIntervalMs));
  for (const g of groups) signalGroup(g, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  let at: number;
  while ((at = pending.indexOf('\n')) >= 0) {
    take(pending.slice(0, at));
    pending = pending.slice(at + 1);
  }
});
process.stdin.on('end', () => {
  void reap().finally(() => process.exit(0));
});
