// Property tests of the WebAssembly backend against the reference backend (the specification):
// every kernel the reference defines, both dtypes, random shapes with broadcasting, empty and
// size-1 dimensions, random matmul transposes and conv/pool geometries.
//
// Tolerances: float64 agrees to 1e-12 relative; float32 to a float32 tolerance. Where a kernel sums
// terms (matmul, sum, conv, scatterAdd, pool gradients) the error is measured against the same kernel
// run by the reference on |inputs| (a bound on the size of the terms), scaled by the number of terms
// for float32, since the reference accumulates in float64 and the wasm float32 kernels in float32.

import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Backend, DType, Storage } from '../kernels/backend.js';
import { createRefBackend } from '../kernels/ref/backend.js';
import { createWasmBackend } from '../kernels/wasm/backend.js';
import { sizeOf, windowOut } from '../kernels/strides.js';

type Input = { shape: number[]; data: ArrayLike<number>; dtype?: DType };

const ref = createRefBackend();
let wasm: Backend;

beforeAll(async () => {
  wasm = await createWasmBackend();
});

const DTYPES: DType[] = ['float32', 'float64'];
const EPS32 = 2 ** -23;

// ---- deterministic data -----------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'normal' | 'special' | 'ints' | 'positive' | 'unit';
const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 1e-30, -1e30, 0.5];

function makeData(n: number, seed: number, kind: Kind = 'normal'): number[] {
  const r = rng(seed);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    switch (kind) {
      case 'normal': out[i] = (u - 0.5) * 6; break;
      case 'positive': out[i] = 0.05 + u * 4; break;
      case 'unit': out[i] = u - 0.5; break;
      case 'ints': out[i] = Math.floor(u * 5) - 2; break;
      case 'special': out[i] = r() < 0.3 ? SPECIALS[Math.floor(u * SPECIALS.length)] : (u - 0.5) * 8; break;
    }
  }
  return out;
}

// ---- running a kernel on both backends --------------------------------------------------------

function runOn(be: Backend, name: string, dtype: DType, inputs: Input[], attrs: any, outShape: number[], outDtype = dtype): Float64Array {
  const storages: Storage[] = inputs.map((i) => be.upload(i.dtype ?? dtype, i.data));
  try {
    const infos = inputs.map((i, k) => ({ storage: storages[k], shape: i.shape, dtype: i.dtype ?? dtype }));
    const kernel = be.kernels[name];
    if (!kernel) throw new Error(`${be.name} has no kernel ${name}`);
    const out = kernel(infos, attrs, { shape: outShape, dtype: outDtype });
    try {
      expect(out.size).toBe(sizeOf(outShape));
      expect(out.dtype).toBe(outDtype);
      expect(storages.includes(out)).toBe(false);
      return Float64Array.from(be.readSync(out)!);
    } finally {
      be.free(out);
    }
  } finally {
    storages.forEach((s) => be.free(s));
  }
}

/**
 * Runs `name` on both backends and compares. `absInputs` lists inputs whose absolute values give,
 * through the reference kernel, a bound on the magnitude of the summed terms; `terms` is the number
 * of terms per output (for the float32 tolerance).
 */
function check(name: string, dtype: DType, inputs: Input[], attrs: any, outShape: number[],
  opts: { absInputs?: number[]; terms?: number; rtol32?: number; exact?: boolean; outDtype?: DType } = {}): void {
  const outDtype = opts.outDtype ?? dtype;
  const want = runOn(ref, name, dtype, inputs, attrs, outShape, outDtype);
  const got = runOn(wasm, name, dtype, inputs, attrs, outShape, outDtype);
  let scale: Float64Array | null = null;
  if (opts.absInputs) {
    const absIn = inputs.map((inp, i) => (opts.absInputs!.includes(i) ? { ...inp, data: Array.from(inp.data, Math.abs) } : inp));
    scale = runOn(ref, name, dtype, absIn, attrs, outShape, outDtype);
  }
  const rtol = opts.exact ? 0
    : outDtype === 'float64' ? 1e-12
    : (opts.rtol32 ?? 8 * EPS32) * Math.max(1, (opts.terms ?? 1) + 2);
  const tiny = outDtype === 'float64' ? 1e-300 : 1e-37;
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i], g = got[i];
    let ok: boolean;
    if (Number.isNaN(w)) ok = Number.isNaN(g);
    else if (!Number.isFinite(w)) ok = g === w;
    else if (opts.exact) ok = g === w;
    else ok = Math.abs(g - w) <= rtol * Math.max(Math.abs(w), scale ? scale[i] : 0) + tiny;
    if (!ok) {
      throw new Error(`${name} ${dtype} out[${i}]: wasm ${g} vs ref ${w} (shape [${outShape}], attrs ${JSON.stringify(attrs)}, ` +
        `inputs ${inputs.map((x) => `[${x.shape}]`).join(' ')})`);
    }
  }
}

