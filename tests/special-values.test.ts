// IEEE special values (NaN, +-Inf, signed zeros) give the same results on the reference, WASM and
// WebGPU backends, as JavaScript's Math and PyTorch define them; setCheckNumerics names the first op
// producing NaN/Inf on every backend (WebGPU at the next read-back); and the WebGPU transcendental
// functions (our own WGSL, not the builtins) are within a few float32 ulps of float64.
// With CI set, a machine without a WebGPU adapter fails the WebGPU tests; elsewhere they are skipped.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mg from '../index.js';
import type { Backend, DType, TensorInfo } from '../kernels/backend.js';
import { setCheckNumerics, useBackend } from '../engine/runtime.js';

const CI = !!process.env.CI;
const NaN_ = Number.NaN, Inf = Infinity;
let ref: Backend, wasm: Backend;
let gpu: Backend | null = null;
let gpuError: unknown = null;

beforeAll(async () => {
  ref = await mg.init({ backend: 'ref' });
  wasm = await mg.init({ backend: 'wasm' });
  try {
    gpu = await mg.init({ backend: 'webgpu' });
  } catch (e) {
    gpuError = e;
  }
}, 60_000);

afterAll(() => setCheckNumerics(false));

const unavailable = (e: unknown) => /no WebGPU adapter|WebGPU is not available/.test(String((e as Error)?.message ?? e));

/** The WebGPU backend; skips the test (outside CI) when this machine has no WebGPU adapter. */
function needGpu(ctx: { skip: (note?: string) => void }): Backend {
  if (!gpu) {
    if (CI || !unavailable(gpuError)) throw gpuError ?? new Error('webgpu backend was not created');
    ctx.skip(`no WebGPU adapter: ${(gpuError as Error).message}`);
  }
  return gpu!;
}

type Target = { name: string; dtype: DType; backend: () => Backend | null };
const TARGETS: Target[] = [
  { name: 'ref float32', dtype: 'float32', backend: () => ref },
  { name: 'ref float64', dtype: 'float64', backend: () => ref },
  { name: 'wasm float32', dtype: 'float32', backend: () => wasm },
  { name: 'wasm float64', dtype: 'float64', backend: () => wasm },
  { name: 'webgpu float32', dtype: 'float32', backend: () => gpu },
];

/** Runs kernel `name` on inputs of the given shapes and values; returns the output values. */
async function runKernel(b: Backend, dtype: DType, name: string, inputs: { shape: number[]; values: number[] }[],
  outShape: number[], attrs: any = {}): Promise<number[]> {
  const st = inputs.map((x) => b.upload(dtype, x.values));
  const infos: TensorInfo[] = inputs.map((x, k) => ({ storage: st[k], shape: x.shape, dtype }));
  const out = b.kernels[name](infos, attrs, { shape: outShape, dtype });
  try {
    return Array.from(await b.read(out));
  } finally {
    b.free(out);
    st.forEach((s) => b.free(s));
  }
}

/** Same value, NaN equal to NaN, +0 distinct from -0. */
const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
const show = (v: number) => (Object.is(v, -0) ? '-0' : String(v));

// ---------------------------------------------------------------------------------------------
// The table. Each input is repeated (11 copies) so that WASM's SIMD loops and their scalar tails
// both see it.

const UNARY: [string, number, number][] = [
  ['log', 0, -Inf], ['log', -0, -Inf], ['log', -1, NaN_], ['log', -Inf, NaN_], ['log', NaN_, NaN_], ['log', Inf, Inf], ['log', 1, 0],
  ['sqrt', -1, NaN_], ['sqrt', -Inf, NaN_], ['sqrt', NaN_, NaN_], ['sqrt', Inf, Inf], ['sqrt', 0, 0], ['sqrt', -0, -0],
  ['exp', 800, Inf], ['exp', 1000, Inf], ['exp', Inf, Inf], ['exp', -Inf, 0], ['exp', -1000, 0], ['exp', NaN_, NaN_], ['exp', 0, 1],
  ['relu', NaN_, NaN_], ['relu', -Inf, 0], ['relu', Inf, Inf], ['relu', -0, 0], ['relu', -2, 0], ['relu', 3, 3],
  ['tanh', Inf, 1], ['tanh', -Inf, -1], ['tanh', NaN_, NaN_], ['tanh', -0, -0], ['tanh', 0, 0], ['tanh', 100, 1],
  ['sigmoid', Inf, 1], ['sigmoid', -Inf, 0], ['sigmoid', NaN_, NaN_], ['sigmoid', 0, 0.5], ['sigmoid', 200, 1],
  ['sign', NaN_, NaN_], ['sign', -0, 0], ['sign', 0, 0], ['sign', Inf, 1], ['sign', -Inf, -1], ['sign', -3, -1],
  ['abs', -0, 0], ['abs', -Inf, Inf], ['abs', NaN_, NaN_], ['abs', -2, 2],
  ['neg', 0, -0], ['neg', NaN_, NaN_], ['neg', Inf, -Inf],
  ['sin', Inf, NaN_], ['sin', -Inf, NaN_], ['sin', NaN_, NaN_], ['sin', -0, -0], ['sin', 0, 0],
  ['cos', Inf, NaN_], ['cos', -Inf, NaN_], ['cos', NaN_, NaN_], ['cos', 0, 1],
];

