// The reference backend: plain loops in JavaScript, computing in float64 whatever the dtype (results
// are rounded to float32 on store for float32 tensors). It is the oracle the property tests compare
// every other backend against, so it favours obviousness over speed.

import { Backend, DType, Kernel, Storage, TensorInfo, TypedArray, bytesPerElement, typedArrayFor } from '../backend.js';
import { broadcastStrides, forEachStrided, sizeOf, stridesOf } from '../strides.js';

class RefStorage implements Storage {
  constructor(readonly dtype: DType, readonly data: TypedArray) {}
  get size() { return this.data.length; }
}

const arr = (t: TensorInfo): TypedArray => (t.storage as RefStorage).data;

// Special values follow JavaScript's Math (IEEE 754), which is PyTorch's behaviour too: log(0) = -Inf,
// log(x < 0) = sqrt(x < 0) = NaN, pow as C's (1^NaN = 1), and NaN propagates through relu, sign, maximum,
// minimum (in either operand) and the max reduction. Every backend matches these exactly
// (tests/special-values.test.ts); comparisons with NaN are false (notEqual true), where(NaN, a, b) = a.

export const unaryFns: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  // x <= 0 (-0 included) gives +0; NaN stays NaN.
  relu: (x) => (x <= 0 ? 0 : x),
  abs: Math.abs,
  sin: Math.sin,
  cos: Math.cos,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN),
};

export const binaryFns: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  // Math.pow, except that 1^y = 1 and (-1)^(+-Inf) = 1 as IEEE 754's pow, C and PyTorch define them
  // (Math.pow gives NaN there).
  pow: (a, b) => (a === 1 || (a === -1 && Math.abs(b) === Infinity) ? 1 : Math.pow(a, b)),
  // NaN if either is NaN; max(-0, +0) = +0 and min(-0, +0) = -0 (IEEE 754-2019 maximum/minimum, what
  // WebAssembly's f32.max/f32x4.max compute).
  maximum: Math.max,
  minimum: Math.min,
  greater: (a, b) => +(a > b),
  greaterEqual: (a, b) => +(a >= b),
  less: (a, b) => +(a < b),
  lessEqual: (a, b) => +(a <= b),
  equal: (a, b) => +(a === b),
  notEqual: (a, b) => +(a !== b),
};

