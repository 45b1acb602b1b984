// Every kernel of the reference backend, run on the WebGPU backend at small shapes and compared with
// the reference (the specification). SwiftShader emulates the GPU on the CPU, so shapes stay small.
// Run with VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json on a machine without a GPU.
// With CI set, a machine without a WebGPU adapter fails these tests; elsewhere they are skipped.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, Storage, TensorInfo } from '../kernels/backend.js';
import { createRefBackend } from '../kernels/ref/backend.js';
import { windowOut } from '../kernels/strides.js';
import { createWebGPUBackend, type WebGPUBackend } from '../kernels/webgpu/backend.js';
import { primitives } from '../engine/primitives.js';

const CI = !!process.env.CI;
const ref = createRefBackend();
let gpu: WebGPUBackend | null = null;
/** A second backend whose thresholds force the workgroup/tiled kernel variants at small shapes. */
let gpuVariants: WebGPUBackend | null = null;
let setupError: unknown = null;

const unavailable = (e: unknown) => /no WebGPU adapter|WebGPU is not available/.test(String((e as Error)?.message ?? e));

beforeAll(async () => {
  try {
    gpu = await createWebGPUBackend();
    gpuVariants = await createWebGPUBackend({
      tuning: { tiledMatmulMinWork: 0, tiledMatmulMinDim: 0, reduceWorkgroupMinLength: 0, reduceThreadMinOutputs: Infinity, gradFilterWorkgroupMinLength: 0 },
    });
  } catch (e) {
    // Reported by every test through need(): failing each one (not the hook, which would only mark
    // them skipped), except outside CI on a machine without WebGPU.
    setupError = e;
  }
});

afterAll(() => {
  gpu?.destroy();
  gpuVariants?.destroy();
});

/** The backend under test; skips (outside CI) when this machine has no WebGPU adapter. */
function need(ctx: { skip: (note?: string) => void }, which: 'main' | 'variants' = 'main'): WebGPUBackend {
  const b = which === 'main' ? gpu : gpuVariants;
  if (!b) {
    if (CI || !unavailable(setupError)) throw setupError ?? new Error('webgpu backend was not created');
    ctx.skip(`no WebGPU adapter: ${(setupError as Error).message}`);
  }
  return b!;
}

// ---------------------------------------------------------------------------------------------
// Cases

interface Input { shape: number[]; values: Float32Array }
interface Case { inputs: Input[]; attrs: any }

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Small deterministic generator for tensor contents (fast-check picks the seed). */
function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}
type Rng = ReturnType<typeof rng>;
type Domain = (r: Rng) => number;
const uniform = (lo: number, hi: number): Domain => (r) => lo + (hi - lo) * r.next();
const awayFromZero = (lo: number, hi: number): Domain => (r) => (r.next() < 0.5 ? -1 : 1) * (lo + (hi - lo) * r.next());
/** Half-integers in [-2, 2]: plenty of ties for comparisons, max and max-pooling. */
const grid: Domain = (r) => (r.int(9) - 4) / 2;
const ints = (lo: number, hi: number): Domain => (r) => lo + r.int(hi - lo + 1);
const fill = (r: Rng, shape: number[], d: Domain): Input => ({ shape, values: Float32Array.from({ length: size(shape) }, () => d(r)) });

const seedArb = fc.integer({ min: 0, max: 2 ** 31 - 1 });
/** Dims up to 6 with empty and size-1 dims well represented. */
const dimArb = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.constant(1) },
  { weight: 8, arbitrary: fc.integer({ min: 2, max: 6 }) });
const shapeArb = (minRank: number, maxRank: number) => fc.array(dimArb, { minLength: minRank, maxLength: maxRank });

/** A shape broadcasting to `out`: leading axes dropped, some axes set to 1. */
const broadcastFrom = (out: number[], r: Rng) => out.slice(r.int(out.length + 1)).map((d) => (r.next() < 0.35 ? 1 : d));

const unaryCase = (d: Domain) => fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]): Case => ({ inputs: [fill(rng(s), shape, d)], attrs: {} }));

