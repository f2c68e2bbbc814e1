/**
 * A real 3-node NATS cluster with JetStream on loopback, for tests, benches and the demo: each node
 * has its own client port, route port and store directory; the nodes find each other by routes.
 * Each node can be killed, stopped, paused (SIGSTOP) and resumed (SIGCONT), and started again on
 * the same ports and store, so a test can take one node away and bring it back.
 *
 *   const cluster = await startNatsCluster();
 *   ... connect({ servers: cluster.urls }) ...
 *   await cluster.nodes[0].kill();   // SIGKILL: JetStream elects new leaders among the other two
 *   await cluster.nodes[0].start();  // rejoins with its store
 *   await cluster.stop();
 *
 * Ready means every running node accepts connections and JetStream has a meta leader (an account
 * info request is answered): before that, KV and stream calls fail with 503.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { exited, freePort, killAndWait, sleep } from './nats-server.js';

export interface ClusterNode {
  /** The node's server name (`n1`, `n2`, ...): JetStream's peer name. */
  readonly name: string;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly storeDir: string;
  /** The running process's id; undefined while the node is down. */
  pid(): number | undefined;
  running(): boolean;
  /** Sends the signal (default SIGKILL) and waits for the exit. The store stays for start(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing, like a node that hangs. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Starts the node again on its ports and store (after kill); resolves once it accepts connections. */
  start(): Promise<void>;
}

export interface NatsClusterHandle {
  readonly nodes: readonly ClusterNode[];
  /** Every node's client URL: what a client connects to, so it can fail over. */
  readonly urls: readonly string[];
  /** Resolves once JetStream has a meta leader, as seen from a running node; rejects after `timeoutMs`. */
  waitForJetStream(timeoutMs?: number): Promise<void>;
  /** Stops every node (SIGCONT, SIGTERM, SIGKILL after a grace) and removes the stores. Idempotent. */
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Nodes; default 3 (JetStream's R3 needs three, and a majority of two survives one loss). */
  readonly size?: number;
  /** The binary to run; default `$NATS_SERVER_BIN` or `nats-server` on the PATH. */
  readonly binary?: string;
  /** How long start-up (and each node's start()) may take until ready. */
  readonly readyTimeoutMs?: number;
  readonly stopGraceMs?: number;
  /** Each node in a process group of its own, so a terminal's Ctrl-C does not reach it (the demo). */
  readonly detached?: boolean;
}

const defaults = {
  size: 3,
  readyTimeoutMs: 30_000,
  stopGraceMs: 5_000,
  connectRetryMs: 100,
  outputCharsMax: 16_384,
  clusterName: 'snap-test',
} as const;

interface NodeSpec {
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly storeDir: string;
}

function ready(url: string): Promise<void> {
  return (async () => {
    const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
    try {
      // Answered only once the JetStream meta group has a leader.
      const jsm = await nc.jetstreamManager({ timeout: 1_000 });
      await jsm.getAccountInfo();
    } finally {
      await nc.close();
    }
  })();
}

async function accepts(url: string): Promise<void> {
  const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
  await nc.close();
}

class Node implements ClusterNode {
  private child: ChildProcess | undefined;
  private output = '';
  private readonly killOnExit = (): void => {
    this.child?.kill('SIGKILL');
  };

