// Random test cases for every primitive: input shapes (broadcasting, size-1 and empty dimensions)
// and values drawn from the op's safe domain (away from kinks, ties and singularities by more than
// the finite-difference step), plus the primitive's attributes.

import fc from 'fast-check';
import { Random } from '../../engine/random.js';
import { windowOut } from '../../kernels/strides.js';

export interface InputSpec { shape: number[]; values: Float64Array }
export interface Case { inputs: InputSpec[]; attrs: any }

export interface OpSpec {
  cases: fc.Arbitrary<Case>;
  /** Inputs to differentiate with respect to (default: all). Empty for non-differentiable primitives. */
  wrt?: number[];
  /** Finite-difference step and tolerance overrides. */
  fdStep?: number;
  fdTol?: number;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
type Domain = (rng: Random, n: number) => Float64Array;

const uniform = (lo: number, hi: number): Domain => (rng, n) => rng.uniformValues(n, lo, hi);
/** |x| in [lo, hi] with random sign: keeps values away from 0 (kinks of relu, abs, sign; poles of 1/x). */
const awayFromZero = (lo: number, hi: number): Domain => (rng, n) =>
  rng.uniformValues(n, lo, hi).map((v) => (rng.next() < 0.5 ? -v : v));
/** Values on a grid offset by `phase`: two grids with different phases never tie. */
const grid = (phase: number): Domain => (rng, n) => Float64Array.from({ length: n }, () => (rng.int(9) - 4) * 0.5 + phase);
/** Distinct values (a shuffled grid): maxima are unique, so max and max-pooling have no ties. */
const distinct: Domain = (rng, n) => Float64Array.from(rng.shuffle(Array.from({ length: n }, (_, i) => i)), (i) => (i - n / 2) * 0.1);
const smallInts: Domain = (rng, n) => Float64Array.from({ length: n }, () => rng.int(3) - 1);
const binary01: Domain = (rng, n) => Float64Array.from({ length: n }, () => rng.int(2));

const seedArb = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const dimArb = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 12, arbitrary: fc.integer({ min: 1, max: 4 }) });
const shapeArb = (minRank = 0, maxRank = 3) => fc.array(dimArb, { minLength: minRank, maxLength: maxRank });

/** A shape that broadcasts to `out`: leading axes dropped and some axes set to 1. */
const broadcastFrom = (out: number[], rng: Random): number[] => {
  const drop = rng.int(out.length + 1);
  return out.slice(drop).map((d) => (rng.next() < 0.3 ? 1 : d));
};

const fill = (rng: Random, shape: number[], d: Domain): InputSpec => ({ shape, values: d(rng, size(shape)) });

const unary = (d: Domain, wrt?: number[]): OpSpec => ({
  wrt,
  cases: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]) => ({ inputs: [fill(new Random(s), shape, d)], attrs: {} })),
});

const binary = (da: Domain, db: Domain, wrt?: number[]): OpSpec => ({
  wrt,
  cases: fc.tuple(shapeArb(0, 3), seedArb, fc.boolean()).map(([out, s, swap]) => {
    const rng = new Random(s);
    const small = broadcastFrom(out, rng);
    const [sa, sb] = swap ? [small, out] : [out, small];
    return { inputs: [fill(rng, sa, da), fill(rng, sb, db)], attrs: {} };
  }),
});

const axesOf = (rank: number, rng: Random) => Array.from({ length: rank }, (_, i) => i).filter(() => rng.next() < 0.5);

const reduction = (d: Domain): OpSpec => ({
  cases: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]) => {
    const rng = new Random(s);
    return { inputs: [fill(rng, shape, d)], attrs: { axes: axesOf(shape.length, rng) } };
  }),
});