const binaryCase = (da: Domain, db: Domain) => fc.tuple(shapeArb(0, 4), seedArb, fc.boolean()).map(([out, s, swap]): Case => {
  const r = rng(s);
  const small = broadcastFrom(out, r);
  const [sa, sb] = swap ? [small, out] : [out, small];
  return { inputs: [fill(r, sa, da), fill(r, sb, db)], attrs: {} };
});

const axesOf = (rank: number, r: Rng) => Array.from({ length: rank }, (_, i) => i).filter(() => r.next() < 0.5);
const reductionCase = (d: Domain) => fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]): Case => {
  const r = rng(s);
  return { inputs: [fill(r, shape, d)], attrs: { axes: axesOf(shape.length, r) } };
});

const matmulCase = fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }),
  shapeArb(0, 2), seedArb, fc.boolean(), fc.boolean()).map(([m, k, n, batch, s, transA, transB]): Case => {
  const r = rng(s);
  const [ba, bb] = r.next() < 0.5 ? [batch, broadcastFrom(batch, r)] : [broadcastFrom(batch, r), batch];
  const v = uniform(-2, 2);
  return { inputs: [fill(r, [...ba, ...(transA ? [k, m] : [m, k])], v), fill(r, [...bb, ...(transB ? [n, k] : [k, n])], v)], attrs: { transA, transB } };
});

const convGeoArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 3 }), o: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 7 }), w: fc.integer({ min: 1, max: 7 }),
  kh: fc.integer({ min: 1, max: 3 }), kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 2 }), sw: fc.integer({ min: 1, max: 2 }),
  ph: fc.integer({ min: 0, max: 1 }), pw: fc.integer({ min: 0, max: 1 }),
  dh: fc.integer({ min: 1, max: 2 }), dw: fc.integer({ min: 1, max: 2 }),
}).filter((g) => windowOut(g.h, g.kh, g.sh, g.ph, g.dh) > 0 && windowOut(g.w, g.kw, g.sw, g.pw, g.dw) > 0).map((g) => ({
  x: [g.n, g.c, g.h, g.w],
  w: [g.o, g.c, g.kh, g.kw],
  y: [g.n, g.o, windowOut(g.h, g.kh, g.sh, g.ph, g.dh), windowOut(g.w, g.kw, g.sw, g.pw, g.dw)],
  attrs: { stride: [g.sh, g.sw], pad: [g.ph, g.pw], dilation: [g.dh, g.dw] },
}));

const poolGeoArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 2 }),
  h: fc.integer({ min: 1, max: 7 }), w: fc.integer({ min: 1, max: 7 }),
  kh: fc.integer({ min: 1, max: 3 }), kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 2 }), sw: fc.integer({ min: 1, max: 2 }),
  ph: fc.integer({ min: 0, max: 1 }), pw: fc.integer({ min: 0, max: 1 }),
}).filter((g) => 2 * g.ph <= g.kh && 2 * g.pw <= g.kw && windowOut(g.h, g.kh, g.sh, g.ph) > 0 && windowOut(g.w, g.kw, g.sw, g.pw) > 0)
  .map((g) => ({
    x: [g.n, g.c, g.h, g.w],
    y: [g.n, g.c, windowOut(g.h, g.kh, g.sh, g.ph), windowOut(g.w, g.kw, g.sw, g.pw)],
    attrs: { kernel: [g.kh, g.kw], stride: [g.sh, g.sw], pad: [g.ph, g.pw] },
  }));

const withSeed = <G>(geo: fc.Arbitrary<G>, f: (g: G, r: Rng) => Case) => fc.tuple(geo, seedArb).map(([g, s]) => f(g, rng(s)));
const v = uniform(-2, 2);

/** pow: positive bases with any exponent, and negative bases with whole exponents (odd and even). */
const powCase = fc.oneof(
  binaryCase(uniform(0.25, 3), uniform(-3, 3)),
  binaryCase(awayFromZero(0.5, 2), ints(-3, 3)),
);