// ---- shape arbitraries --------------------------------------------------------------------------

const dimArb = fc.oneof(
  { arbitrary: fc.constant(0), weight: 1 },
  { arbitrary: fc.constant(1), weight: 3 },
  { arbitrary: fc.integer({ min: 2, max: 6 }), weight: 6 },
);
const shapeArb = (maxRank = 4) => fc.array(dimArb, { maxLength: maxRank });
const seedArb = fc.integer();

/** A shape that broadcasts to `out`: a suffix of it, with some dimensions set to 1. */
function broadcastable(out: number[], seed: number): number[] {
  const r = rng(seed);
  const rank = Math.floor(r() * (out.length + 1));
  return out.slice(out.length - rank).map((d) => (r() < 0.35 ? 1 : d));
}

const broadcastCase = fc.record({ out: shapeArb(5), sa: seedArb, sb: seedArb, data: seedArb });

// ---- tests ----------------------------------------------------------------------------------------

describe('wasm backend kernels match the reference', () => {
  it('defines every kernel of the reference backend', () => {
    const missing = Object.keys(ref.kernels).filter((n) => typeof wasm.kernels[n] !== 'function');
    expect(missing).toEqual([]);
  });

  const UNARY: Record<string, Kind> = {
    neg: 'special', exp: 'special', log: 'special', sqrt: 'special', tanh: 'special', sigmoid: 'special',
    relu: 'special', abs: 'special', sin: 'normal', cos: 'normal', sign: 'special',
  };
  for (const dtype of DTYPES) {
    for (const [name, kind] of Object.entries(UNARY)) {
      it(`${name} ${dtype}`, () => {
        fc.assert(fc.property(shapeArb(4), seedArb, fc.boolean(), (shape, seed, alt) => {
          const data = makeData(sizeOf(shape), seed, alt ? kind : 'normal');
          check(name, dtype, [{ shape, data }], {}, shape, { rtol32: 4 * EPS32 });
        }), { numRuns: 60 });
      });
    }
  }

  const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'greater', 'greaterEqual', 'less',
    'lessEqual', 'equal', 'notEqual'];
  for (const dtype of DTYPES) {
    for (const name of BINARY) {
      it(`${name} ${dtype} with broadcasting`, () => {
        fc.assert(fc.property(broadcastCase, fc.constantFrom<Kind>('normal', 'ints', 'special'), ({ out, sa, sb, data }, kind) => {
          const as = broadcastable(out, sa), bs = broadcastable(out, sb);
          const aKind = name === 'pow' && kind === 'normal' ? 'positive' : kind;
          check(name, dtype, [
            { shape: as, data: makeData(sizeOf(as), data, aKind) },
            { shape: bs, data: makeData(sizeOf(bs), data + 1, kind) },
          ], {}, out, { rtol32: 4 * EPS32 });
        }), { numRuns: 80 });
      });
    }
    it(`binary fast paths ${dtype}: same shape, scalar, row and column broadcast`, () => {
      const cases: [number[], number[], number[]][] = [
        [[37], [37], [37]], [[5, 33], [], [5, 33]], [[], [7, 9], [7, 9]], [[6, 10], [10], [6, 10]],
        [[6, 10], [6, 1], [6, 10]], [[1, 10], [6, 1], [6, 10]], [[3, 1, 5], [1, 4, 1], [3, 4, 5]],
      ];
      for (const name of BINARY) {
        for (const [as, bs, out] of cases) {
          for (const kind of ['ints', 'special'] as Kind[]) {
            for (const seed of [1, 2, 3]) {
              check(name, dtype, [
                { shape: as, data: makeData(sizeOf(as), seed, name === 'pow' && kind === 'ints' ? 'positive' : kind) },
                { shape: bs, data: makeData(sizeOf(bs), seed + 10, kind) },
              ], {}, out, { rtol32: 4 * EPS32 });
            }
          }
        }
      }
    });

    it(`where ${dtype}`, () => {
      fc.assert(fc.property(broadcastCase, seedArb, ({ out, sa, sb, data }, sc) => {
        const cs = broadcastable(out, sc), as = broadcastable(out, sa), bs = broadcastable(out, sb);
        check('where', dtype, [
          { shape: cs, data: makeData(sizeOf(cs), data, 'special').map((v, i) => (i % 3 === 0 ? 0 : v)) },
          { shape: as, data: makeData(sizeOf(as), data + 1) },
          { shape: bs, data: makeData(sizeOf(bs), data + 2) },
        ], {}, out, { exact: true });
      }), { numRuns: 100 });
    });

    for (const name of ['sum', 'max']) {
      it(`${name} ${dtype} over random axes`, () => {
        fc.assert(fc.property(shapeArb(5), fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), seedArb,
          fc.constantFrom<Kind>('normal', 'ints', 'special'), (shape, red, seed, kind) => {
            const out = shape.map((d, i) => (red[i] ? 1 : d));
            const terms = sizeOf(shape) / Math.max(1, sizeOf(out));
            check(name, dtype, [{ shape, data: makeData(sizeOf(shape), seed, kind) }], { axes: red.flatMap((r, i) => (r && i < shape.length ? [i] : [])) },
              out, { absInputs: name === 'sum' ? [0] : undefined, terms });
          }), { numRuns: 150 });
      });
    }
    it(`sum and max ${dtype} on long rows and columns`, () => {
      for (const [shape, out] of [[[1000], [1]], [[3, 517], [3, 1]], [[517, 3], [1, 3]], [[4, 129, 33], [4, 1, 33]],
        [[2, 3, 4, 5, 6], [1, 3, 1, 5, 1]], [[64, 64], [1, 1]]] as [number[], number[]][]) {
        for (const name of ['sum', 'max']) {
          check(name, dtype, [{ shape, data: makeData(sizeOf(shape), 7, 'normal') }], {}, out,
            { absInputs: name === 'sum' ? [0] : undefined, terms: sizeOf(shape) / sizeOf(out) });
        }
      }
    });

    it(`matmul ${dtype}: batched, broadcast batch dims, transA/transB`, () => {
      const mm = fc.record({
        batch: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
        M: fc.integer({ min: 0, max: 9 }), N: fc.integer({ min: 0, max: 12 }), K: fc.integer({ min: 0, max: 10 }),
        transA: fc.boolean(), transB: fc.boolean(), sa: seedArb, sb: seedArb, seed: seedArb,
      });
      fc.assert(fc.property(mm, ({ batch, M, N, K, transA, transB, sa, sb, seed }) => {
        matmulCase(dtype, batch, broadcastable(batch, sa), broadcastable(batch, sb), M, N, K, transA, transB, seed);
      }), { numRuns: 150 });
    });
    it(`matmul ${dtype}: blocked path (edges, K and N blocking, batches)`, () => {
      const cases: [number[], number, number, number][] = [
        [[], 33, 35, 17], [[], 64, 64, 64], [[], 5, 300, 9], [[], 70, 19, 300], [[2], 13, 27, 40], [[3], 9, 8, 130],
        [[], 4, dtype === 'float32' ? 2100 : 1100, 3], [[], 130, 9, 70],
      ];
      let seed = 1;
      for (const [batch, M, N, K] of cases) {
        for (const tA of [false, true]) for (const tB of [false, true]) {
          matmulCase(dtype, batch, batch, batch.length ? [1] : [], M, N, K, tA, tB, seed++);
        }
      }
    });

    it(`transpose ${dtype}`, () => {
      fc.assert(fc.property(shapeArb(5), seedArb, (shape, seed) => {
        const r = rng(seed);
        const perm = shape.map((_, i) => i).sort(() => r() - 0.5);
        const out = perm.map((p) => shape[p]);
        check('transpose', dtype, [{ shape, data: makeData(sizeOf(shape), seed, 'special') }], { perm }, out, { exact: true });
      }), { numRuns: 150 });
      for (const [shape, perm] of [[[40, 37], [1, 0]], [[3, 33, 20], [0, 2, 1]], [[17, 5, 19], [2, 1, 0]]] as [number[], number[]][]) {
        check('transpose', dtype, [{ shape, data: makeData(sizeOf(shape), 3) }], { perm }, perm.map((p) => shape[p]), { exact: true });
      }
    });

    it(`slice ${dtype}`, () => {
      fc.assert(fc.property(shapeArb(5), seedArb, (shape, seed) => {
        const r = rng(seed);
        const begin = shape.map((d) => Math.floor(r() * (d + 1)));
        const out = shape.map((d, i) => Math.floor(r() * (d - begin[i] + 1)));
        check('slice', dtype, [{ shape, data: makeData(sizeOf(shape), seed) }], { begin, size: out }, out, { exact: true });
      }), { numRuns: 150 });
    });

    it(`pad ${dtype}`, () => {
      fc.assert(fc.property(shapeArb(4), seedArb, (shape, seed) => {
        const r = rng(seed);
        const before = shape.map(() => Math.floor(r() * 3)), after = shape.map(() => Math.floor(r() * 3));
        const out = shape.map((d, i) => d + before[i] + after[i]);
        check('pad', dtype, [{ shape, data: makeData(sizeOf(shape), seed) }], { before, after }, out, { exact: true });
      }), { numRuns: 150 });
    });

    it(`concat ${dtype}`, () => {
      fc.assert(fc.property(fc.array(dimArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 4 }), seedArb, (shape, count, seed) => {
        const r = rng(seed);
        const axis = Math.floor(r() * shape.length);
        const inputs: Input[] = [];
        for (let i = 0; i < count; i++) {
          const s = shape.slice();
          s[axis] = Math.floor(r() * 4);
          inputs.push({ shape: s, data: makeData(sizeOf(s), seed + i) });
        }
        const out = shape.slice();
        out[axis] = inputs.reduce((a, x) => a + x.shape[axis], 0);
        check('concat', dtype, inputs, { axis }, out, { exact: true });
      }), { numRuns: 150 });
    });

    it(`broadcastTo ${dtype}`, () => {
      fc.assert(fc.property(shapeArb(5), seedArb, (out, seed) => {
        const shape = broadcastable(out, seed);
        check('broadcastTo', dtype, [{ shape, data: makeData(sizeOf(shape), seed) }], { shape: out }, out, { exact: true });
      }), { numRuns: 150 });
    });

    it(`gather and scatterAdd ${dtype}`, () => {
      fc.assert(fc.property(fc.array(dimArb, { minLength: 1, maxLength: 4 }), seedArb, fc.boolean(), (shape, seed, typed) => {
        const r = rng(seed);
        const axis = Math.floor(r() * shape.length);
        const n = shape[axis];
        const J = n === 0 ? 0 : Math.floor(r() * 7);
        const list = Array.from({ length: J }, () => Math.floor(r() * n));
        const indices = typed ? Int32Array.from(list) : list;
        const out = shape.slice();
        out[axis] = J;
        check('gather', dtype, [{ shape, data: makeData(sizeOf(shape), seed) }], { axis, indices }, out, { exact: true });
        check('scatterAdd', dtype, [{ shape: out, data: makeData(sizeOf(out), seed + 1) }], { axis, indices }, shape,
          { absInputs: [0], terms: J });
      }), { numRuns: 150 });
    });

    it(`cast ${dtype} -> float32/float64`, () => {
      fc.assert(fc.property(shapeArb(4), seedArb, (shape, seed) => {
        const data = makeData(sizeOf(shape), seed, 'special').map((v, i) => (i % 5 === 0 ? v * 1e-3 + 1 / 3 : v));
        for (const to of DTYPES) {
          check('cast', dtype, [{ shape, data, dtype }], {}, shape, { outDtype: to, exact: true });
        }
      }), { numRuns: 60 });
    });

    it(`conv2d, conv2dGradInput, conv2dGradFilter ${dtype}`, () => {
      fc.assert(fc.property(convGeoArb, (g) => convCase(dtype, g)), { numRuns: 120 });
    });
    it(`conv ${dtype}: Conv4-like and pointwise geometries`, () => {
      const base = { dh: 1, dw: 1, sh: 1, sw: 1, ph: 1, pw: 1, seed: 5 };
      convCase(dtype, { ...base, N: 3, C: 1, H: 12, W: 12, O: 6, KH: 3, KW: 3 });
      // Direct small-filter path: row lengths that leave a partial vector, a 4-vector block plus a
      // tail, row stride and dilation.
      convCase(dtype, { ...base, N: 2, C: 1, H: 13, W: 11, O: 5, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 2, C: 1, H: 28, W: 28, O: 3, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 2, C: 2, H: 9, W: 23, O: 3, KH: 2, KW: 3, sh: 2, dh: 2, dw: 2 });
      // Winograd path (float32, 3x3, stride 1, >= 16 channels in and out): whole and partial 4-tile
      // groups, odd output sizes, no padding and padding 2; the input gradient takes it too.
      convCase(dtype, { ...base, N: 3, C: 16, H: 14, W: 14, O: 16, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 2, C: 17, H: 7, W: 9, O: 20, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 2, C: 16, H: 6, W: 21, O: 18, KH: 3, KW: 3, ph: 0, pw: 0 });
      convCase(dtype, { ...base, N: 1, C: 20, H: 5, W: 4, O: 16, KH: 3, KW: 3, ph: 2, pw: 2 });
      convCase(dtype, { ...base, N: 4, C: 8, H: 14, W: 14, O: 16, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 5, C: 16, H: 7, W: 7, O: 8, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 2, C: 12, H: 3, W: 3, O: 12, KH: 3, KW: 3 });
      convCase(dtype, { ...base, N: 3, C: 24, H: 9, W: 9, O: 20, KH: 1, KW: 1, ph: 0, pw: 0 });
      convCase(dtype, { ...base, N: 2, C: 5, H: 11, W: 10, O: 7, KH: 3, KW: 2, sh: 2, sw: 2, dh: 2, dw: 1 });
    });

    it(`pooling ${dtype}`, () => {
      fc.assert(fc.property(poolGeoArb, fc.boolean(), (g, ties) => poolCase(dtype, g, ties)), { numRuns: 150 });
    });
    it(`pooling ${dtype}: 2x2 stride-2 windows (vectorised path), odd sizes, ties and NaN`, () => {
      const half = { kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0 };
      let seed = 11;
      for (const [N, C, H, W] of [[2, 3, 8, 8], [1, 2, 13, 19], [3, 1, 28, 28], [1, 1, 2, 9], [2, 2, 7, 3]]) {
        for (const ties of [false, true]) poolCase(dtype, { N, C, H, W, ...half, seed: seed++ }, ties);
      }
    });
  }
});