interface ConvGeo { x: number[]; w: number[]; y: number[]; attrs: { stride: number[]; pad: number[]; dilation: number[] } }
const convGeoArb: fc.Arbitrary<ConvGeo> = fc
  .record({
    n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 3 }), o: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 6 }), w: fc.integer({ min: 1, max: 6 }),
    kh: fc.integer({ min: 1, max: 3 }), kw: fc.integer({ min: 1, max: 3 }),
    sh: fc.integer({ min: 1, max: 2 }), sw: fc.integer({ min: 1, max: 2 }),
    ph: fc.integer({ min: 0, max: 1 }), pw: fc.integer({ min: 0, max: 1 }),
    dh: fc.integer({ min: 1, max: 2 }), dw: fc.integer({ min: 1, max: 2 }),
  })
  .filter((g) => windowOut(g.h, g.kh, g.sh, g.ph, g.dh) > 0 && windowOut(g.w, g.kw, g.sw, g.pw, g.dw) > 0)
  .map((g) => ({
    x: [g.n, g.c, g.h, g.w],
    w: [g.o, g.c, g.kh, g.kw],
    y: [g.n, g.o, windowOut(g.h, g.kh, g.sh, g.ph, g.dh), windowOut(g.w, g.kw, g.sw, g.pw, g.dw)],
    attrs: { stride: [g.sh, g.sw], pad: [g.ph, g.pw], dilation: [g.dh, g.dw] },
  }));

interface PoolGeo { x: number[]; y: number[]; attrs: { kernel: number[]; stride: number[]; pad: number[] } }
const poolGeoArb: fc.Arbitrary<PoolGeo> = fc
  .record({
    n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 1, max: 6 }), w: fc.integer({ min: 1, max: 6 }),
    kh: fc.integer({ min: 1, max: 3 }), kw: fc.integer({ min: 1, max: 3 }),
    sh: fc.integer({ min: 1, max: 3 }), sw: fc.integer({ min: 1, max: 3 }),
    ph: fc.integer({ min: 0, max: 1 }), pw: fc.integer({ min: 0, max: 1 }),
  })
  .filter((g) => 2 * g.ph <= g.kh && 2 * g.pw <= g.kw && windowOut(g.h, g.kh, g.sh, g.ph) > 0 && windowOut(g.w, g.kw, g.sw, g.pw) > 0)
  .map((g) => ({
    x: [g.n, g.c, g.h, g.w],
    y: [g.n, g.c, windowOut(g.h, g.kh, g.sh, g.ph), windowOut(g.w, g.kw, g.sw, g.pw)],
    attrs: { kernel: [g.kh, g.kw], stride: [g.sh, g.sw], pad: [g.ph, g.pw] },
  }));

const withSeed = <G, R>(geo: fc.Arbitrary<G>, f: (g: G, rng: Random) => R) =>
  fc.tuple(geo, seedArb).map(([g, s]) => f(g, new Random(s)));

const v = uniform(-2, 2);

