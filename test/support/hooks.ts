/**
 * Hook directories for tests: shell-script hooks written into temporary directories, a trace file
 * every hook appends to (so a test reads back exactly what ran, in which order, with which
 * environment), and fake `sync` / `fsfreeze` programs that record their arguments instead of
 * freezing the test machine's filesystems.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { FREEZE_DEFAULTS, type FreezeConfig } from '../../agent/config.js';
import { FreezeController, type FreezeControllerOptions } from '../../agent/freeze.js';

export const quiet = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

export class HookWorld {
  readonly root: string;
  readonly hooksDir: string;
  readonly stateDir: string;
  /** Every hook written by `hook()` appends one line here per run. */
  readonly trace: string;
  readonly bin: string;

  constructor(prefix = 'snap-hooks-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    this.hooksDir = join(this.root, 'hooks');
    this.stateDir = join(this.root, 'state');
    this.bin = join(this.root, 'bin');
    this.trace = join(this.root, 'trace.log');
    mkdirSync(this.hooksDir, { recursive: true });
    mkdirSync(this.bin, { recursive: true });
    writeFileSync(this.trace, '');
  }

  /** Writes an executable file `<hooksDir>/<rel>` with `body` after a `#!/bin/sh` line. */
  file(rel: string, body: string, mode = 0o755): string {
    const path = join(this.hooksDir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, mode);
    return path;
  }

  /**
   * A hook that appends `<action> <app or -> <name>` to the trace, then runs `extra` (which sees
   * the action as $1).
   */
  hook(rel: string, extra = '', mode = 0o755): string {
    const name = rel.split('/').pop() as string;
    return this.file(rel, `echo "$1 \${SNAP_APP:--} ${name}" >> '${this.trace}'\n${extra}`, mode);
  }

  /** The trace, one entry per line. */
  lines(): string[] {
    return readFileSync(this.trace, 'utf8').split('\n').filter((l) => l !== '');
  }

  /** Fake `sync` and `fsfreeze` that trace `sync` and `fsfreeze -f /m`; `-f` on a mount in `failOn` fails. */
  fakeCommands(failOn: readonly string[] = []): { sync: string; fsfreeze: string } {
    const sync = join(this.bin, 'sync');
    writeFileSync(sync, `#!/bin/sh\necho "sync" >> '${this.trace}'\n`);
    chmodSync(sync, 0o755);
    const fsfreeze = join(this.bin, 'fsfreeze');
    const fails = failOn.map((m) => `[ "$1" = -f ] && [ "$2" = '${m}' ] && { echo "fsfreeze: $2: freeze failed: Operation not supported" >&2; exit 1; }`).join('\n');
    writeFileSync(fsfreeze, `#!/bin/sh\necho "fsfreeze $1 $2" >> '${this.trace}'\n${fails}\nexit 0\n`);
    chmodSync(fsfreeze, 0o755);
    return { sync, fsfreeze };
  }

  exists(path: string): boolean {
    return existsSync(path);
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function freezeConfig(overrides: Partial<FreezeConfig> = {}): FreezeConfig {
  return {
    mounts: [],
    ...FREEZE_DEFAULTS,
    hookTimeoutMs: 5_000,
    hookRetriesMax: 0,
    hookKillGraceMs: 500,
    sessionReadyTimeoutMs: 5_000,
    sessionReleaseTimeoutMs: 5_000,
    ...overrides,
  };
}

export function controller(world: HookWorld, config: Partial<FreezeConfig>, extra: Partial<FreezeControllerOptions> = {}): FreezeController {
  return new FreezeController({
    tenant: 't1',
    server: 's1',
    apps: ['APP1', 'APP2'],
    config: freezeConfig({ hooksDir: world.hooksDir, ...config }),
    stateDir: world.stateDir,
    logger: quiet,
    ...extra,
    commands: extra.commands ?? world.fakeCommands(),
  });
}