function makeKernels(alloc: (dtype: DType, size: number) => RefStorage): Record<string, Kernel> {
  const k: Record<string, Kernel> = {};
  const out = (o: { shape: readonly number[]; dtype: DType }) => alloc(o.dtype, sizeOf(o.shape));

  for (const [name, f] of Object.entries(unaryFns)) {
    k[name] = ([x], _a, o) => {
      const r = out(o), xs = arr(x);
      for (let i = 0; i < xs.length; i++) r.data[i] = f(xs[i]);
      return r;
    };
  }
  for (const [name, f] of Object.entries(binaryFns)) {
    k[name] = ([a, b], _a, o) => {
      const r = out(o), as = arr(a), bs = arr(b);
      forEachStrided(o.shape, [broadcastStrides(a.shape, o.shape), broadcastStrides(b.shape, o.shape)], (i, [ia, ib]) => {
        r.data[i] = f(as[ia], bs[ib]);
      });
      return r;
    };
  }
  k.where = ([c, a, b], _a, o) => {
    const r = out(o), cs = arr(c), as = arr(a), bs = arr(b);
    const st = [c, a, b].map((t) => broadcastStrides(t.shape, o.shape));
    forEachStrided(o.shape, st, (i, [ic, ia, ib]) => { r.data[i] = cs[ic] !== 0 ? as[ia] : bs[ib]; });
    return r;
  };

  // Reductions keep the reduced axes as size 1 (the engine reshapes for keepdims=false).
  const reduce = (init: number, f: (acc: number, v: number) => number): Kernel => ([x], _attrs, o) => {
    const r = out(o), xs = arr(x);
    const acc = new Float64Array(r.size).fill(init);
    forEachStrided(x.shape, [broadcastStrides(o.shape, x.shape)], (i, [io]) => { acc[io] = f(acc[io], xs[i]); });
    r.data.set(acc);
    return r;
  };
  k.sum = reduce(0, (a, v) => a + v);
  // Math.max: NaN propagates; commutative and associative, so every backend may reduce in any order.
  k.max = reduce(-Infinity, Math.max);

  k.matmul = ([a, b], { transA, transB }, o) => {
    const r = out(o), as = arr(a), bs = arr(b);
    const M = o.shape[o.shape.length - 2], N = o.shape[o.shape.length - 1];
    const K = transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    const batch = o.shape.slice(0, -2);
    const aB = broadcastStrides(a.shape.slice(0, -2), batch).map((s) => s * M * K);
    const bB = broadcastStrides(b.shape.slice(0, -2), batch).map((s) => s * K * N);
    forEachStrided(batch, [aB, bB], (bi, [ao, bo]) => {
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let kk = 0; kk < K; kk++) {
          s += as[ao + (transA ? kk * M + m : m * K + kk)] * bs[bo + (transB ? n * K + kk : kk * N + n)];
        }
        r.data[bi * M * N + m * N + n] = s;
      }
    });
    return r;
  };

  k.transpose = ([x], { perm }, o) => {
    const r = out(o), xs = arr(x), xst = stridesOf(x.shape);
    forEachStrided(o.shape, [perm.map((p: number) => xst[p])], (i, [ix]) => { r.data[i] = xs[ix]; });
    return r;
  };
  k.slice = ([x], { begin }, o) => {
    const r = out(o), xs = arr(x), xst = stridesOf(x.shape);
    const base = begin.reduce((s: number, b: number, d: number) => s + b * xst[d], 0);
    forEachStrided(o.shape, [xst], (i, [ix]) => { r.data[i] = xs[base + ix]; });
    return r;
  };
  k.pad = ([x], { before }, o) => {
    const r = out(o), xs = arr(x), ost = stridesOf(o.shape);
    const base = before.reduce((s: number, b: number, d: number) => s + b * ost[d], 0);
    forEachStrided(x.shape, [ost], (i, [io]) => { r.data[base + io] = xs[i]; });
    return r;
  };
  k.concat = (xs, { axis }, o) => {
    const r = out(o), ost = stridesOf(o.shape);
    let at = 0;
    for (const x of xs) {
      const d = arr(x);
      forEachStrided(x.shape, [ost], (i, [io]) => { r.data[at * ost[axis] + io] = d[i]; });
      at += x.shape[axis];
    }
    return r;
  };
  k.broadcastTo = ([x], _a, o) => {
    const r = out(o), xs = arr(x);
    forEachStrided(o.shape, [broadcastStrides(x.shape, o.shape)], (i, [ix]) => { r.data[i] = xs[ix]; });
    return r;
  };
  // gather: out[.., j, ..] = x[.., indices[j], ..] along `axis`; scatterAdd is its adjoint.
  const axisSplit = (shape: readonly number[], axis: number) =>
    [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
  k.gather = ([x], { axis, indices }, o) => {
    const r = out(o), xs = arr(x);
    const [outer, n, inner] = axisSplit(x.shape, axis);
    const J = indices.length;
    for (let a = 0; a < outer; a++) for (let j = 0; j < J; j++) for (let c = 0; c < inner; c++) {
      r.data[(a * J + j) * inner + c] = xs[(a * n + indices[j]) * inner + c];
    }
    return r;
  };
  k.scatterAdd = ([g], { axis, indices }, o) => {
    const acc = new Float64Array(sizeOf(o.shape)), gs = arr(g);
    const [outer, n, inner] = axisSplit(o.shape, axis);
    const J = indices.length;
    for (let a = 0; a < outer; a++) for (let j = 0; j < J; j++) for (let c = 0; c < inner; c++) {
      acc[(a * n + indices[j]) * inner + c] += gs[(a * J + j) * inner + c];
    }
    const r = out(o);
    r.data.set(acc);
    return r;
  };
  k.cast = ([x], _a, o) => { const r = out(o); r.data.set(arr(x)); return r; };

  // Convolution (NCHW input, OIHW filter) as one loop nest over (input pixel, filter tap) pairs;
  // the three kernels visit the same pairs, which is what makes them each other's adjoints.
  type Geo = { stride: number[]; pad: number[]; dilation: number[] };
  const convPairs = (xShape: readonly number[], wShape: readonly number[], yShape: readonly number[], g: Geo,
    f: (xi: number, wi: number, yi: number) => void) => {
    const [N, C, H, W] = xShape, [O, , KH, KW] = wShape, [, , OH, OW] = yShape;
    for (let n = 0; n < N; n++) for (let oc = 0; oc < O; oc++) for (let i = 0; i < OH; i++) for (let j = 0; j < OW; j++) {
      const yi = ((n * O + oc) * OH + i) * OW + j;
      for (let c = 0; c < C; c++) for (let p = 0; p < KH; p++) {
        const h = i * g.stride[0] - g.pad[0] + p * g.dilation[0];
        if (h < 0 || h >= H) continue;
        for (let q = 0; q < KW; q++) {
          const w = j * g.stride[1] - g.pad[1] + q * g.dilation[1];
          if (w < 0 || w >= W) continue;
          f(((n * C + c) * H + h) * W + w, ((oc * C + c) * KH + p) * KW + q, yi);
        }
      }
    }
  };
  const accumulate = (o: { shape: readonly number[]; dtype: DType }, fill: (acc: Float64Array) => void) => {
    const acc = new Float64Array(sizeOf(o.shape));
    fill(acc);
    const r = out(o);
    r.data.set(acc);
    return r;
  };
  k.conv2d = ([x, w], g, o) => accumulate(o, (acc) => {
    const xs = arr(x), ws = arr(w);
    convPairs(x.shape, w.shape, o.shape, g, (xi, wi, yi) => { acc[yi] += xs[xi] * ws[wi]; });
  });
  k.conv2dGradInput = ([dy, w], g, o) => accumulate(o, (acc) => {
    const ds = arr(dy), ws = arr(w);
    convPairs(o.shape, w.shape, dy.shape, g, (xi, wi, yi) => { acc[xi] += ds[yi] * ws[wi]; });
  });
  k.conv2dGradFilter = ([x, dy], g, o) => accumulate(o, (acc) => {
    const xs = arr(x), ds = arr(dy);
    convPairs(x.shape, o.shape, dy.shape, g, (xi, wi, yi) => { acc[wi] += xs[xi] * ds[yi]; });
  });

  // Pooling windows over NCHW; padding positions are skipped (never selected, never averaged in
  // except through the fixed kh*kw divisor of avgPool2d).
  type Pool = { kernel: number[]; stride: number[]; pad: number[] };
  const windows = (xShape: readonly number[], yShape: readonly number[], g: Pool,
    f: (yi: number, taps: number[]) => void) => {
    const [N, C, H, W] = xShape, [, , OH, OW] = yShape;
    for (let nc = 0; nc < N * C; nc++) for (let i = 0; i < OH; i++) for (let j = 0; j < OW; j++) {
      const taps: number[] = [];
      for (let p = 0; p < g.kernel[0]; p++) {
        const h = i * g.stride[0] - g.pad[0] + p;
        if (h < 0 || h >= H) continue;
        for (let q = 0; q < g.kernel[1]; q++) {
          const w = j * g.stride[1] - g.pad[1] + q;
          if (w >= 0 && w < W) taps.push((nc * H + h) * W + w);
        }
      }
      f((nc * OH + i) * OW + j, taps);
    }
  };
  // The first maximum in row-major window order wins ties; the first NaN wins over everything (NaN
  // propagates, as in PyTorch).
  const argmax = (xs: TypedArray, taps: number[]) =>
    taps.reduce((best, t) => (xs[t] > xs[best] || (Number.isNaN(xs[t]) && !Number.isNaN(xs[best])) ? t : best), taps[0]);
  k.maxPool2d = ([x], g, o) => accumulate(o, (acc) => {
    const xs = arr(x);
    windows(x.shape, o.shape, g, (yi, taps) => { acc[yi] = xs[argmax(xs, taps)]; });
  });
  k.maxPool2dGrad = ([x, dy], g, o) => accumulate(o, (acc) => {
    const xs = arr(x), ds = arr(dy);
    windows(x.shape, dy.shape, g, (yi, taps) => { acc[argmax(xs, taps)] += ds[yi]; });
  });
  k.maxPool2dSelect = ([x, gx], g, o) => accumulate(o, (acc) => {
    const xs = arr(x), gs = arr(gx);
    windows(x.shape, o.shape, g, (yi, taps) => { acc[yi] = gs[argmax(xs, taps)]; });
  });
  k.avgPool2d = ([x], g, o) => accumulate(o, (acc) => {
    const xs = arr(x), area = g.kernel[0] * g.kernel[1];
    windows(x.shape, o.shape, g, (yi, taps) => { for (const t of taps) acc[yi] += xs[t] / area; });
  });
  k.avgPool2dGrad = ([dy], g, o) => accumulate(o, (acc) => {
    const ds = arr(dy), area = g.kernel[0] * g.kernel[1];
    windows(o.shape, dy.shape, g, (yi, taps) => { for (const t of taps) acc[t] += ds[yi] / area; });
  });
  return k;
}

export function createRefBackend(): Backend {
  let bytes = 0;
  const alloc = (dtype: DType, size: number) => {
    bytes += size * bytesPerElement(dtype);
    return new RefStorage(dtype, typedArrayFor(dtype, size));
  };
  return {
    name: 'ref',
    kernels: makeKernels(alloc),
    alloc,
    upload(dtype, data) {
      bytes += data.length * bytesPerElement(dtype);
      return new RefStorage(dtype, typedArrayFor(dtype, data));
    },
    free(s) { bytes -= s.size * bytesPerElement(s.dtype); },
    readSync: (s) => (s as RefStorage).data.slice(),
    read: async (s) => (s as RefStorage).data.slice(),
    bytesInUse: () => bytes,
    // JavaScript typed arrays: V8 allows 2^32 elements at most.
    limits: { storageBytes: 2 ** 32, totalBytes: Infinity },
  };
}
