/**
 * The .proto files are the source of truth: the committed generated code must be exactly what
 * `npm run gen:proto` writes (so nobody edits it by hand or forgets to regenerate), and the files
 * must compile with the stock `protoc` toolchain, which the protection service (Python) uses.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repoDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const generatedDir = join(repoDir, 'src', 'wire', 'generated');
const protoDir = join(repoDir, 'proto');
const protoFiles = ['snapshot/v1/wire.proto', 'snapshot/v1/coordinator.proto', 'snapshot/v1/local.proto'];

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('generated protobuf code', () => {
  it('the committed src/wire/generated is exactly what `npm run gen:proto` writes', () => {
    const outDir = tempDir('gen-proto-');
    execFileSync(process.execPath, [join(repoDir, 'scripts', 'gen-proto.mjs'), outDir], { cwd: repoDir, stdio: 'pipe' });
    const fresh = readdirSync(outDir).sort();
    expect(readdirSync(generatedDir).sort(), 'run `npm run gen:proto` and commit the result').toEqual(fresh);
    for (const file of fresh) {
      expect(readFileSync(join(generatedDir, file), 'utf8'), `${file} differs: run \`npm run gen:proto\``).toBe(
        readFileSync(join(outDir, file), 'utf8'),
      );
    }
  });

  it('every generated file says it is generated and must not be edited', () => {
    for (const file of readdirSync(generatedDir)) {
      expect(readFileSync(join(generatedDir, file), 'utf8').split('\n')[1]).toContain('DO NOT EDIT');
    }
  });
});

const protocFound = spawnSync('protoc', ['--version'], { stdio: 'ignore' }).status === 0;
if (!protocFound) {
  console.warn('proto-generated.test: protoc not found, the stock-toolchain check is skipped (apt-get install -y protobuf-compiler)');
}

describe('stock protoc toolchain', () => {
  it.skipIf(!protocFound)(
    'the .proto files compile with `protoc --python_out` (skipped when protoc is absent: apt-get install -y protobuf-compiler)',
    () => {
      const outDir = tempDir('protoc-python-');
      const result = spawnSync('protoc', ['-I', protoDir, `--python_out=${outDir}`, ...protoFiles], { encoding: 'utf8' });
      expect(result.stderr, 'protoc reported problems').toBe('');
      expect(result.status).toBe(0);
      expect(readdirSync(join(outDir, 'snapshot', 'v1')).sort()).toEqual(['coordinator_pb2.py', 'local_pb2.py', 'wire_pb2.py']);
    },
  );
});