const BINARY: [string, number, number, number][] = [
  ['add', Inf, -Inf, NaN_], ['add', Inf, 1, Inf], ['add', NaN_, 1, NaN_], ['add', 1, NaN_, NaN_],
  ['sub', Inf, Inf, NaN_], ['sub', -Inf, Inf, -Inf], ['sub', NaN_, 0, NaN_], ['sub', 0, NaN_, NaN_],
  ['mul', 0, Inf, NaN_], ['mul', Inf, 0, NaN_], ['mul', -1, Inf, -Inf], ['mul', NaN_, 2, NaN_], ['mul', 2, NaN_, NaN_],
  ['div', 1, 0, Inf], ['div', -1, 0, -Inf], ['div', 1, -0, -Inf], ['div', 0, 0, NaN_], ['div', Inf, Inf, NaN_],
  ['div', 1, Inf, 0], ['div', NaN_, 1, NaN_], ['div', 1, NaN_, NaN_],
  // pow is IEEE 754's (C's, PyTorch's): 1^y is 1 even for NaN y, (-1)^(+-Inf) is 1, x^0 is 1 even for NaN x.
  ['pow', 0, -1, Inf], ['pow', -0, -1, -Inf], ['pow', -0, -2, Inf], ['pow', -0, 3, -0], ['pow', 0, 0, 1], ['pow', NaN_, 0, 1],
  ['pow', -8, 1 / 3, NaN_], ['pow', -2, 3, -8], ['pow', -2, 2, 4], ['pow', -2, -1, -0.5], ['pow', 2, 10, 1024], ['pow', 4, 0.5, 2],
  ['pow', 1, NaN_, 1], ['pow', 1, Inf, 1], ['pow', 1, -Inf, 1], ['pow', -1, -Inf, 1], ['pow', -1, Inf, 1], ['pow', -1, NaN_, NaN_], ['pow', 2, Inf, Inf], ['pow', 0.5, Inf, 0],
  ['pow', 2, -Inf, 0], ['pow', 0.5, -Inf, Inf], ['pow', Inf, -1, 0], ['pow', Inf, 0.5, Inf], ['pow', -Inf, 3, -Inf],
  ['pow', -Inf, 2, Inf], ['pow', -Inf, -3, -0], ['pow', -Inf, -2, 0], ['pow', -Inf, 0.5, Inf], ['pow', NaN_, 1, NaN_],
  ['pow', 2, NaN_, NaN_], ['pow', 10, 400, Inf], ['pow', 10, -400, 0], ['pow', -10, 401, -Inf], ['pow', -10, 400, Inf],
  // maximum / minimum: NaN in either position gives NaN; max(-0, +0) = +0, min(-0, +0) = -0.
  ['maximum', NaN_, 0, NaN_], ['maximum', 0, NaN_, NaN_], ['maximum', NaN_, Inf, NaN_], ['maximum', -Inf, NaN_, NaN_],
  ['maximum', -0, 0, 0], ['maximum', 0, -0, 0], ['maximum', -Inf, 1, 1], ['maximum', Inf, 1, Inf],
  ['minimum', NaN_, 0, NaN_], ['minimum', 0, NaN_, NaN_], ['minimum', NaN_, -Inf, NaN_], ['minimum', Inf, NaN_, NaN_],
  ['minimum', -0, 0, -0], ['minimum', 0, -0, -0], ['minimum', -Inf, 1, -Inf],
  // Comparisons with NaN are false; notEqual is true.
  ...(['greater', 'greaterEqual', 'less', 'lessEqual', 'equal'] as const).flatMap((op): [string, number, number, number][] =>
    [[op, NaN_, 1, 0], [op, 1, NaN_, 0], [op, NaN_, NaN_, 0], [op, NaN_, Inf, 0]]),
  ['notEqual', NaN_, 1, 1], ['notEqual', 1, NaN_, 1], ['notEqual', NaN_, NaN_, 1], ['notEqual', 1, 1, 0],
  ['equal', Inf, Inf, 1], ['equal', -0, 0, 1], ['greaterEqual', -Inf, -Inf, 1], ['less', -Inf, Inf, 1], ['greater', 0, -0, 0],
];

