/**
 * A small client of QEMU's JSON protocols over a unix socket: QMP (the monitor: a greeting, then
 * `qmp_capabilities`, then commands) and the qemu-guest-agent protocol (no greeting; `guest-sync`
 * first, to drop an answer a previous client left unread). One command at a time, answers read in
 * order; QMP's asynchronous events (`{"event": ...}`) are skipped.
 *
 * Spoken here rather than through an npm package: the protocol is lines of JSON, the few QMP
 * packages on the registry are unmaintained or pull in more than they save, and every failure must
 * become a clear error value with a bound on the wait (a wedged monitor must not hang a round
 * while a machine stays paused).
 */
import { connect, type Socket } from 'node:net';
import { fail, ok, type Result } from '../errors.js';

export interface QmpError {
  readonly class: string;
  readonly desc: string;
}

type Answer = { return: unknown } | { error: QmpError };

export class JsonSocket {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private closedBecause: string | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let at: number;
      while ((at = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, at).trim();
        this.buffer = this.buffer.slice(at + 1);
        if (line !== '') this.lines.push(line);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closedBecause ??= 'the socket closed';
      this.wake();
    });
    socket.on('error', (error) => {
      this.closedBecause = error.message;
      this.wake();
    });
  }

  /** Connects within `timeoutMs`: a missing socket or one nobody accepts on is an error value. */
  static open(path: string, timeoutMs: number): Promise<Result<JsonSocket>> {
    return new Promise((resolve) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(fail('unavailable', `${path}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(ok(new JsonSocket(socket, path)));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        resolve(fail('unavailable', `${path}: ${error.message}`));
      });
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next JSON message that is not an event, or why none came by `deadline` (a Date.now() instant). */
  async next(deadline: number): Promise<Result<Record<string, unknown>>> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          return fail('internal', `${this.path}: not JSON: ${line.slice(0, 200)}`);
        }
        if (typeof message !== 'object' || message === null) return fail('internal', `${this.path}: not a JSON object: ${line.slice(0, 200)}`);
        if ('event' in message) continue;
        return ok(message as Record<string, unknown>);
      }
      if (this.closedBecause !== undefined) return fail('unavailable', `${this.path}: ${this.closedBecause}`);
      const left = deadline - Date.now();
      if (left <= 0) return fail('deadline-exceeded', `${this.path}: no answer within the time allowed (the monitor may be wedged)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  send(message: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Sends one command and returns its answer: `return`, or the protocol's error as an error value. */
  async execute(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<Result<unknown>> {
    const deadline = Date.now() + timeoutMs;
    this.send(args === undefined ? { execute: command } : { execute: command, arguments: args });
    for (;;) {
      const m = await this.next(deadline);
      if (!m.ok) return fail(m.error.kind, `${command}: ${m.error.message}`);
      const answer = m.value as Answer;
      if ('return' in answer) return ok(answer.return);
      if ('error' in answer) return fail('failed-precondition', `${command}: ${answer.error.desc} (${answer.error.class})`);
      // A greeting or anything else that is not an answer: keep reading.
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A QMP session: connected, greeted and out of capabilities negotiation. */
export async function openQmp(path: string, timeoutMs: number): Promise<Result<JsonSocket>> {
  const s = await JsonSocket.open(path, timeoutMs);
  if (!s.ok) return s;
  const greeting = await s.value.next(Date.now() + timeoutMs);
  if (!greeting.ok || !('QMP' in greeting.value)) {
    s.value.close();
    return fail(greeting.ok ? 'internal' : greeting.error.kind, `${path}: no QMP greeting: ${greeting.ok ? JSON.stringify(greeting.value).slice(0, 200) : greeting.error.message}`);
  }
  const caps = await s.value.execute('qmp_capabilities', undefined, timeoutMs);
  if (!caps.ok) {
    s.value.close();
    return caps;
  }
  return s;
}

/** A qemu-guest-agent session, synchronised: whatever an earlier client left unread is skipped. */
export async function openGuestAgent(path: string, timeoutMs: number): Promise<Result<JsonSocket>> {
  const s = await JsonSocket.open(path, timeoutMs);
  if (!s.ok) return s;
  const token = Math.floor(Math.random() * 2 ** 31);
  const deadline = Date.now() + timeoutMs;
  s.value.send({ execute: 'guest-sync', arguments: { id: token } });
  for (;;) {
    const m = await s.value.next(deadline);
    if (!m.ok) {
      s.value.close();
      return fail(m.error.kind, `guest-sync: ${m.error.message}`);
    }
    if ((m.value as { return?: unknown }).return === token) return s;
  }
}