const cases: Record<string, fc.Arbitrary<Case>> = {
  neg: unaryCase(v),
  exp: unaryCase(uniform(-4, 4)),
  log: unaryCase(uniform(0.05, 5)),
  sqrt: unaryCase(uniform(0, 5)),
  tanh: unaryCase(uniform(-12, 12)),
  sigmoid: unaryCase(uniform(-20, 20)),
  relu: unaryCase(grid),
  abs: unaryCase(grid),
  sin: unaryCase(uniform(-3, 3)),
  cos: unaryCase(uniform(-3, 3)),
  sign: unaryCase(grid),

  add: binaryCase(v, v),
  sub: binaryCase(v, v),
  mul: binaryCase(v, v),
  div: binaryCase(v, awayFromZero(0.25, 2)),
  pow: powCase,
  maximum: binaryCase(grid, grid),
  minimum: binaryCase(grid, grid),
  greater: binaryCase(grid, grid),
  greaterEqual: binaryCase(grid, grid),
  less: binaryCase(grid, grid),
  lessEqual: binaryCase(grid, grid),
  equal: binaryCase(grid, grid),
  notEqual: binaryCase(grid, grid),
  where: fc.tuple(shapeArb(0, 4), seedArb).map(([out, s]): Case => {
    const r = rng(s);
    const shapes = r.int(3) === 0 ? [broadcastFrom(out, r), out, broadcastFrom(out, r)] : [out, broadcastFrom(out, r), broadcastFrom(out, r)];
    return { inputs: [fill(r, shapes[0], ints(0, 1)), fill(r, shapes[1], v), fill(r, shapes[2], v)], attrs: {} };
  }),

  sum: reductionCase(v),
  max: reductionCase(grid),
  matmul: matmulCase,

  transpose: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]): Case => {
    const r = rng(s);
    const perm = shape.map((_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) { const j = r.int(i + 1); [perm[i], perm[j]] = [perm[j], perm[i]]; }
    return { inputs: [fill(r, shape, v)], attrs: { perm } };
  }),
  slice: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]): Case => {
    const r = rng(s);
    const begin = shape.map((d) => r.int(d + 1));
    return { inputs: [fill(r, shape, v)], attrs: { begin, size: shape.map((d, i) => r.int(d - begin[i] + 1)) } };
  }),
  pad: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]): Case => {
    const r = rng(s);
    return { inputs: [fill(r, shape, v)], attrs: { before: shape.map(() => r.int(3)), after: shape.map(() => r.int(3)) } };
  }),
  concat: fc.tuple(shapeArb(1, 4), fc.integer({ min: 1, max: 4 }), seedArb).map(([shape, count, s]): Case => {
    const r = rng(s);
    const axis = r.int(shape.length);
    return { inputs: Array.from({ length: count }, () => fill(r, shape.map((d, i) => (i === axis ? r.int(4) : d)), v)), attrs: { axis } };
  }),
  broadcastTo: fc.tuple(shapeArb(0, 4), seedArb).map(([out, s]): Case => {
    const r = rng(s);
    return { inputs: [fill(r, broadcastFrom(out, r), v)], attrs: { shape: out } };
  }),
  gather: fc.tuple(shapeArb(1, 4), seedArb).map(([shape, s]): Case => {
    const r = rng(s);
    const axis = r.int(shape.length);
    shape[axis] = Math.max(1, shape[axis]);
    const indices = Int32Array.from({ length: r.int(7) }, () => r.int(shape[axis]));
    return { inputs: [fill(r, shape, v)], attrs: { axis, indices } };
  }),
  scatterAdd: fc.tuple(shapeArb(1, 4), seedArb).map(([shape, s]): Case => {
    const r = rng(s);
    const axis = r.int(shape.length);
    const n = 1 + r.int(5);
    const indices = Int32Array.from({ length: shape[axis] }, () => r.int(n));
    return { inputs: [fill(r, shape, v)], attrs: { axis, indices, size: n } };
  }),
  cast: unaryCase(v).map((c) => ({ ...c, attrs: { dtype: 'float32' } })),

  conv2d: withSeed(convGeoArb, (g, r) => ({ inputs: [fill(r, g.x, v), fill(r, g.w, v)], attrs: g.attrs })),
  conv2dGradInput: withSeed(convGeoArb, (g, r) => ({ inputs: [fill(r, g.y, v), fill(r, g.w, v)], attrs: { inShape: g.x, ...g.attrs } })),
  conv2dGradFilter: withSeed(convGeoArb, (g, r) => ({ inputs: [fill(r, g.x, v), fill(r, g.y, v)], attrs: { filterShape: g.w, ...g.attrs } })),
  maxPool2d: withSeed(poolGeoArb, (g, r) => ({ inputs: [fill(r, g.x, grid)], attrs: g.attrs })),
  maxPool2dGrad: withSeed(poolGeoArb, (g, r) => ({ inputs: [fill(r, g.x, grid), fill(r, g.y, v)], attrs: g.attrs })),
  maxPool2dSelect: withSeed(poolGeoArb, (g, r) => ({ inputs: [fill(r, g.x, grid), fill(r, g.x, v)], attrs: g.attrs })),
  avgPool2d: withSeed(poolGeoArb, (g, r) => ({ inputs: [fill(r, g.x, v)], attrs: g.attrs })),
  avgPool2dGrad: withSeed(poolGeoArb, (g, r) => ({ inputs: [fill(r, g.y, v)], attrs: { inShape: g.x, ...g.attrs } })),
};