const N = 11;
const rep = (v: number) => Array<number>(N).fill(v);

describe('special values: every backend as JavaScript Math / PyTorch', () => {
  for (const t of TARGETS) {
    it(`${t.name}: unary ops`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      const bad: string[] = [];
      for (const [op, x, want] of UNARY) {
        const got = await runKernel(b, t.dtype, op, [{ shape: [N], values: rep(x) }], [N]);
        if (!got.every((g) => same(g, want))) bad.push(`${op}(${show(x)}) = ${got.map(show).join(',')}, expected ${show(want)}`);
      }
      expect(bad).toEqual([]);
    });

    it(`${t.name}: binary ops, NaN in either position, same shapes and broadcast scalars`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      const bad: string[] = [];
      for (const [op, x, y, want] of BINARY) {
        const layouts: [number[], number[]][] = [[[N], [N]], [[N], []], [[], [N]]];
        for (const [sa, sb] of layouts) {
          const got = await runKernel(b, t.dtype, op, [{ shape: sa, values: sa.length ? rep(x) : [x] }, { shape: sb, values: sb.length ? rep(y) : [y] }], [N]);
          if (!got.every((g) => same(g, want))) bad.push(`${op}(${show(x)} [${sa}], ${show(y)} [${sb}]) = ${got.map(show).join(',')}, expected ${show(want)}`);
        }
      }
      expect(bad).toEqual([]);
    });

    it(`${t.name}: where(NaN, a, b) takes a (NaN counts as true)`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      const got = await runKernel(b, t.dtype, 'where', [{ shape: [4], values: [NaN_, 0, -0, Inf] }, { shape: [4], values: [1, 1, 1, 1] },
        { shape: [4], values: [2, 2, 2, 2] }], [4]);
      expect(got).toEqual([1, 2, 2, 1]);
    });

    it(`${t.name}: reductions max and sum propagate NaN from any position`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      const bad: string[] = [];
      const cases: [number[], number, number][] = [
        // [values, max, sum]
        [[NaN_, 1], NaN_, NaN_], [[1, NaN_], NaN_, NaN_], [[-Inf, -Inf], -Inf, -Inf], [[Inf, -Inf], Inf, NaN_],
        [[NaN_, Inf], NaN_, NaN_], [[-0, 0], 0, 0], [[0, -0], 0, 0],
      ];
      // Long rows too: SIMD lanes on WASM, workgroup trees on WebGPU; NaN first, inside and last.
      for (const at of [0, 37, 99]) cases.push([Array.from({ length: 100 }, (_, i) => (i === at ? NaN_ : i)), NaN_, NaN_]);
      cases.push([Array.from({ length: 100 }, (_, i) => (i === 50 ? Inf : -i)), Inf, Inf]);
      for (const [values, wantMax, wantSum] of cases) {
        const n = values.length;
        for (const [op, want] of [['max', wantMax], ['sum', wantSum]] as const) {
          const got = await runKernel(b, t.dtype, op, [{ shape: [n], values }], [1], { axes: [0] });
          if (!same(got[0], want)) bad.push(`${op}([${n > 4 ? `${n} values` : values.map(show)}]) = ${show(got[0])}, expected ${show(want)}`);
        }
        // Along the kept-axis fold too ([n, 2] reduced over axis 0).
        const col = values.flatMap((v) => [v, 1]);
        const got = await runKernel(b, t.dtype, 'max', [{ shape: [n, 2], values: col }], [1, 2], { axes: [0] });
        if (!same(got[0], wantMax)) bad.push(`max over axis 0 of [${n}, 2] = ${show(got[0])}, expected ${show(wantMax)}`);
      }
      expect(bad).toEqual([]);
    });

    it(`${t.name}: max pooling propagates NaN from any position of its window, and routes the gradient to it`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      const bad: string[] = [];
      // A [1, 1, 4, 16] image: 2x2 windows at stride 2 (the SIMD path on WASM for 8 windows a row),
      // and 3x3 windows at stride 1 with padding 1 (the general path). One NaN at a time.
      for (const [kernel, stride, pad, OH, OW] of [[2, 2, 0, 2, 8], [3, 1, 1, 4, 16]]) {
        const attrs = { kernel: [kernel, kernel], stride: [stride, stride], pad: [pad, pad] };
        for (const at of [0, 1, 16, 17, 35, 63]) {
          const x = Array.from({ length: 64 }, (_, i) => (i === at ? NaN_ : (i * 7) % 11));
          const h = Math.floor(at / 16), w = at % 16;
          const y = await runKernel(b, t.dtype, 'maxPool2d', [{ shape: [1, 1, 4, 16], values: x }], [1, 1, OH, OW], attrs);
          const dx = await runKernel(b, t.dtype, 'maxPool2dGrad', [{ shape: [1, 1, 4, 16], values: x }, { shape: [1, 1, OH, OW], values: Array(OH * OW).fill(1) }], [1, 1, 4, 16], attrs);
          for (let i = 0; i < OH; i++) {
            for (let j = 0; j < OW; j++) {
              const h0 = i * stride - pad, w0 = j * stride - pad;
              const inside = h >= h0 && h < h0 + kernel && w >= w0 && w < w0 + kernel;
              if (inside !== Number.isNaN(y[i * OW + j])) bad.push(`${kernel}x${kernel} window (${i}, ${j}), NaN at ${at}: got ${show(y[i * OW + j])}`);
            }
          }
          // Every window holding the NaN sends its gradient to it.
          const windows = Array.from({ length: OH * OW }, (_, o) => [Math.floor(o / OW) * stride - pad, (o % OW) * stride - pad])
            .filter(([h0, w0]) => h >= h0 && h < h0 + kernel && w >= w0 && w < w0 + kernel).length;
          if (dx[at] !== windows) bad.push(`${kernel}x${kernel}: gradient at the NaN ${at} = ${dx[at]}, expected ${windows}`);
        }
      }
      expect(bad).toEqual([]);
    });

    it(`${t.name}: min (-max(-x)), logSoftmax-style shifts and relu through the engine`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      useBackend(b);
      await mg.tidy(async () => {
        const opts = { dtype: t.dtype };
        for (const v of [[NaN_, 1], [1, NaN_]]) expect(Number.isNaN((await mg.min(mg.tensor(v, [2], opts)).data())[0])).toBe(true);
        expect([...(await mg.min(mg.tensor([3, -Inf], [2], opts)).data())]).toEqual([-Inf]);
        expect([...(await mg.relu(mg.tensor([NaN_, -1, 2], [3], opts)).data())].map(show)).toEqual(['NaN', '0', '2']);
        expect([...(await mg.leakyRelu(mg.tensor([NaN_, -1], [2], opts), 0.5).data())].map(show)).toEqual(['NaN', '-0.5']);
      });
    });
  }
});

