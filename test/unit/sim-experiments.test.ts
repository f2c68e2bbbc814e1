/**
 * docs/experiments.md and its committed files agree with the CLI: every sweep writes a CSV under
 * docs/experiments/ that the page's plots read, every plot writes an SVG the page shows, nothing
 * else lies there, every plot command gives the committed SVG's bytes from the committed CSV, and
 * the smallest sweep, run again, gives the committed CSV's bytes. A change to the engine, the
 * sweep or the plot that moves a published figure fails here until the page is redone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type Command } from '../../simulations/cli-args.js';
import { EXIT, runCli, type CliIo } from '../../simulations/cli-main.js';
import { runSimulation } from '../../simulations/engine.js';
import { repoRoot, simDocCommands } from '../support/sim-doc-commands.js';

const PAGE = 'docs/experiments.md';
const DIR = 'docs/experiments';

type Sweep = Extract<Command, { kind: 'sweep' }>;
type Plot = Extract<Command, { kind: 'plot' }>;

const commands = simDocCommands(PAGE).map((argv) => {
  const parsed = parseCommandLine(argv);
  if (!parsed.ok) throw new Error(`${PAGE}: ${argv.join(' ')}: ${parsed.error}`);
  return { argv, command: parsed.value };
});
const sweeps = commands.flatMap((c) => (c.command.kind === 'sweep' ? [{ argv: c.argv, command: c.command }] : []));
const plots = commands.flatMap((c) => (c.command.kind === 'plot' ? [{ argv: c.argv, command: c.command }] : []));

/** Runs the CLI in this process, reading the repository's files and keeping what it writes. */
function runInProcess(argv: readonly string[]): { code: number; written: Map<string, string>; stderr: string } {
  const written = new Map<string, string>();
  let stderr = '';
  const io: CliIo = {
    stdout: () => {},
    stderr: (text) => {
      stderr += text;
    },
    color: false,
    stderrIsTTY: false,
    readFile: (path) => readFileSync(join(repoRoot, path), 'utf8'),
    writeFile: (path, text) => written.set(path, text),
  };
  return { code: runCli(argv, io, runSimulation), written, stderr };
}

function committed(path: string): string {
  return readFileSync(join(repoRoot, path), 'utf8');
}

function runsOf(sweep: Sweep): number {
  return sweep.algorithms.length * sweep.sweeps.reduce((n, s) => n * s.values.length, 1);
}

describe(`${PAGE} and ${DIR}/`, () => {
  it('has sweeps with seeds as replicates, each writing its CSV into the folder, and plots of them', () => {
    expect(sweeps.length).toBeGreaterThanOrEqual(4);
    expect(plots.length).toBeGreaterThanOrEqual(sweeps.length);
    for (const { argv, command } of sweeps) {
      expect(command.sweeps.some((s) => s.param.name === 'seed' && s.values.length > 1), argv.join(' ')).toBe(true);
      expect(command.csv, argv.join(' ')).toMatch(new RegExp(`^${DIR}/[a-z0-9-]+\\.csv$`));
    }
  });

  it('plots only CSVs its sweeps write, each into an SVG the page shows', () => {
    const page = committed(PAGE);
    const csvs = new Set(sweeps.map((s) => s.command.csv));
    for (const { command } of plots as { command: Plot }[]) {
      expect(csvs.has(command.csv), `${command.csv} is written by a sweep of the page`).toBe(true);
      expect(command.svg).toMatch(new RegExp(`^${DIR}/[a-z0-9-]+\\.svg$`));
      expect(page, `the page shows ${command.svg}`).toContain(`](${command.svg.slice('docs/'.length)})`);
    }
  });

  it('commits exactly the files its commands write', () => {
    const written = [...sweeps.map((s) => s.command.csv!), ...plots.map((p) => p.command.svg)].map((p) => p.slice(DIR.length + 1)).sort();
    expect(readdirSync(join(repoRoot, DIR)).sort()).toEqual(written);
    for (const file of written) expect(existsSync(join(repoRoot, DIR, file))).toBe(true);
  });

  it.each(plots.map((p) => [p.argv.join(' '), p] as const))('%s gives the committed SVG', (_text, { argv, command }) => {
    const run = runInProcess(argv);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(run.written.get(command.svg)).toBe(committed(command.svg));
  });

  // The smallest sweep of the page, run in full: the same seeds give the same bytes.
  const smallest = [...sweeps].sort((a, b) => runsOf(a.command) - runsOf(b.command))[0]!;
  it(`the smallest sweep (${runsOf(smallest.command)} runs) gives the committed CSV: ${smallest.argv.join(' ')}`, { timeout: 120_000 }, () => {
    const run = runInProcess(smallest.argv);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(run.written.get(smallest.command.csv!)).toBe(committed(smallest.command.csv!));
  });
});