// Tolerances against the float64 reference: exact for copies, selections and comparisons; a few
// float32 ulps for arithmetic; accumulated float32 rounding for sums of products. The
// transcendentals are our own WGSL (shaders.ts), not the builtins, and get the WASM backend's float32
// tolerance (tests/wasm-kernels.test.ts: 12 float32 epsilons relative, 1e-37 absolute).
const EXACT = { atol: 0, rtol: 0 };
const WASM_F32 = { atol: 1e-37, rtol: 12 * 2 ** -23 };
const tolerances: Record<string, { atol: number; rtol: number }> = {
  exp: WASM_F32, log: WASM_F32, sqrt: WASM_F32, tanh: WASM_F32, sigmoid: WASM_F32, sin: WASM_F32, cos: WASM_F32,
  add: { atol: 0, rtol: 1e-7 }, sub: { atol: 0, rtol: 1e-7 }, mul: { atol: 0, rtol: 1e-7 }, div: { atol: 1e-7, rtol: 1e-6 },
  pow: WASM_F32,
  sum: { atol: 1e-5, rtol: 1e-5 }, matmul: { atol: 1e-4, rtol: 1e-5 },
  conv2d: { atol: 1e-4, rtol: 1e-5 }, conv2dGradInput: { atol: 1e-4, rtol: 1e-5 }, conv2dGradFilter: { atol: 1e-4, rtol: 1e-5 },
  avgPool2d: { atol: 1e-6, rtol: 1e-6 }, avgPool2dGrad: { atol: 1e-6, rtol: 1e-6 }, scatterAdd: { atol: 1e-6, rtol: 1e-6 },
  maxPool2dGrad: { atol: 1e-6, rtol: 1e-6 },
};

// ---------------------------------------------------------------------------------------------
// Running one case on both backends

/** Output shape and dtype, from the engine's own shape inference. */
function infer(name: string, inputs: readonly { shape: number[] }[], attrs: any) {
  const fake = inputs.map((i) => ({ shape: i.shape, dtype: 'float32', rank: i.shape.length, size: size(i.shape) }));
  return primitives[name].infer(fake as any, attrs);
}

function run(b: Backend, name: string, inputs: readonly Input[], attrs: any, out: { shape: number[]; dtype: 'float32' | 'float64' }) {
  const storages = inputs.map((i) => b.upload('float32', i.values));
  const infos: TensorInfo[] = inputs.map((i, k) => ({ storage: storages[k], shape: i.shape, dtype: 'float32' }));
  const result = b.kernels[name](infos, attrs, out);
  return { result, storages };
}

function same(got: Float32Array | Float64Array, want: Float32Array | Float64Array, tol: { atol: number; rtol: number }, what: string) {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)) || Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w);
    if (!ok) expect.fail(`${what}: element ${i} is ${g}, expected ${w} (|diff| ${Math.abs(g - w)})`);
  }
}