  constructor(
    private readonly spec: NodeSpec,
    private readonly peers: readonly number[],
    private readonly options: Required<Pick<NatsClusterOptions, 'binary' | 'readyTimeoutMs' | 'stopGraceMs' | 'detached'>>,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  get url(): string {
    return `nats://127.0.0.1:${this.spec.port}`;
  }
  get port(): number {
    return this.spec.port;
  }
  get clusterPort(): number {
    return this.spec.clusterPort;
  }
  get storeDir(): string {
    return this.spec.storeDir;
  }

  pid(): number | undefined {
    return this.running() ? this.child?.pid : undefined;
  }

  running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the process without waiting for it. */
  spawn(): void {
    if (this.running()) throw new Error(`node ${this.name} is already running`);
    const routes = this.peers.map((p) => `nats://127.0.0.1:${p}`).join(',');
    const args = [
      '-n', this.name,
      '-a', '127.0.0.1',
      '-p', String(this.port),
      '-js', '-sd', this.storeDir,
      '--cluster_name', defaults.clusterName,
      '--cluster', `nats://127.0.0.1:${this.clusterPort}`,
      '--routes', routes,
    ];
    const child = spawn(this.options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: this.options.detached });
    this.output = '';
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-defaults.outputCharsMax);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('error', (error: NodeJS.ErrnoException) => {
      this.output += `\nspawn failed: ${error.code === 'ENOENT' ? `binary '${this.options.binary}' not found (apt-get install -y nats-server, or set NATS_SERVER_BIN)` : error.message}`;
    });
    process.once('exit', this.killOnExit);
    void exited(child).then(() => process.removeListener('exit', this.killOnExit));
    this.child = child;
  }

  /** Polls until the node accepts connections (`jetStream`: and JetStream answers through it). */
  async waitUp(jetStream: boolean, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = 'no attempt made';
    for (;;) {
      if (!this.running()) throw new Error(`nats-server ${this.name} exited during start-up.\n--- its output ---\n${this.output}`);
      try {
        await (jetStream ? ready(this.url) : accepts(this.url));
        return;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      if (performance.now() > deadline) {
        throw new Error(`nats-server ${this.name} on ${this.url} was not ready within ${timeoutMs} ms (last error: ${last}).\n--- its output ---\n${this.output}`);
      }
      await sleep(defaults.connectRetryMs);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running()) return;
    // A paused process does not act on SIGTERM until it runs again.
    child.kill('SIGCONT');
    child.kill(signal);
    await exited(child);
  }

  pause(): void {
    if (!this.running()) throw new Error(`node ${this.name} is not running`);
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    if (!this.running()) throw new Error(`node ${this.name} is not running`);
    this.child?.kill('SIGCONT');
  }

  async start(): Promise<void> {
    this.spawn();
    await this.waitUp(false, this.options.readyTimeoutMs);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGCONT');
    await killAndWait(child, this.options.stopGraceMs);
    process.removeListener('exit', this.killOnExit);
  }
}

/** Starts `size` nats-servers with JetStream clustered by routes; rejects with their output if they do not get ready. */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = options.size ?? defaults.size;
  if (!Number.isInteger(size) || size < 1) throw new Error(`size must be a positive integer, got ${size}`);
  const resolved = {
    binary: options.binary ?? process.env.NATS_SERVER_BIN ?? 'nats-server',
    readyTimeoutMs: options.readyTimeoutMs ?? defaults.readyTimeoutMs,
    stopGraceMs: options.stopGraceMs ?? defaults.stopGraceMs,
    detached: options.detached ?? false,
  };
  // Ports are chosen up front: every node's routes name every other node's route port.
  const specs: NodeSpec[] = [];
  const taken = new Set<number>();
  const pick = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  for (let i = 1; i <= size; i++) {
    specs.push({ name: `n${i}`, port: await pick(), clusterPort: await pick(), storeDir: mkdtempSync(join(tmpdir(), `nats-cluster-n${i}-`)) });
  }
  const nodes = specs.map((s) => new Node(s, specs.filter((o) => o !== s).map((o) => o.clusterPort), resolved));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      for (const s of specs) rmSync(s.storeDir, { recursive: true, force: true });
    })());
  const waitForJetStream = async (timeoutMs = resolved.readyTimeoutMs): Promise<void> => {
    const up = nodes.find((n) => n.running());
    if (up === undefined) throw new Error('no node of the cluster is running');
    await up.waitUp(true, timeoutMs);
  };
  try {
    for (const n of nodes) n.spawn();
    await Promise.all(nodes.map((n) => n.waitUp(false, resolved.readyTimeoutMs)));
    await waitForJetStream();
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, urls: nodes.map((n) => n.url), waitForJetStream, stop };
}
