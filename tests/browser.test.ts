// The real-browser test: headless Chromium loads the ESM build (dist/) from a page served on
// 127.0.0.1, with no bundler, and computes a one-step MAML meta-gradient of a small tanh MLP on
// WebGPU and on WASM; both must agree with the float64 result computed here in Node.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as mg from '../index.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CHROMIUM = '/usr/bin/chromium';
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.map': 'application/json' };

// The page: the same computation, written once, run on each backend it is asked for.
const PAGE = `<!doctype html><meta charset="utf-8"><title>metagrad</title>
<script type="module">
import * as mg from '/dist/index.js';
window.metaGradient = async (backend, data) => {
  await mg.init({ backend });
  return mg.tidy(async () => {
    const t = (k) => mg.tensor(data[k].values, data[k].shape);
    const params = { w1: t('w1'), b1: t('b1'), w2: t('w2') };
    const xs = t('xs'), ys = t('ys'), xq = t('xq'), yq = t('yq');
    const loss = (p, x, y) => mg.mse(x.matmul(p.w1).add(p.b1).tanh().matmul(p.w2), y);
    const meta = (p) => loss(mg.treeMap((w, g) => w.sub(g.mul(0.1)), p, mg.grad((q) => loss(q, xs, ys))(p)), xq, yq);
    const g = mg.grad(meta)(params);
    const out = {};
    for (const k of Object.keys(g)) out[k] = Array.from(await g[k].data());
    return { backend: mg.backend().name, grads: out };
  });
};
window.ready = true;
</script>`;

let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') { res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE); return; }
    const file = normalize(join(ROOT, path));
    if (!file.startsWith(join(ROOT, 'dist')) || !existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('in a real browser', () => {
  it('the ESM build computes the same MAML meta-gradient on WebGPU and WASM as Node in float64', async (ctx) => {
    if (!existsSync(CHROMIUM) || !existsSync(join(ROOT, 'dist', 'index.js'))) {
      const why = !existsSync(CHROMIUM) ? `${CHROMIUM} is missing (apt-get install chromium)` : 'dist/ is not built (npm run build)';
      if (process.env.CI) throw new Error(why);
      ctx.skip(why);
    }
    // The problem, in float64 on the reference backend.
    await mg.init({ backend: 'ref' });
    const rng = new mg.Random(11);
    const data: Record<string, { shape: number[]; values: number[] }> = {};
    const put = (k: string, t: mg.Tensor) => { data[k] = { shape: [...t.shape], values: Array.from(Float32Array.from(t.dataSync())) }; };
    mg.tidy(() => {
      put('w1', rng.normal([1, 8], { std: 0.8 })); put('b1', rng.normal([8], { std: 0.1 })); put('w2', rng.normal([8, 1], { std: 0.5 }));
      const xs = rng.uniform([6, 1], { low: -3, high: 3 }), xq = rng.uniform([6, 1], { low: -3, high: 3 });
      put('xs', xs); put('ys', xs.sin()); put('xq', xq); put('yq', xq.sin());
    });
    const want = mg.tidy(() => {
      const t = (k: string) => mg.tensor(Float64Array.from(data[k].values), data[k].shape, { dtype: 'float64' });
      const params = { w1: t('w1'), b1: t('b1'), w2: t('w2') };
      const loss = (p: any, x: mg.Tensor, y: mg.Tensor) => mg.mse(x.matmul(p.w1).add(p.b1).tanh().matmul(p.w2), y);
      const meta = (p: any) => loss(mg.treeMap((w, g) => w.sub(g.mul(0.1)), p, mg.grad((q: any) => loss(q, t('xs'), t('ys')))(p)), t('xq'), t('yq'));
      const g = mg.grad(meta)(params) as Record<string, mg.Tensor>;
      return Object.fromEntries(Object.entries(g).map(([k, v]) => [k, Array.from(v.dataSync())]));
    });

    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-gpu-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(base + '/');
      await page.waitForFunction(() => (window as any).ready === true, undefined, { timeout: 30_000 });
      for (const backend of ['webgpu', 'wasm']) {
        const got = await page.evaluate(([b, d]) => (window as any).metaGradient(b, d), [backend, data] as const);
        expect(got.backend).toBe(backend);
        for (const k of Object.keys(want)) {
          want[k].forEach((v, i) => {
            if (!(Math.abs(got.grads[k][i] - v) <= 1e-4 * (1 + Math.abs(v)))) expect.fail(`${backend} ${k}[${i}]: ${got.grads[k][i]} vs float64 ${v}`);
          });
        }
      }
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
