/**
 * A real nats-server with JetStream for one integration test file: its own free loopback port and
 * its own temporary store directory, so test files can run in parallel and leave nothing behind.
 *
 *   const nats = await startNatsServer();
 *   ... connect({ servers: nats.url }) ...
 *   await nats.stop();
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';

export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The JetStream store directory (removed by stop). */
  readonly storeDir: string;
  /** The server's process id (with `detached`, also its process group id). */
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period) and removes its store. Idempotent. */
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** The binary to run; default `$NATS_SERVER_BIN` or `nats-server` on the PATH. */
  readonly binary?: string;
  /** How long to wait for the server to accept connections with JetStream ready. */
  readonly readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. */
  readonly stopGraceMs?: number;
  /** Attempts with a fresh port when the chosen one was taken between choosing and binding. */
  readonly portAttemptsMax?: number;
  /**
   * Runs the server in a process group of its own, so a terminal's Ctrl-C (sent to the whole
   * foreground group) does not stop it behind its owner's back; the owner stops it with stop().
   */
  readonly detached?: boolean;
  /** The server's max_payload (default nats-server's, 1 MiB): tests of what does not fit a message. */
  readonly maxPayloadBytes?: number;
  /** More configuration file text, e.g. operator mode (examples/secured-nats.ts). */
  readonly configText?: string;
  /** How to tell the server serves (default: an anonymous client gets JetStream's answer). */
  readonly readyCheck?: ReadyCheck;
}

const defaults = {
  readyTimeoutMs: 15_000,
  stopGraceMs: 5_000,
  portAttemptsMax: 3,
  /** Pause between connection attempts while the server starts. */
  connectRetryMs: 50,
  /** How much of the server's output is kept for error messages. */
  outputCharsMax: 16_384,
} as const;

const installHint = 'install it with `apt-get install -y nats-server` (or set NATS_SERVER_BIN to its path)';

/** Asks the kernel for a free loopback port. Another process may take it before nats-server binds it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * SIGSTOP, and resolves once every thread of the process is stopped (Linux /proc): kill() returns
 * before a multi-threaded process has stopped, and a request sent at once may still be answered.
 */
export async function pauseProcess(pid: number, timeoutMs = 5_000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const states = readdirSync(`/proc/${pid}/task`).map((tid) => {
      // "tid (comm) S ...": the state follows the last ')', comm may hold spaces or parentheses.
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    });
    if (states.every((state) => state === 'T')) return;
    if (performance.now() > deadline) throw new Error(`process ${pid} not stopped within ${timeoutMs} ms (thread states ${states.join('')})`);
    await sleep(1);
  }
}

export async function killAndWait(child: ChildProcess, graceMs: number): Promise<void> {
  // No pid: the spawn itself failed, and 'exit' may never be emitted.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const graceful = await Promise.race([exited(child).then(() => true), sleep(graceMs).then(() => false)]);
  if (!graceful) {
    child.kill('SIGKILL');
    await exited(child);
  }
}

class StartError extends Error {
  constructor(
    message: string,
    /** True when the port was taken: worth another attempt with a fresh port. */
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

function writeConfig(dir: string, text: string): string {
  const file = join(dir, 'nats-server.conf');
  writeFileSync(file, text);
  return file;
}

async function startOnce(binary: string, readyTimeoutMs: number, stopGraceMs: number, detached: boolean, maxPayloadBytes: number | undefined, configText: string | undefined, readyCheck: ReadyCheck): Promise<NatsServerHandle> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'nats-test-'));
  const url = `nats://127.0.0.1:${port}`;
  // max_payload has no command-line flag: it goes in a configuration file.
  const text = `${maxPayloadBytes === undefined ? '' : `max_payload: ${maxPayloadBytes}\n`}${configText ?? ''}`;
  const config = text === '' ? [] : ['-c', writeConfig(storeDir, text)];
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });

  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-defaults.outputCharsMax);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  let spawnError: NodeJS.ErrnoException | undefined;
  child.once('error', (error: NodeJS.ErrnoException) => {
    spawnError = error;
  });
  // A test runner that dies without calling stop() must not leave a server behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const cleanUp = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    await killAndWait(child, stopGraceMs);
    rmSync(storeDir, { recursive: true, force: true });
  };

  const deadline = performance.now() + readyTimeoutMs;
  let lastError = 'no connection attempt made';
  for (;;) {
    if (spawnError !== undefined) {
      await cleanUp();
      if (spawnError.code === 'ENOENT') throw new StartError(`nats-server binary '${binary}' not found: ${installHint}`, false);
      throw new StartError(`could not start '${binary}': ${spawnError.message}`, false);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      await cleanUp();
      const reason = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${child.signalCode}`;
      throw new StartError(
        `nats-server exited during start-up (${reason}) on port ${port}.\n--- nats-server output ---\n${output}`,
        /address already in use/i.test(output),
      );
    }
    try {
      await readyCheck(url);
      break;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (performance.now() > deadline) {
      await cleanUp();
      throw new StartError(
        `nats-server on ${url} was not ready within ${readyTimeoutMs} ms (last error: ${lastError}).\n` +
          `--- nats-server output ---\n${output}`,
        false,
      );
    }
    await sleep(defaults.connectRetryMs);
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    storeDir,
    pid: child.pid as number,
    stop: () => (stopping ??= cleanUp()),
  };
}

/** Resolves once the server at the URL serves: connected, JetStream answering. */
export type ReadyCheck = (url: string) => Promise<void>;

const jetStreamAnswers: ReadyCheck = async (url) => {
  const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
  try {
    // Connected is not enough: JetStream must answer before KV and Object Store work.
    await nc.jetstreamManager({ timeout: 1_000 });
  } finally {
    await nc.close();
  }
};

/** Starts nats-server with JetStream on a free loopback port; rejects with a clear message if it cannot. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = options.binary ?? process.env.NATS_SERVER_BIN ?? 'nats-server';
  const readyTimeoutMs = options.readyTimeoutMs ?? defaults.readyTimeoutMs;
  const stopGraceMs = options.stopGraceMs ?? defaults.stopGraceMs;
  const portAttemptsMax = options.portAttemptsMax ?? defaults.portAttemptsMax;
  const detached = options.detached ?? false;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, readyTimeoutMs, stopGraceMs, detached, options.maxPayloadBytes, options.configText, options.readyCheck ?? jetStreamAnswers);
    } catch (error) {
      if (error instanceof StartError && error.portTaken && attempt < portAttemptsMax) continue;
      throw error instanceof StartError ? new Error(error.message) : error;
    }
  }
}