export const opSpecs: Record<string, OpSpec> = {
  neg: unary(v),
  exp: unary(v),
  log: unary(uniform(0.5, 3)),
  sqrt: unary(uniform(0.5, 3)),
  tanh: unary(v),
  sigmoid: unary(uniform(-3, 3)),
  relu: unary(awayFromZero(0.1, 2)),
  abs: unary(awayFromZero(0.1, 2)),
  sin: unary(uniform(-3, 3)),
  cos: unary(uniform(-3, 3)),
  sign: unary(smallInts, []),

  add: binary(v, v),
  sub: binary(v, v),
  mul: binary(v, v),
  div: binary(v, awayFromZero(0.5, 2)),
  pow: binary(uniform(0.5, 2), uniform(-2, 2)),
  maximum: binary(grid(0.25), grid(0)),
  minimum: binary(grid(0.25), grid(0)),
  greater: binary(smallInts, smallInts, []),
  greaterEqual: binary(smallInts, smallInts, []),
  less: binary(smallInts, smallInts, []),
  lessEqual: binary(smallInts, smallInts, []),
  equal: binary(smallInts, smallInts, []),
  notEqual: binary(smallInts, smallInts, []),
  where: {
    wrt: [1, 2],
    cases: fc.tuple(shapeArb(0, 3), seedArb).map(([out, s]) => {
      const rng = new Random(s);
      return { inputs: [fill(rng, broadcastFrom(out, rng), binary01), fill(rng, broadcastFrom(out, rng), v), fill(rng, out, v)], attrs: {} };
    }),
  },

  sum: reduction(v),
  max: reduction(distinct),

  matmul: {
    cases: fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }),
      shapeArb(0, 2), seedArb, fc.boolean(), fc.boolean()).map(([m, k, n, batch, s, transA, transB]) => {
      const rng = new Random(s);
      const [ba, bb] = rng.next() < 0.5 ? [batch, broadcastFrom(batch, rng)] : [broadcastFrom(batch, rng), batch];
      return {
        inputs: [fill(rng, [...ba, ...(transA ? [k, m] : [m, k])], v), fill(rng, [...bb, ...(transB ? [n, k] : [k, n])], v)],
        attrs: { transA, transB },
      };
    }),
  },

  reshape: {
    cases: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      const target = rng.next() < 0.5 ? [...shape].reverse() : [size(shape)];
      return { inputs: [fill(rng, shape, v)], attrs: { shape: target } };
    }),
  },
  transpose: {
    cases: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      return { inputs: [fill(rng, shape, v)], attrs: { perm: rng.shuffle(shape.map((_, i) => i)) } };
    }),
  },
  slice: {
    cases: fc.tuple(shapeArb(0, 4), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      const begin = shape.map((d) => rng.int(d + 1));
      return { inputs: [fill(rng, shape, v)], attrs: { begin, size: shape.map((d, i) => rng.int(d - begin[i] + 1)) } };
    }),
  },
  pad: {
    cases: fc.tuple(shapeArb(0, 3), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      return { inputs: [fill(rng, shape, v)], attrs: { before: shape.map(() => rng.int(3)), after: shape.map(() => rng.int(3)) } };
    }),
  },
  concat: {
    cases: fc.tuple(shapeArb(1, 3), fc.integer({ min: 2, max: 3 }), seedArb).map(([shape, count, s]) => {
      const rng = new Random(s);
      const axis = rng.int(shape.length);
      const inputs = Array.from({ length: count }, () => fill(rng, shape.map((d, i) => (i === axis ? rng.int(4) : d)), v));
      return { inputs, attrs: { axis } };
    }),
  },
  broadcastTo: {
    cases: fc.tuple(shapeArb(0, 3), seedArb).map(([out, s]) => {
      const rng = new Random(s);
      return { inputs: [fill(rng, broadcastFrom(out, rng), v)], attrs: { shape: out } };
    }),
  },
  gather: {
    cases: fc.tuple(shapeArb(1, 3).filter((sh) => sh.length > 0), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      const axis = rng.int(shape.length);
      shape[axis] = Math.max(1, shape[axis]);
      const indices = Int32Array.from({ length: rng.int(5) }, () => rng.int(shape[axis]));
      return { inputs: [fill(rng, shape, v)], attrs: { axis, indices } };
    }),
  },
  scatterAdd: {
    cases: fc.tuple(shapeArb(1, 3).filter((sh) => sh.length > 0), seedArb).map(([shape, s]) => {
      const rng = new Random(s);
      const axis = rng.int(shape.length);
      const sizeAlong = 1 + rng.int(4);
      const indices = Int32Array.from({ length: shape[axis] }, () => rng.int(sizeAlong));
      return { inputs: [fill(rng, shape, v)], attrs: { axis, indices, size: sizeAlong } };
    }),
  },
  cast: {
    // Differentiated through a float32 round trip: a larger step keeps rounding out of the estimate.
    fdStep: 1e-2,
    fdTol: 1e-4,
    cases: fc.tuple(shapeArb(0, 3), seedArb).map(([shape, s]) => ({ inputs: [fill(new Random(s), shape, v)], attrs: { dtype: 'float32' } })),
  },

  conv2d: { cases: withSeed(convGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, v), fill(rng, g.w, v)], attrs: g.attrs })) },
  conv2dGradInput: {
    cases: withSeed(convGeoArb, (g, rng) => ({ inputs: [fill(rng, g.y, v), fill(rng, g.w, v)], attrs: { inShape: g.x, ...g.attrs } })),
  },
  conv2dGradFilter: {
    cases: withSeed(convGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, v), fill(rng, g.y, v)], attrs: { filterShape: g.w, ...g.attrs } })),
  },
  maxPool2d: { cases: withSeed(poolGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, distinct)], attrs: g.attrs })) },
  maxPool2dGrad: {
    cases: withSeed(poolGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, distinct), fill(rng, g.y, v)], attrs: g.attrs })),
  },
  maxPool2dSelect: {
    cases: withSeed(poolGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, distinct), fill(rng, g.x, v)], attrs: g.attrs })),
  },
  avgPool2d: { cases: withSeed(poolGeoArb, (g, rng) => ({ inputs: [fill(rng, g.x, v)], attrs: g.attrs })) },
  avgPool2dGrad: {
    cases: withSeed(poolGeoArb, (g, rng) => ({ inputs: [fill(rng, g.y, v)], attrs: { inShape: g.x, ...g.attrs } })),
  },
};
