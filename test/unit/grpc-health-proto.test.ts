/**
 * The health proto shipped in proto/ for clients is the one the coordinator serves: the same
 * messages, fields, enum values and methods.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { HEALTH_PROTO } from '../../coordinator/grpc/health.js';

const SHIPPED = 'proto/grpc/health/v1/health.proto';

/** The descriptor without comments: what a client's stubs are generated from. */
function shape(text: string): unknown {
  return JSON.parse(JSON.stringify(protobuf.parse(text, { keepCase: true, alternateCommentMode: false }).root.toJSON()));
}

describe('grpc.health.v1 in proto/', () => {
  it('describes exactly the service the coordinator serves', () => {
    expect(shape(readFileSync(SHIPPED, 'utf8'))).toEqual(shape(HEALTH_PROTO));
  });

  it('compiles with protoc, as a Python client generates its stubs', () => {
    const out = mkdtempSync(join(tmpdir(), 'health-proto-'));
    try {
      execFileSync('protoc', ['-Iproto', `--python_out=${out}`, SHIPPED]);
      expect(readFileSync(join(out, 'grpc/health/v1/health_pb2.py'), 'utf8')).toContain('HealthCheckResponse');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
