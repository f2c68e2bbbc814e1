/**
 * What snapctl says when a call fails: words a person can act on instead of grpc-js's transport
 * texts, a hint where retention explains a missing checkpoint, snapctl's flags instead of API
 * fields; and every failure in one place (stderr, or stdout JSON with --json), never both.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { CallError } from '../../coordinator/grpc/client.js';
import { errorText, type ErrorContext } from '../../coordinator/snapctl/errors.js';
import { runSnapctl, type SnapctlClient, type SnapctlIo } from '../../coordinator/snapctl/main.js';

const refused: CallError = {
  code: GrpcStatus.UNAVAILABLE,
  codeName: 'UNAVAILABLE',
  message: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50051 (2026-01-01T00:00:00.000Z)',
};

const cx = (command: ErrorContext['command']): ErrorContext => ({ address: '127.0.0.1:50051', command, callTimeoutMs: 180_000 });

/** A client whose every call fails with `error`. */
function failingClient(error: CallError): SnapctlClient {
  return new Proxy({} as SnapctlClient, {
    get: (_, key) => (key === 'close' ? () => undefined : async () => ({ ok: false, error })),
  });
}

async function run(argv: string[], error: CallError): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: SnapctlIo = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    stdoutIsTTY: false,
    readFile: () => '',
    now: () => 0,
    onInterrupt: () => () => undefined,
  };
  const code = await runSnapctl(argv, {}, io, () => failingClient(error));
  return { code, stdout, stderr };
}

describe('snapctl error messages', () => {
  it('no coordinator at the address: names the address and the way out, without the grpc-js text', () => {
    const text = errorText(refused, cx('list'));
    expect(text).toBe(
      'cannot reach the coordinator at 127.0.0.1:50051 (connection refused). Is it running? Start the demo with `npm start`, or point snapctl at your coordinator with --address HOST:PORT (or SNAPCTL_ADDRESS).',
    );
  });

  it("the coordinator's own UNAVAILABLE (a rollback that did not finish) is shown as it is", () => {
    const own: CallError = { code: GrpcStatus.UNAVAILABLE, codeName: 'UNAVAILABLE', message: 'rollback to checkpoint 4 incomplete (s2: no answer within 30000 ms); retry the rollback' };
    expect(errorText(own, cx('rollback'))).toBe(`UNAVAILABLE: ${own.message}`);
  });

  it('a rollback past its deadline: says how long snapctl waited and that the rollback may still be running', () => {
    const text = errorText({ code: GrpcStatus.DEADLINE_EXCEEDED, codeName: 'DEADLINE_EXCEEDED', message: 'Deadline exceeded after 180.001s' }, cx('rollback'));
    expect(text).toMatch(/^the coordinator at 127\.0\.0\.1:50051 did not answer within 180 s; the rollback may still be running there: check `snapctl agents`/);
    expect(text).not.toContain('Deadline exceeded');
  });

  it('a checkpoint not found: the message says retention may have deleted it', () => {
    const text = errorText({ code: GrpcStatus.NOT_FOUND, codeName: 'NOT_FOUND', message: 'checkpoint 12 does not exist' }, cx('verify'));
    expect(text).toMatch(/^NOT_FOUND: checkpoint 12 does not exist \(it may have been deleted by retention: .*`snapctl list`/);
  });

  it('a plan that still has checkpoints: names the --with-checkpoints flag, not the API field', () => {
    const message = 'plan demo still has checkpoints: delete them first, or delete the plan with delete_checkpoints set';
    const text = errorText({ code: GrpcStatus.FAILED_PRECONDITION, codeName: 'FAILED_PRECONDITION', message }, cx('plans-delete'));
    expect(text).toBe('FAILED_PRECONDITION: plan demo still has checkpoints: delete them first, or delete the plan with --with-checkpoints');
  });
});

describe('snapctl reports a failure in one place', () => {
  it('without --json: one line on stderr, nothing on stdout, exit 1', async () => {
    const result = await run(['agents'], refused);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(/^snapctl: cannot reach the coordinator at 127\.0\.0\.1:50051 \(connection refused\)\. .*\n$/);
  });

  it('with --json: one JSON document on stdout with the code, the raw message and the text, nothing on stderr, exit 1', async () => {
    const result = await run(['--json', 'list'], refused);
    expect(result).toMatchObject({ code: 1, stderr: '' });
    const doc = JSON.parse(result.stdout) as { error: { code: string; message: string; text: string } };
    expect(doc.error.code).toBe('UNAVAILABLE');
    expect(doc.error.message).toBe(refused.message);
    expect(doc.error.text).toMatch(/^cannot reach the coordinator at/);
  });
});