/** Runs the case on the reference and on `b`, compares, frees, and checks that no bytes leak. */
async function check(b: WebGPUBackend, name: string, c: Case): Promise<void> {
  const out = infer(name, c.inputs, c.attrs) as { shape: number[]; dtype: 'float32' };
  const want = (() => {
    const { result, storages } = run(ref, name, c.inputs, c.attrs, out);
    const data = ref.readSync(result)!;
    [result, ...storages].forEach((s) => ref.free(s));
    return data;
  })();
  const before = b.bytesInUse();
  const { result, storages } = run(b, name, c.inputs, c.attrs, out);
  expect(result.size).toBe(size(out.shape));
  const got = await b.read(result);
  [result, ...storages].forEach((s) => b.free(s));
  expect(b.bytesInUse()).toBe(before);
  const desc = `${name} ${c.inputs.map((i) => `[${i.shape}]`).join(' ')} ${JSON.stringify(c.attrs, (_k, x) => (x instanceof Int32Array ? [...x] : x))} -> [${out.shape}]`;
  same(got, want, tolerances[name] ?? EXACT, desc);
}

const RUNS = Number(process.env.WEBGPU_TEST_RUNS ?? 30);
const refNames = Object.keys(ref.kernels).sort();

// ---------------------------------------------------------------------------------------------

describe('webgpu backend: setup and contract', () => {
  it('implements every reference kernel, and this file tests every one', (ctx) => {
    const b = need(ctx);
    expect(refNames.length).toBeGreaterThan(40);
    const missing = refNames.filter((n) => typeof b.kernels[n] !== 'function');
    expect(missing, 'kernels missing on webgpu').toEqual([]);
    expect(refNames.filter((n) => !cases[n]), 'kernels without test cases').toEqual([]);
  });

  it('describes its adapter and cannot read synchronously', (ctx) => {
    const b = need(ctx);
    expect(b.name).toBe('webgpu');
    expect(typeof b.description).toBe('string');
    expect(b.description.length).toBeGreaterThan(0);
    const s = b.upload('float32', [1, 2, 3]);
    expect(b.readSync(s)).toBeNull();
    b.free(s);
  });

  it('rejects float64 with a clear error and leaks nothing', (ctx) => {
    const b = need(ctx);
    const start = b.bytesInUse();
    expect(() => b.alloc('float64', 3)).toThrow('webgpu backend supports float32 only');
    expect(() => b.upload('float64', [1, 2])).toThrow('webgpu backend supports float32 only');
    const x = b.upload('float32', [1, 2]);
    const info: TensorInfo = { storage: x, shape: [2], dtype: 'float32' };
    expect(() => b.kernels.neg([info], {}, { shape: [2], dtype: 'float64' })).toThrow('webgpu backend supports float32 only');
    expect(() => b.kernels.cast([info], { dtype: 'float64' }, { shape: [2], dtype: 'float64' })).toThrow('webgpu backend supports float32 only');
    b.free(x);
    expect(b.bytesInUse()).toBe(start);
  });

  it('counts live bytes exactly; pooled buffers are reused, not counted, and come back zeroed from alloc', async (ctx) => {
    const b = need(ctx);
    const start = b.bytesInUse();
    const a = b.upload('float32', [1, 2, 3, 4, 5]);
    const e = b.alloc('float32', 0);
    expect(b.bytesInUse()).toBe(start + 20);
    expect(await b.read(e)).toHaveLength(0);
    b.free(a);
    b.free(e);
    expect(b.bytesInUse()).toBe(start);
    expect(b.pooledBytes()).toBeGreaterThan(0);
    const z = b.alloc('float32', 5); // reuses a's buffer: must be cleared
    expect([...(await b.read(z))]).toEqual([0, 0, 0, 0, 0]);
    b.free(z);
    expect(() => b.free(z)).toThrow(/freed twice/);
    expect(b.bytesInUse()).toBe(start);
  });

  it('rejects a buffer larger than the device allows before touching the GPU', (ctx) => {
    const b = need(ctx);
    const start = b.bytesInUse();
    const limit = Math.min(b.device.limits.maxBufferSize, b.device.limits.maxStorageBufferBindingSize);
    expect(() => b.alloc('float32', Math.ceil(limit / 4) + 1)).toThrow(/out of memory/);
    const x = b.upload('float32', [1]);
    const info: TensorInfo = { storage: x, shape: [1], dtype: 'float32' };
    const huge = [Math.ceil(limit / 4) + 1];
    expect(() => b.kernels.broadcastTo([info], { shape: huge }, { shape: huge, dtype: 'float32' })).toThrow(/out of memory/);
    b.free(x);
    expect(b.bytesInUse()).toBe(start);
  });

  it('keeps command order when an upload reuses a buffer a pending kernel still reads', async (ctx) => {
    const b = need(ctx);
    const x = b.upload('float32', [1, 2, 3, 4]);
    const y = b.kernels.neg([{ storage: x, shape: [4], dtype: 'float32' }], {}, { shape: [4], dtype: 'float32' });
    b.free(x);
    const z = b.upload('float32', [9, 9, 9, 9]); // same size class: takes x's buffer
    expect([...(await b.read(y))]).toEqual([-1, -2, -3, -4]);
    expect([...(await b.read(z))]).toEqual([9, 9, 9, 9]);
    b.free(y);
    b.free(z);
  });

  it('batches long chains of kernels across several submits', async (ctx) => {
    const b = need(ctx);
    const start = b.bytesInUse();
    const one = b.upload('float32', [1, 2, 3]);
    let acc = b.upload('float32', [0, 0, 0]);
    for (let i = 0; i < 300; i++) {
      const next = b.kernels.add([{ storage: acc, shape: [3], dtype: 'float32' }, { storage: one, shape: [3], dtype: 'float32' }], {},
        { shape: [3], dtype: 'float32' });
      b.free(acc);
      acc = next;
    }
    await b.sync();
    expect([...(await b.read(acc))]).toEqual([300, 600, 900]);
    b.free(acc);
    b.free(one);
    expect(b.bytesInUse()).toBe(start);
  });
});

