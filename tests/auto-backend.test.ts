// init({ backend: 'auto' }): WebGPU when an adapter exists, else WASM, saying which and why. Each
// case runs in a fresh Node process, because the Vulkan driver is chosen from the environment
// when the process starts.

import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const ROOT = new URL('..', import.meta.url).pathname;
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const script = `
  const mg = await import(${JSON.stringify(ROOT + 'dist/index.js')});
  const logs = [];
  const b = await mg.init({ backend: 'auto', log: (m) => logs.push(m) });
  const y = mg.tensor([1, 2, 3]).mul(2);
  console.log(JSON.stringify({ backend: b.name, logs, values: Array.from(await y.data()) }));
  process.exit(0);
`;

function runAuto(env: Record<string, string>) {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe("backend 'auto'", () => {
  it('falls back to WASM, saying why, when no WebGPU adapter exists', (ctx) => {
    if (!existsSync(ROOT + 'dist/index.js')) {
      if (process.env.CI) throw new Error('dist/ is not built');
      ctx.skip('dist/ is not built (npm run build)');
    }
    const r = runAuto({ VK_ICD_FILENAMES: '/nonexistent/icd.json' });
    expect(r.backend).toBe('wasm');
    expect(r.logs[0]).toMatch(/^metagrad: WebGPU unavailable \(.+\); using WASM$/);
    expect(r.values).toEqual([2, 4, 6]);
  });

  it('chooses WebGPU when an adapter exists, naming it', (ctx) => {
    if (!existsSync(SWIFTSHADER) || !existsSync(ROOT + 'dist/index.js')) {
      if (process.env.CI) throw new Error(`${SWIFTSHADER} or dist/ is missing`);
      ctx.skip('no software Vulkan driver or no build here');
    }
    const r = runAuto({ VK_ICD_FILENAMES: SWIFTSHADER, XDG_RUNTIME_DIR: '/tmp' });
    expect(r.backend).toBe('webgpu');
    expect(r.logs[0]).toMatch(/^metagrad: using WebGPU \(.*swiftshader.*\)$/i);
    expect(r.values).toEqual([2, 4, 6]);
  });
});
