// Runs every ```ts example in README.md against the library, so the documentation stays true.
// Examples are TypeScript, run with their types stripped; their import lines are replaced by the exports of
// 'metagrad' and 'metagrad/datasets'.

import { describe, it, expect } from 'vitest';
import { transformWithOxc } from 'vite';
import { readFileSync } from 'node:fs';
import * as mg from '../index.js';
import * as datasets from '../datasets/index.js';
import { useBackend } from '../engine/runtime.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;

describe('README examples', () => {
  it('has examples', () => expect(blocks.length).toBeGreaterThan(3));
  blocks.forEach((code, i) => {
    const title = code.split('\n').find((l) => !l.startsWith('import'))?.trim();
    it(`example ${i + 1} runs: ${title}`, async () => {
      // Examples are TypeScript (tests/readme-types.test.ts typechecks them): strip the types to run them.
      const ts = code.replace(/^import .* from 'metagrad(\/datasets)?';$/gm, '');
      const body = (await transformWithOxc(ts, `example-${i + 1}.ts`, { lang: 'ts' })).code;
      const scope: Record<string, unknown> = { ...mg, ...datasets };
      const names = Object.keys(scope);
      const logs: unknown[] = [];
      const console = { log: (...a: unknown[]) => logs.push(a) };
      const previous = activeBackend();
      await mg.tidy(() => new AsyncFunction(...names, 'console', body)(...names.map((n) => scope[n]), console));
      if (previous) useBackend(previous); // examples call init(); leave other tests' backend as it was
      expect(logs.length).toBeGreaterThan(0);
    });
  });
});

function activeBackend() {
  try { return mg.backend(); } catch { return null; }
}
