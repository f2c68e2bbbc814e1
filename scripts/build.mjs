#!/usr/bin/env node
/**
 * `npm run build`: the agent and the coordinator as artifacts an operator installs (docs/install.md).
 *
 *   dist/snapagent.cjs, dist/snapcoord.cjs   one esbuild bundle each (every dependency inside)
 *   dist/snapagent, dist/snapcoord           Node single executable applications (SEA): the
 *                                            Node binary running this build, with the bundle
 *                                            injected by postject; no Node install needed
 *   dist/core.mjs                            the pure core as an ES module, for researchers and
 *                                            foreign schedulers: `import ... from
 *                                            'snapshot-coordinator/core'` (package.json exports;
 *                                            its types are src/index.ts; docs/core.md)
 *
 *   node scripts/build.mjs [--bundles-only]
 *
 * The bundles are CommonJS because a Node 20 single executable runs a CommonJS script only.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// The fuse Node looks for to know a blob was injected (node/src/node_sea.cc); fixed for every Node.
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const ARTIFACTS = [
  { name: 'snapagent', entry: 'agent/main.ts' },
  { name: 'snapcoord', entry: 'coordinator/main.ts' },
];

/**
 * @grpc/reflection reads its .proto files from beside its own code at run time, which a single
 * executable does not have: the bundle gets them as JSON instead (proto-loader's fromJSON). A
 * version that loads them differently fails the build rather than the coordinator's start.
 */
const reflectionProtosInline = {
  name: 'reflection-protos-inline',
  setup(b) {
    b.onLoad({ filter: /@grpc[\\/]reflection[\\/]build[\\/]src[\\/]implementations[\\/]reflection-v1(alpha)?\.js$/ }, ({ path }) => {
      const text = readFileSync(path, 'utf8');
      const call = /protoLoader\.loadSync\(protoPath, constants_1\.PROTO_LOADER_OPTS\)/;
      const protoFile = /path\.join\(__dirname, '([^']+\.proto)'\)/.exec(text)?.[1];
      if (!call.test(text) || protoFile === undefined) throw new Error(`${path}: @grpc/reflection no longer loads its .proto as scripts/build.mjs expects`);
      const json = require('protobufjs').loadSync(join(dirname(path), protoFile)).toJSON();
      return { contents: text.replace(call, `protoLoader.fromJSON(${JSON.stringify(json)}, constants_1.PROTO_LOADER_OPTS)`), loader: 'js' };
    });
  },
};

// Every file is written under a name of this process's and renamed into place: a build running
// beside another (two test files) or beside a running executable replaces whole files only.
const partial = (path) => `${path}.partial-${process.pid}`;

async function bundle({ name, entry }) {
  const outfile = join(dist, `${name}.cjs`);
  await build({
    entryPoints: [join(root, entry)],
    outfile: partial(outfile),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Whitespace and syntax only: names stay, so a stack trace still reads.
    minifyWhitespace: true,
    minifySyntax: true,
    define: { SNAP_PACKAGE_VERSION: JSON.stringify(version) },
    logLevel: 'warning',
    // import.meta is only read where SNAP_PACKAGE_VERSION is not defined (adapters/version.ts).
    logOverride: { 'empty-import-meta': 'silent' },
    plugins: [reflectionProtosInline],
  });
  renameSync(partial(outfile), outfile);
  return outfile;
}

/** Runs a command, showing its output only if it fails. */
function quietly([file, ...args]) {
  try {
    execFileSync(file, args, { stdio: 'pipe' });
  } catch (error) {
    process.stderr.write(`${error.stdout ?? ''}${error.stderr ?? ''}`);
    throw error;
  }
}

async function singleExecutable(name, script) {
  const blob = partial(join(dist, `${name}.blob`));
  const seaConfig = partial(join(dist, `${name}.sea.json`));
  writeFileSync(seaConfig, JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true }));
  quietly([process.execPath, '--experimental-sea-config', seaConfig]);
  const exe = join(dist, name);
  const building = partial(exe);
  copyFileSync(process.execPath, building);
  chmodSync(building, 0o755);
  // Through postject's command line, so that the warnings its ELF library prints about the Node
  // binary's note sections (harmless) show only if the injection fails.
  const postject = join(dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
  quietly([process.execPath, postject, building, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  renameSync(building, exe);
  rmSync(blob);
  rmSync(seaConfig);
  return exe;
}

/** The core library (src/index.ts): pure code, so one ES module with nothing external. */
async function coreLibrary() {
  const outfile = join(dist, 'core.mjs');
  await build({ entryPoints: [join(root, 'src', 'index.ts')], outfile: partial(outfile), bundle: true, platform: 'neutral', format: 'esm', target: 'es2022', logLevel: 'warning' });
  renameSync(partial(outfile), outfile);
  return outfile;
}

const bundlesOnly = process.argv.includes('--bundles-only');
mkdirSync(dist, { recursive: true });
console.log(`core library ${version}: ${await coreLibrary()}`);
for (const artifact of ARTIFACTS) {
  const script = await bundle(artifact);
  const exe = bundlesOnly ? undefined : await singleExecutable(artifact.name, script);
  console.log(`${artifact.name} ${version}: ${script}${exe ? `, ${exe}` : ''}`);
}