describe('webgpu kernels against the reference (property tests)', () => {
  for (const name of refNames) {
    it(name, async (ctx) => {
      const b = need(ctx);
      const arb = cases[name];
      expect(arb, `no test cases for kernel '${name}'`).toBeDefined();
      await fc.assert(fc.asyncProperty(arb, (c) => check(b, name, c)), { numRuns: RUNS });
    });
  }
});

describe('webgpu kernel variants (workgroup reductions, tiled matmul) at small shapes', () => {
  for (const name of ['sum', 'max', 'matmul', 'conv2dGradFilter']) {
    it(name, async (ctx) => {
      const b = need(ctx, 'variants');
      await fc.assert(fc.asyncProperty(cases[name], (c) => check(b, name, c)), { numRuns: RUNS });
    });
  }
});

describe('webgpu kernels: chosen shapes', () => {
  const t = (shape: number[], d: Domain = v, seed = 1) => fill(rng(seed), shape, d);

  it('tiled matmul with edges, every transpose combination and broadcast batches', async (ctx) => {
    const b = need(ctx);
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const [M, K, N] = [37, 26, 35];
      const a = t([2, 1, ...(transA ? [K, M] : [M, K])], v, 3);
      const bb = t([3, ...(transB ? [N, K] : [K, N])], v, 4);
      await check(b, 'matmul', { inputs: [a, bb], attrs: { transA, transB } });
    }
  });

  it('reductions: long rows, strided axes, empty axes', async (ctx) => {
    const b = need(ctx);
    for (const name of ['sum', 'max']) {
      await check(b, name, { inputs: [t([3, 70])], attrs: { axes: [1] } });
      await check(b, name, { inputs: [t([5, 4, 6, 3], grid)], attrs: { axes: [0, 2] } });
      await check(b, name, { inputs: [t([4, 9, 8])], attrs: { axes: [0, 1, 2] } });
      await check(b, name, { inputs: [t([3, 0, 2])], attrs: { axes: [1] } }); // 0 for sum, -inf for max
      await check(b, name, { inputs: [t([])], attrs: { axes: [] } });
    }
  });

  it('conv2dGradFilter over a long batch-spatial sum', async (ctx) => {
    const b = need(ctx);
    const attrs = { stride: [1, 1], pad: [1, 1], dilation: [1, 1] };
    await check(b, 'conv2dGradFilter', { inputs: [t([2, 2, 13, 13]), t([2, 3, 13, 13])], attrs: { filterShape: [3, 2, 3, 3], ...attrs } });
  });

  it('empty and size-1 dimensions', async (ctx) => {
    const b = need(ctx);
    await check(b, 'add', { inputs: [t([0, 3]), t([3])], attrs: {} });
    await check(b, 'matmul', { inputs: [t([2, 0]), t([0, 3])], attrs: { transA: false, transB: false } });
    await check(b, 'matmul', { inputs: [t([1, 1, 1]), t([1, 1])], attrs: { transA: false, transB: false } });
    await check(b, 'concat', { inputs: [t([2, 0]), t([2, 3]), t([2, 0])], attrs: { axis: 1 } });
    await check(b, 'pad', { inputs: [t([0, 2])], attrs: { before: [1, 0], after: [1, 1] } });
    await check(b, 'scatterAdd', { inputs: [t([2, 0])], attrs: { axis: 1, indices: new Int32Array(0), size: 3 } });
    await check(b, 'gather', { inputs: [t([2, 3])], attrs: { axis: 1, indices: new Int32Array(0) } });
    await check(b, 'conv2d', { inputs: [t([1, 0, 3, 3]), t([2, 0, 2, 2])], attrs: { stride: [1, 1], pad: [0, 0], dilation: [1, 1] } });
  });

  it('max-pooling ties pick the first maximum in window order', async (ctx) => {
    const b = need(ctx);
    const attrs = { kernel: [3, 3], stride: [1, 1], pad: [1, 1] };
    const x = { shape: [1, 1, 4, 4], values: new Float32Array(16).fill(1) };
    const g = t([1, 1, 4, 4]);
    await check(b, 'maxPool2dSelect', { inputs: [x, g], attrs });
    await check(b, 'maxPool2dGrad', { inputs: [x, t([1, 1, 4, 4])], attrs });
  });

  it('elementwise beyond 65535 workgroups (2D dispatch grid)', async (ctx) => {
    const b = need(ctx);
    const n = 65535 * 64 + 100;
    await check(b, 'neg', { inputs: [{ shape: [n], values: Float32Array.from({ length: n }, (_, i) => i % 1000) }], attrs: {} });
  });
});