function matmulCase(dtype: DType, batch: number[], ab: number[], bb: number[], M: number, N: number, K: number,
  transA: boolean, transB: boolean, seed: number): void {
  const aShape = [...ab, ...(transA ? [K, M] : [M, K])];
  const bShape = [...bb, ...(transB ? [N, K] : [K, N])];
  check('matmul', dtype, [
    { shape: aShape, data: makeData(sizeOf(aShape), seed) },
    { shape: bShape, data: makeData(sizeOf(bShape), seed + 1) },
  ], { transA, transB }, [...batch, M, N], { absInputs: [0, 1], terms: K });
}

type ConvGeo = { N: number; C: number; H: number; W: number; O: number; KH: number; KW: number; sh: number; sw: number;
  ph: number; pw: number; dh: number; dw: number; seed: number };
const convGeoArb: fc.Arbitrary<ConvGeo> = fc.record({
  N: fc.integer({ min: 0, max: 3 }), C: fc.integer({ min: 0, max: 10 }), H: fc.integer({ min: 1, max: 9 }),
  W: fc.integer({ min: 1, max: 9 }), O: fc.integer({ min: 0, max: 5 }), KH: fc.integer({ min: 1, max: 3 }),
  KW: fc.integer({ min: 1, max: 3 }), sh: fc.integer({ min: 1, max: 2 }), sw: fc.integer({ min: 1, max: 2 }),
  ph: fc.integer({ min: 0, max: 1 }), pw: fc.integer({ min: 0, max: 1 }), dh: fc.integer({ min: 1, max: 2 }),
  dw: fc.integer({ min: 1, max: 2 }), seed: seedArb,
}).filter((g) => windowOut(g.H, g.KH, g.sh, g.ph, g.dh) >= 1 && windowOut(g.W, g.KW, g.sw, g.pw, g.dw) >= 1);

