/**
 * Arrows only go down: each top-level folder may import only the folders and packages of its row.
 * The protocol core (src/) is checked more strictly by core-purity.test.ts (no clocks, timers or
 * randomness either); this test keeps the daemons apart: the coordinator never reaches into the
 * agent (code both need lives in adapters/), the agent never into examples/, the simulator only
 * into src/, so what the simulator proves is the code that runs.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

interface Rule {
  /** Top-level folders this one may import from (itself included). */
  readonly folders: readonly string[];
  /** Bare packages it may import (node: built-ins are listed apart). */
  readonly packages: readonly string[];
  readonly nodeBuiltins: boolean;
}

/** The "may import" table of DESIGN.md section 2, one row per top-level folder. */
export const MAY_IMPORT: Readonly<Record<string, Rule>> = {
  src: { folders: ['src'], packages: ['protobufjs/minimal.js', 'protobufjs/light.js'], nodeBuiltins: false },
  adapters: { folders: ['adapters', 'src'], packages: ['nats', 'pino', 'zod'], nodeBuiltins: true },
  // The agent's local API for apps is gRPC over a Unix socket (docs/apps.md).
  agent: { folders: ['agent', 'adapters', 'src'], packages: ['nats', 'pino', 'zod', '@grpc/grpc-js', 'protobufjs'], nodeBuiltins: true },
  coordinator: {
    folders: ['coordinator', 'adapters', 'src'],
    packages: ['nats', 'pino', 'zod', '@grpc/grpc-js', '@grpc/proto-loader', '@grpc/reflection', 'protobufjs', 'xstate', 'prom-client'],
    nodeBuiltins: true,
  },
  simulations: { folders: ['simulations', 'src'], packages: [], nodeBuiltins: true },
  examples: { folders: ['examples', 'agent', 'coordinator', 'adapters', 'src'], packages: ['nats', 'pino'], nodeBuiltins: true },
  // The security suite (bench/security/) calls the gRPC API raw, with whatever credentials an attacker has.
  bench: { folders: ['bench', 'examples', 'agent', 'coordinator', 'adapters', 'simulations', 'src'], packages: ['nats', 'pino', '@grpc/grpc-js'], nodeBuiltins: true },
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    // Dot files are scratch files of whoever works in the tree, not part of the project.
    if (name === 'node_modules' || name.startsWith('.')) return [];
    return statSync(path).isDirectory() ? files(path) : /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

function specifiers(text: string): string[] {
  const found = text.matchAll(/(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g);
  return [...found].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec);
}

/** What is wrong with the imports of `file` (a path from the repository root) under `rule`. */
export function layeringViolations(file: string, text: string, rule: Rule): string[] {
  const problems: string[] = [];
  for (const spec of specifiers(text)) {
    if (spec.startsWith('.')) {
      const target = relative(root, join(root, dirname(file), spec));
      const folder = target.split(sep)[0] ?? '';
      if (target.startsWith('..') || !rule.folders.includes(folder)) problems.push(`${file} imports '${spec}' (${folder}/)`);
    } else if (spec.startsWith('node:') || builtinModules.includes(spec)) {
      if (!rule.nodeBuiltins) problems.push(`${file} imports the Node built-in '${spec}'`);
    } else if (!rule.packages.includes(spec) && !rule.packages.includes(packageOf(spec))) {
      problems.push(`${file} imports the package '${spec}'`);
    }
  }
  return problems;
}

describe('layering: each top-level folder imports only what its row allows', () => {
  for (const [folder, rule] of Object.entries(MAY_IMPORT)) {
    it(`${folder}/ imports only ${rule.folders.join(', ')}${rule.packages.length > 0 ? ` and ${rule.packages.join(', ')}` : ''}`, () => {
      const all = files(join(root, folder));
      expect(all.length).toBeGreaterThan(0);
      const problems = all.flatMap((path) => {
        const file = relative(root, path);
        return layeringViolations(file, readFileSync(path, 'utf8'), rule);
      });
      expect(problems).toEqual([]);
    });
  }

  it('the check catches a coordinator file importing the agent', () => {
    const text = `import { Endpoint } from '../../agent/endpoint.js';`;
    expect(layeringViolations('coordinator/checkpoints/x.ts', text, MAY_IMPORT.coordinator as Rule)).toEqual([
      `coordinator/checkpoints/x.ts imports '../../agent/endpoint.js' (agent/)`,
    ]);
  });

  it('the check catches the simulator importing a package and the agent importing examples', () => {
    expect(layeringViolations('simulations/x.ts', `import { connect } from 'nats';`, MAY_IMPORT.simulations as Rule)).toEqual([
      `simulations/x.ts imports the package 'nats'`,
    ]);
    expect(layeringViolations('agent/main.ts', `import { TokenApp } from '../examples/token-app.js';`, MAY_IMPORT.agent as Rule)).toEqual([
      `agent/main.ts imports '../examples/token-app.js' (examples/)`,
    ]);
  });

  it('src/ may not use Node built-ins, even ones that look harmless', () => {
    expect(layeringViolations('src/x.ts', `import { join } from 'node:path';`, MAY_IMPORT.src as Rule)).toEqual([`src/x.ts imports the Node built-in 'node:path'`]);
  });
});
