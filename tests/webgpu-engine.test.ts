// The engine on WebGPU (float32 only, asynchronous read-back): every primitive's forward pass,
// gradient and Hessian-vector product agree with the float64 reference backend; a long training
// loop keeps GPU memory flat. In CI a missing adapter fails these tests (never skips them).

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { primitives } from '../engine/primitives.js';
import { run, tidy, useBackend } from '../engine/runtime.js';
import type { Backend } from '../kernels/backend.js';
import { opSpecs, Case } from './support/op-cases.js';

const RUNS = Number(process.env.WEBGPU_ENGINE_RUNS ?? 6);
let gpu: Backend | null = null;
let ref: Backend;
let why = '';

beforeAll(async () => {
  ref = await mg.init({ backend: 'ref' });
  try {
    gpu = await mg.init({ backend: 'webgpu' });
  } catch (e) {
    why = e instanceof Error ? e.message : String(e);
  }
}, 60_000);

/** In CI an adapter is expected: its absence is a failure. Elsewhere the test reports a skip. */
function requireGpu(ctx: { skip: (note?: string) => void }): Backend {
  if (gpu) return gpu;
  if (process.env.CI) throw new Error(`WebGPU is not available in CI: ${why}`);
  ctx.skip(`no WebGPU adapter here (${why})`);
  throw new Error('unreachable');
}

const f32 = (v: Float64Array) => Float64Array.from(Float32Array.from(v));
const toTensor = (values: ArrayLike<number>, shape: number[], dtype: 'float32' | 'float64') => mg.tensor(Float64Array.from(values), shape, { dtype });

/** Forward, gradient and HVP of sum(op(xs) * R) on the active backend, read back as float64 arrays. */
async function evaluate(name: string, c: Case, dtype: 'float32' | 'float64', weights: Float64Array | null, dirs: Float64Array[]) {
  const wrt = opSpecs[name].wrt ?? c.inputs.map((_, i) => i);
  return tidy(async () => {
    const consts = c.inputs.map((x) => toTensor(x.values, x.shape, dtype));
    const loss = (xs: Tensor[]) => {
      const all = consts.map((t, i) => (wrt.includes(i) ? xs[wrt.indexOf(i)] : t));
      const y = mg.cast(run(name, all, c.attrs), dtype);
      return mg.sum(mg.mul(y, toTensor(weights!, [...y.shape], dtype)));
    };
    const at = wrt.map((i) => consts[i]);
    const out = await run(name, consts, c.attrs).data();
    if (wrt.length === 0 || weights === null) return { out: Float64Array.from(out), grads: [], hv: [] };
    const grads = await Promise.all(mg.grad(loss)(at).map(async (g) => Float64Array.from(await g.data())));
    const hv = await Promise.all(mg.hvp(loss, at, dirs.map((d, k) => toTensor(d, c.inputs[wrt[k]].shape, dtype))).map(async (g) => Float64Array.from(await g.data())));
    return { out: Float64Array.from(out), grads, hv };
  });
}

/**
 * The transcendentals are our own WGSL (kernels/webgpu/shaders.ts: a few float32 ulps), so they are
 * held to the WASM backend's float32 tolerance (tests/primitives.test.ts: 1e-4 (1 + |want|) per
 * element), forward, gradient and Hessian-vector product alike.
 */
const WASM_TOLERANCE = new Set(['exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'sin', 'cos', 'pow']);

function close(got: Float64Array, want: Float64Array, what: string, op: string) {
  expect(got.length, what).toBe(want.length);
  // float32 arithmetic against float64: relative to the magnitude of the values involved.
  const scale = Math.max(1, ...Array.from(want, Math.abs).filter(Number.isFinite));
  const tight = WASM_TOLERANCE.has(op);
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(want[i])) { expect(got[i], `${what}[${i}]`).toBe(want[i]); continue; }
    const tol = tight ? 1e-4 * (1 + Math.abs(want[i])) : 2e-3 * scale;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: webgpu ${got[i]}, float64 reference ${want[i]} (tolerance ${tol})`);
  }
}

describe('primitives on webgpu against the float64 reference', () => {
  // cast converts between float32 and float64; WebGPU has only float32, so its one case is the
  // clear refusal tested below.
  for (const name of Object.keys(primitives).filter((n) => n !== 'cast')) {
    it(`${name}: forward, gradient and Hessian-vector product`, async (ctx) => {
      const backend = requireGpu(ctx);
      const spec = opSpecs[name];
      await fc.assert(fc.asyncProperty(spec.cases, async (c0) => {
        const c: Case = { attrs: c0.attrs, inputs: c0.inputs.map((x) => ({ shape: x.shape, values: f32(x.values) })) };
        const rng = new mg.Random(3);
        useBackend(ref);
        const outSize = (await evaluate(name, c, 'float64', null, [])).out.length;
        const weights = f32(rng.uniformValues(outSize, -1, 1));
        const wrt = spec.wrt ?? c.inputs.map((_, i) => i);
        const dirs = wrt.map((i) => f32(rng.uniformValues(c.inputs[i].values.length, -1, 1)));
        const want = await evaluate(name, c, 'float64', weights, dirs);
        useBackend(backend);
        const got = await evaluate(name, c, 'float32', weights, dirs);
        close(got.out, want.out, `${name} forward`, name);
        got.grads.forEach((g, k) => close(g, want.grads[k], `${name} gradient ${k}`, name));
        got.hv.forEach((h, k) => close(h, want.hv[k], `${name} Hessian-vector product ${k}`, name));
      }), { numRuns: RUNS });
    }, 120_000);
  }

  it('a cast to float64 is refused with a clear error', async (ctx) => {
    useBackend(requireGpu(ctx));
    tidy(() => expect(() => mg.cast(mg.ones([2]), 'float64')).toThrow('webgpu backend supports float32 only'));
  });
});

describe('memory on webgpu', () => {
  it('10,000 second-order MAML-like steps keep GPU memory flat', async (ctx) => {
    useBackend(requireGpu(ctx));
    const rng = new mg.Random(0);
    type P = Record<string, Tensor>;
    let params: P = { w1: rng.normal([1, 4], { std: 0.5 }), b1: mg.zeros([4]), w2: rng.normal([4, 1], { std: 0.5 }) };
    const x = rng.uniform([4, 1], { low: -2, high: 2 }), y = x.sin();
    const loss = (p: P) => mg.mse(x.matmul(p.w1).add(p.b1).tanh().matmul(p.w2), y);
    const meta = (p: P) => loss(mg.treeMap((w, g) => w.sub(g.mul(0.05)), p, mg.grad(loss)(p)));
    const step = () => {
      const next = tidy(() => mg.treeMap((w, g) => w.sub(g.mul(0.01)), params, mg.grad(meta)(params)));
      Object.values(params).forEach((t) => t.dispose());
      params = next;
    };
    step();
    const first = mg.memory();
    for (let i = 0; i < 10_000; i++) {
      step();
      if (i % 1000 === 0) await params.w1.data(); // let the GPU drain now and then
    }
    expect(mg.memory()).toEqual(first);
    const l = tidy(() => meta(params));
    expect(Number.isFinite((await l.data())[0])).toBe(true);
    l.dispose();
    [...Object.values(params), x, y].forEach((t) => t.dispose());
  }, 600_000);
});