function convCase(dtype: DType, g: ConvGeo): void {
  const OH = windowOut(g.H, g.KH, g.sh, g.ph, g.dh), OW = windowOut(g.W, g.KW, g.sw, g.pw, g.dw);
  const attrs = { stride: [g.sh, g.sw], pad: [g.ph, g.pw], dilation: [g.dh, g.dw] };
  const xs = [g.N, g.C, g.H, g.W], ws = [g.O, g.C, g.KH, g.KW], ys = [g.N, g.O, OH, OW];
  const x = { shape: xs, data: makeData(sizeOf(xs), g.seed) };
  const w = { shape: ws, data: makeData(sizeOf(ws), g.seed + 1) };
  const dy = { shape: ys, data: makeData(sizeOf(ys), g.seed + 2) };
  check('conv2d', dtype, [x, w], attrs, ys, { absInputs: [0, 1], terms: g.C * g.KH * g.KW });
  check('conv2dGradInput', dtype, [dy, w], attrs, xs, { absInputs: [0, 1], terms: g.O * g.KH * g.KW });
  check('conv2dGradFilter', dtype, [x, dy], attrs, ws, { absInputs: [0, 1], terms: g.N * OH * OW });
}

type PoolGeo = { N: number; C: number; H: number; W: number; kh: number; kw: number; sh: number; sw: number; ph: number;
  pw: number; seed: number };