describe('webgpu backend: failures are clear errors', () => {
  it('no adapter', async () => {
    const fake = { requestAdapter: async () => null } as unknown as GPU;
    await expect(createWebGPUBackend({ gpu: fake })).rejects.toThrow(/no WebGPU adapter/);
  });

  it('device lost: pending reads reject, later calls throw', async (ctx) => {
    need(ctx);
    const b = await createWebGPUBackend();
    const x = b.upload('float32', [1, 2, 3]);
    b.device.destroy(); // what a driver reset looks like from here
    await expect(b.read(x)).rejects.toThrow(/device was lost/);
    expect(() => b.alloc('float32', 4)).toThrow(/device was lost/);
    expect(() => b.kernels.neg([{ storage: x, shape: [3], dtype: 'float32' }], {}, { shape: [3], dtype: 'float32' })).toThrow(/device was lost/);
    b.free(x); // cleanup still works
    b.destroy();
  });

  it('destroy() makes later calls throw', async (ctx) => {
    need(ctx);
    const b = await createWebGPUBackend();
    b.destroy();
    expect(() => b.upload('float32', [1])).toThrow(/after destroy/);
  });

  it('storages of another backend are refused', async (ctx) => {
    const b = need(ctx);
    const s: Storage = ref.upload('float32', [1]);
    expect(() => b.kernels.neg([{ storage: s, shape: [1], dtype: 'float32' }], {}, { shape: [1], dtype: 'float32' })).toThrow(/another backend/);
    ref.free(s);
  });
});