describe('logSumExp at infinite maxima', () => {
  // Shifted by the row's max, or by 0 where that max is infinite: an all -Inf row gives -Inf (not
  // -Inf - -Inf = NaN), as PyTorch does.
  const rows = [[-Inf, -Inf, -Inf], [Inf, 1, 2], [1, 2, 3], [NaN_, 1, 2], [-Inf, 0, -Inf]];
  const want = [-Inf, Inf, Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)), NaN_, 0];

  for (const t of TARGETS) {
    it(`${t.name}: -Inf, +Inf, NaN and finite rows as PyTorch`, async (ctx) => {
      const b = t.name.startsWith('webgpu') ? needGpu(ctx) : t.backend()!;
      useBackend(b);
      const got = await mg.tidy(async () => [...(await mg.logSumExp(mg.tensor(rows, undefined, { dtype: t.dtype }), 1).data())]);
      got.forEach((g, i) => {
        if (Number.isFinite(want[i])) expect(Math.abs(g - want[i])).toBeLessThan(1e-5);
        else expect(same(g, want[i]), `row ${i}: ${g}`).toBe(true);
      });
    });
  }
});

describe('setCheckNumerics names the first op producing NaN or Inf', () => {
  for (const name of ['ref', 'wasm'] as const) {
    it(`${name}: the op itself throws`, () => {
      useBackend(name === 'ref' ? ref : wasm);
      setCheckNumerics(true);
      try {
        mg.tidy(() => {
          const x = mg.tensor([1, 0, 2]);
          expect(() => mg.log(x)).toThrow(/^log: produced -Infinity at flat index 1 of output \[3\] from inputs \[3\]$/);
          expect(() => mg.sqrt(mg.tensor([[4, -1]]))).toThrow(/^sqrt: produced NaN at flat index 1 of output \[1,2\] from inputs \[1,2\]$/);
        });
      } finally {
        setCheckNumerics(false);
      }
    });
  }

  it('webgpu: the next read-back throws, naming the first failing op, its index and shapes', async (ctx) => {
    useBackend(needGpu(ctx));
    setCheckNumerics(true);
    try {
      await mg.tidy(async () => {
        const x = mg.tensor([[1, 2, 0], [3, 4, 5]]);
        const y = mg.add(x, 1);
        expect([...(await y.data())]).toEqual([2, 3, 1, 4, 5, 6]); // clean: no error
        const l = mg.log(x);             // -Inf at flat index 2: the first failure
        const z = mg.mul(l, 0);          // NaN everywhere l is infinite: a later failure, not reported
        const s = mg.sum(z);
        await expect(s.data()).rejects.toThrow(/^log: produced -Infinity at flat index 2 of output \[2,3\] from inputs \[2,3\] \(setCheckNumerics on webgpu/);
        // Reported once; later reads work, and a later failure is reported in its turn.
        expect([...(await y.data())]).toEqual([2, 3, 1, 4, 5, 6]);
        const q = mg.sqrt(mg.tensor([4, -1, -2]));
        const r = mg.maximum(q, mg.tensor([Inf, 0, 0]));
        await expect(r.data()).rejects.toThrow(/^sqrt: produced NaN at flat index 1 of output \[3\] from inputs \[3\]/);
        // The check reads back by itself every few thousand ops; a failure found that way still waits
        // for the next read-back.
        let acc = mg.tensor([1, 2]);
        for (let i = 0; i < 4200; i++) {
          const next = mg.mul(acc, 1);
          acc.dispose();
          acc = next;
          if (i === 100) {
            const bad = mg.div(acc, 0);
            bad.dispose();
          }
        }
        await expect(acc.data()).rejects.toThrow(/^div: produced Infinity at flat index 0 of output \[2\] from inputs \[2\], \[\]/);
        expect([...(await acc.data())]).toEqual([1, 2]);
      });
    } finally {
      setCheckNumerics(false);
    }
  }, 120_000);

  it('webgpu: sync() reports too, and nothing is reported once checking found no failure', async (ctx) => {
    const b = needGpu(ctx) as Backend & { sync(): Promise<void> };
    useBackend(b);
    setCheckNumerics(true);
    try {
      await mg.tidy(async () => {
        mg.exp(mg.tensor([100]));
        await expect(b.sync()).rejects.toThrow(/^exp: produced Infinity at flat index 0 of output \[1\]/);
        mg.exp(mg.tensor([1]));
        await b.sync();
      });
    } finally {
      setCheckNumerics(false);
    }
  });

  it('webgpu: isFinite reads back and sees NaN and Inf', async (ctx) => {
    useBackend(needGpu(ctx));
    await mg.tidy(async () => {
      expect(await mg.isFinite(mg.tensor([1, 2, 3]))).toBe(true);
      expect(await mg.isFinite(mg.log(mg.tensor([1, 0])))).toBe(false);
      expect(await mg.isFinite(mg.sqrt(mg.tensor([-1, 4])))).toBe(false);
      expect(await mg.isFinite(mg.max(mg.tensor([NaN_, 1])))).toBe(false);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Accuracy of the WebGPU transcendentals against float64, in float32 ulps.

/** Deterministic uniform values in [lo, hi), rounded to float32. */
function uniform(n: number, lo: number, hi: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround(lo + (hi - lo) * (s / 2 ** 32));
  });
}
const logUniform = (n: number, lo: number, hi: number, seed: number) =>
  uniform(n, Math.log(lo), Math.log(hi), seed).map((v) => Math.fround(Math.exp(v)));

/** The float32 ulp at w (the spacing of float32 values around |w|; normal range). */
function ulp(w: number): number {
  const a = Math.abs(w);
  if (a < 2 ** -126) return 2 ** -149;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 23);
}

interface Accuracy { maxUlp: number; at: number[]; got: number; want: number; failures: string[] }

/** Runs `op` on the GPU and measures ulps against `f` in float64; `ok` decides pass per point. */
async function accuracy(b: Backend, op: string, inputs: number[][], f: (...x: number[]) => number,
  ok: (ulps: number, abs: number) => boolean): Promise<Accuracy> {
  const n = inputs[0].length;
  const got = await runKernel(b, 'float32', op, inputs.map((v) => ({ shape: [n], values: v })), [n]);
  const r: Accuracy = { maxUlp: 0, at: [], got: 0, want: 0, failures: [] };
  for (let i = 0; i < n; i++) {
    const xs = inputs.map((v) => v[i]);
    const want = f(...xs);
    const abs = Math.abs(got[i] - want), ulps = abs / ulp(want);
    if (ulps > r.maxUlp) Object.assign(r, { maxUlp: ulps, at: xs, got: got[i], want });
    if (!ok(ulps, abs) && r.failures.length < 5) r.failures.push(`${op}(${xs.join(', ')}) = ${got[i]}, float64 ${want} (${ulps.toFixed(1)} ulp, |error| ${abs.toExponential(2)})`);
  }
  return r;
}

describe('webgpu transcendentals within a few float32 ulps of float64', () => {
  // 4 ulps, next to the zeros of sin and cos too (the range reduction keeps r accurate relative to
  // itself); measured max errors, Dawn + SwiftShader: sin 1.3, cos 1.4, exp 0.9, log 0.5, tanh 1.2,
  // sigmoid 1.8, pow 1.0 (the WGSL builtins: sin/cos 4e8, exp 64, log 1e5, tanh 1e7, pow 103).
  const within4 = (u: number) => u <= 4;
  /** Float32 values nearest to multiples of pi/2: the hard cases of the range reduction. */
  const nearZeros = Array.from({ length: 1000 }, (_, i) => Math.fround(Math.round((i * 6.366) + 1) * Math.PI / 2) * (i % 2 ? -1 : 1));
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const cases: { op: string; inputs: () => number[][]; f: (...x: number[]) => number; ok: (u: number, a: number) => boolean }[] = [
    { op: 'sin', inputs: () => [[...uniform(3000, -1e4, 1e4, 1), ...uniform(1000, -4, 4, 2), ...nearZeros, ...logUniform(500, 1e-30, 1e-2, 3)]], f: Math.sin, ok: within4 },
    { op: 'cos', inputs: () => [[...uniform(3000, -1e4, 1e4, 4), ...uniform(1000, -4, 4, 5), ...nearZeros, ...logUniform(500, 1e-30, 1e-2, 6)]], f: Math.cos, ok: within4 },
    { op: 'exp', inputs: () => [[...uniform(3000, -87, 88.7, 7), ...uniform(1000, -1, 1, 8)]], f: Math.exp, ok: within4 },
    { op: 'log', inputs: () => [[...logUniform(3000, 1e-37, 3e38, 9), ...uniform(1000, 0.5, 2, 10), ...uniform(500, 0.999, 1.001, 11)]], f: Math.log, ok: within4 },
    { op: 'tanh', inputs: () => [[...uniform(3000, -10, 10, 12), ...uniform(1000, -1, 1, 13), ...logUniform(500, 1e-30, 1e-2, 14)]], f: Math.tanh, ok: within4 },
    { op: 'sigmoid', inputs: () => [[...uniform(3000, -80, 20, 15), ...uniform(1000, -5, 5, 16)]], f: sigmoid, ok: within4 },
    {
      op: 'pow',
      inputs: () => {
        const a = [...logUniform(3000, 1e-3, 1e3, 17), ...uniform(1000, 0.25, 3, 18), ...uniform(500, 0.99, 1.01, 19)];
        const e = [...uniform(3000, -10, 10, 20), ...uniform(1000, -3, 3, 21), ...uniform(500, -5000, 5000, 22)];
        // Keep results in the normal float32 range.
        const keep = a.map((x, i) => Math.abs(e[i] * Math.log2(x)) < 120);
        return [a.filter((_, i) => keep[i]), e.filter((_, i) => keep[i])];
      },
      f: Math.pow,
      ok: within4,
    },
  ];
  for (const c of cases) {
    it(`${c.op}`, async (ctx) => {
      const b = needGpu(ctx);
      const r = await accuracy(b, c.op, c.inputs(), c.f, c.ok);
      if (process.env.REPORT_ULPS) console.log(`${c.op}: max ${r.maxUlp.toFixed(2)} ulp at (${r.at}) got ${r.got} want ${r.want}`);
      expect(r.failures, `${c.op}: max ${r.maxUlp.toFixed(2)} ulp at (${r.at}) got ${r.got} want ${r.want}`).toEqual([]);
    });
  }
});