const poolGeoArb: fc.Arbitrary<PoolGeo> = fc.record({
  N: fc.integer({ min: 0, max: 2 }), C: fc.integer({ min: 0, max: 3 }), H: fc.integer({ min: 1, max: 8 }),
  W: fc.integer({ min: 1, max: 8 }), kh: fc.integer({ min: 1, max: 3 }), kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 2 }), sw: fc.integer({ min: 1, max: 2 }), ph: fc.integer({ min: 0, max: 1 }),
  pw: fc.integer({ min: 0, max: 1 }), seed: seedArb,
}).filter((g) => windowOut(g.H, g.kh, g.sh, g.ph) >= 1 && windowOut(g.W, g.kw, g.sw, g.pw) >= 1);

function poolCase(dtype: DType, g: PoolGeo, ties: boolean): void {
  const OH = windowOut(g.H, g.kh, g.sh, g.ph), OW = windowOut(g.W, g.kw, g.sw, g.pw);
  const attrs = { kernel: [g.kh, g.kw], stride: [g.sh, g.sw], pad: [g.ph, g.pw] };
  const xs = [g.N, g.C, g.H, g.W], ys = [g.N, g.C, OH, OW];
  const x = { shape: xs, data: makeData(sizeOf(xs), g.seed, ties ? 'ints' : 'special') };
  const gx = { shape: xs, data: makeData(sizeOf(xs), g.seed + 1) };
  const dy = { shape: ys, data: makeData(sizeOf(ys), g.seed + 2) };
  const taps = g.kh * g.kw;
  check('maxPool2d', dtype, [x], attrs, ys, { exact: true });
  check('maxPool2dSelect', dtype, [x, gx], attrs, ys, { exact: true });
  check('maxPool2dGrad', dtype, [x, dy], attrs, xs, { absInputs: [1], terms: taps });
  check('avgPool2d', dtype, [x], attrs, ys, { absInputs: [0], terms: taps });
  check('avgPool2dGrad', dtype, [dy], attrs, xs, { absInputs: [0], terms: taps });
}

describe('wasm backend memory', () => {
  it('returns bytesInUse to its start value after freeing, and stays flat over 10,000 alloc/compute/free rounds', () => {
    const start = wasm.bytesInUse();
    const a = wasm.upload('float32', makeData(24, 1));
    const z = wasm.alloc('float64', 10);
    const e = wasm.alloc('float32', 0);
    expect(wasm.bytesInUse()).toBe(start + 24 * 4 + 10 * 8);
    expect(Array.from(wasm.readSync(z)!)).toEqual(new Array(10).fill(0));
    wasm.free(a);
    wasm.free(z);
    wasm.free(e);
    expect(wasm.bytesInUse()).toBe(start);

    const memBefore = (wasm as any).memoryBytes?.() ?? 0;
    const t = (storage: Storage, shape: number[], dtype: DType = 'float32') => ({ storage, shape, dtype });
    for (let i = 0; i < 10_000; i++) {
      const x = wasm.upload('float32', makeData(2 * 3 * 5 * 5, i));
      const w = wasm.upload('float32', makeData(4 * 3 * 3 * 3, i + 1));
      const y = wasm.kernels.conv2d([t(x, [2, 3, 5, 5]), t(w, [4, 3, 3, 3])], { stride: [1, 1], pad: [1, 1], dilation: [1, 1] },
        { shape: [2, 4, 5, 5], dtype: 'float32' });
      const m = wasm.kernels.matmul([t(y, [8, 25]), t(x, [25, 6])], { transA: false, transB: false }, { shape: [8, 6], dtype: 'float32' });
      const s = wasm.kernels.sum([t(m, [8, 6])], {}, { shape: [1, 6], dtype: 'float32' });
      const g = wasm.kernels.gather([t(s, [1, 6])], { axis: 1, indices: [5, 0, 0] }, { shape: [1, 3], dtype: 'float32' });
      const c = wasm.kernels.cast([t(g, [1, 3])], {}, { shape: [1, 3], dtype: 'float64' });
      for (const q of [x, w, y, m, s, g, c]) wasm.free(q);
      if (wasm.bytesInUse() !== start) throw new Error(`bytesInUse drifted to ${wasm.bytesInUse()} at round ${i}`);
    }
    expect(wasm.bytesInUse()).toBe(start);
    if (memBefore) expect((wasm as any).memoryBytes()).toBeLessThanOrEqual(memBefore + (4 << 20));
  });

  it('rejects double frees and freed inputs, and outputs never alias inputs', () => {
    const x = wasm.upload('float64', [1, 2, 3]);
    const y = wasm.kernels.broadcastTo([{ storage: x, shape: [3], dtype: 'float64' }], {}, { shape: [3], dtype: 'float64' });
    expect(y).not.toBe(x);
    wasm.free(x);
    expect(Array.from(wasm.readSync(y)!)).toEqual([1, 2, 3]);
    expect(() => wasm.free(x)).toThrow();
    expect(() => wasm.kernels.neg([{ storage: x, shape: [3], dtype: 'float64' }], {}, { shape: [3], dtype: 'float64' })).toThrow();
    wasm.free(y);
  });

  it('reads back asynchronously too', async () => {
    const x = wasm.upload('float32', [1.5, -2]);
    expect(Array.from(await wasm.read(x))).toEqual([1.5, -2]);
    wasm.free(x);
  });
});
