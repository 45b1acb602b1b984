// The primitive registry: every operation a backend must implement, with its shape inference and
// its backward rule. Each rule is written with differentiable ops (never a backward-only kernel
// without a rule of its own), so the gradient of a gradient is just another graph: second and
// third derivatives need no extra code. Kernel semantics are spelled out in kernels/ref/backend.ts.

import type { DType } from '../kernels/backend.js';
import { windowOut } from '../kernels/strides.js';
import type { Tensor } from './tensor.js';
import * as ops from './ops.js';

export type Grads = (Tensor | null)[];

export interface Primitive {
  /** Validates inputs and attributes (errors name the op and the shapes), gives the output. */
  infer(inputs: readonly Tensor[], attrs: any): { shape: number[]; dtype: DType };
  /**
   * Vector-Jacobian product: cotangents for each input given the output's cotangent g. `needs[i]`
   * says whether input i's cotangent is wanted; null means zero. Absent for primitives that are
   * not differentiable (comparisons, sign): their outputs are constants to autodiff.
   */
  vjp?(g: Tensor, inputs: readonly Tensor[], out: Tensor, attrs: any, needs: readonly boolean[]): Grads;
  /** Shares its input's storage instead of running a kernel. */
  view?: boolean;
}

const shp = (s: readonly number[]) => `[${s.join(', ')}]`;

function sameDtype(op: string, xs: readonly Tensor[]): DType {
  for (const x of xs) {
    if (x.dtype !== xs[0].dtype) {
      throw new Error(`${op}: dtype mismatch: ${xs.map((t) => `${shp(t.shape)} ${t.dtype}`).join(' vs ')}`);
    }
  }
  return xs[0].dtype;
}

/** numpy broadcasting of several shapes; the error names the op and every shape. */
export function broadcastShapes(op: string, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error(`${op}: shapes ${shapes.map(shp).join(' and ')} cannot be broadcast together`);
        d = v;
      }
    }
    out.push(shapes.some((s) => (s[s.length - rank + i] ?? 1) === 0) ? 0 : d);
  }
  return out;
}

const elementwise = (op: string) => (xs: readonly Tensor[]) => ({
  dtype: sameDtype(op, xs),
  shape: broadcastShapes(op, xs.map((x) => x.shape)),
});

/** Sums g down to `shape`, undoing broadcasting. */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return ops.reshape(axes.length ? ops.sum(g, axes, true) : g, shape);
}

const unary = (vjp?: Primitive['vjp']): Primitive => ({ infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }), vjp });
const binary = (op: string, vjp?: Primitive['vjp']): Primitive => ({ infer: elementwise(op), vjp });

function checkAxes(op: string, x: Tensor, axes: readonly number[]) {
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw new Error(`${op}: axis ${a} is out of range for shape ${shp(x.shape)}`);
  }
}

const reduction = (op: string, vjp: Primitive['vjp']): Primitive => ({
  infer: ([x], { axes }) => {
    checkAxes(op, x, axes);
    return { shape: x.shape.map((d, i) => (axes.includes(i) ? 1 : d)), dtype: x.dtype };
  },
  vjp,
});

type Geometry = { stride: number[]; pad: number[]; dilation: number[] };
type PoolGeometry = { kernel: number[]; stride: number[]; pad: number[] };

function convOut(op: string, x: readonly number[], w: readonly number[], g: Geometry): number[] {
  if (x.length !== 4 || w.length !== 4) throw new Error(`${op}: expects input [N,C,H,W] and filter [O,C,KH,KW], got ${shp(x)} and ${shp(w)}`);
  if (x[1] !== w[1]) throw new Error(`${op}: input ${shp(x)} has ${x[1]} channels but filter ${shp(w)} expects ${w[1]}`);
  const oh = windowOut(x[2], w[2], g.stride[0], g.pad[0], g.dilation[0]);
  const ow = windowOut(x[3], w[3], g.stride[1], g.pad[1], g.dilation[1]);
  if (oh <= 0 || ow <= 0) throw new Error(`${op}: filter ${shp(w)} does not fit input ${shp(x)} with padding ${shp(g.pad)}`);
  return [x[0], w[0], oh, ow];
}

function poolOut(op: string, x: readonly number[], g: PoolGeometry): number[] {
  if (x.length !== 4) throw new Error(`${op}: expects input [N,C,H,W], got ${shp(x)}`);
  if (g.pad[0] * 2 > g.kernel[0] || g.pad[1] * 2 > g.kernel[1]) {
    throw new Error(`${op}: padding ${shp(g.pad)} must be at most half the window ${shp(g.kernel)}`);
  }
  const oh = windowOut(x[2], g.kernel[0], g.stride[0], g.pad[0]);
  const ow = windowOut(x[3], g.kernel[1], g.stride[1], g.pad[1]);
  if (oh <= 0 || ow <= 0) throw new Error(`${op}: window ${shp(g.kernel)} does not fit input ${shp(x)}`);
  return [x[0], x[1], oh, ow];
}

function expectShape(op: string, what: string, got: readonly number[], want: readonly number[]) {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw new Error(`${op}: ${what} has shape ${shp(got)}, expected ${shp(want)}`);
  }
}

const ZERO_GRAD = null;

export const primitives: Record<string, Primitive> = {
  // ----- elementwise unary -----
  neg: unary((g) => [ops.neg(g)]),
  exp: unary((g, _x, y) => [ops.mul(g, y)]),
  log: unary((g, [x]) => [ops.div(g, x)]),
  sqrt: unary((g, _x, y) => [ops.div(g, ops.mul(y, 2))]),
  tanh: unary((g, _x, y) => [ops.mul(g, ops.sub(1, ops.mul(y, y)))]),
  sigmoid: unary((g, _x, y) => [ops.mul(g, ops.mul(y, ops.sub(1, y)))]),
  relu: unary((g, [x]) => [ops.mul(g, ops.greater(x, 0))]),
  abs: unary((g, [x]) => [ops.mul(g, ops.sign(x))]),
  sin: unary((g, [x]) => [ops.mul(g, ops.cos(x))]),
  cos: unary((g, [x]) => [ops.neg(ops.mul(g, ops.sin(x)))]),
  sign: unary(),

  // ----- elementwise binary, numpy broadcasting -----
  add: binary('add', (g, [a, b]) => [unbroadcast(g, a.shape), unbroadcast(g, b.shape)]),
  // Negate after summing down to b's shape: a broadcast b (batch norm's mean) then costs one pass
  // over g, not two.
  sub: binary('sub', (g, [a, b], _y, _at, n) => [unbroadcast(g, a.shape), n[1] ? ops.neg(unbroadcast(g, b.shape)) : null]),
  mul: binary('mul', (g, [a, b], _y, _at, n) => [
    n[0] ? unbroadcast(ops.mul(g, b), a.shape) : null,
    n[1] ? unbroadcast(ops.mul(g, a), b.shape) : null,
  ]),
  div: binary('div', (g, [a, b], _y, _at, n) => [
    n[0] ? unbroadcast(ops.div(g, b), a.shape) : null,
    // -g a / b^2 summed to b's shape; b^2 is constant along the summed axes, so divide after summing
    // (two full-size passes fewer when b is broadcast, as in batch norm).
    n[1] ? ops.neg(ops.div(unbroadcast(ops.mul(g, a), b.shape), ops.mul(b, b))) : null,
  ]),
  pow: binary('pow', (g, [a, b], y, _at, n) => [
    n[0] ? unbroadcast(ops.mul(ops.mul(g, b), ops.pow(a, ops.sub(b, 1))), a.shape) : null,
    // d/db a^b = a^b log a, taken as 0 where a <= 0; log sees a safe argument so no NaN leaks into grads.
    n[1] ? unbroadcast(ops.mul(ops.mul(g, y), ops.where(ops.greater(a, 0), ops.log(ops.where(ops.greater(a, 0), a, 1)), 0)), b.shape) : null,
  ]),
  maximum: binary('maximum', (g, [a, b]) => {
    const m = ops.greaterEqual(a, b);
    return [unbroadcast(ops.mul(g, m), a.shape), unbroadcast(ops.mul(g, ops.sub(1, m)), b.shape)];
  }),
  minimum: binary('minimum', (g, [a, b]) => {
    const m = ops.lessEqual(a, b);
    return [unbroadcast(ops.mul(g, m), a.shape), unbroadcast(ops.mul(g, ops.sub(1, m)), b.shape)];
  }),
  greater: binary('greater'),
  greaterEqual: binary('greaterEqual'),
  less: binary('less'),
  lessEqual: binary('lessEqual'),
  equal: binary('equal'),
  notEqual: binary('notEqual'),
  where: {
    infer: elementwise('where'),
    vjp: (g, [c, a, b]) => [null, unbroadcast(ops.where(c, g, 0), a.shape), unbroadcast(ops.where(c, 0, g), b.shape)],
  },

  // ----- reductions (reduced axes kept as 1; ops.sum reshapes for keepdims=false) -----
  sum: reduction('sum', (g, [x]) => [ops.broadcastTo(g, x.shape)]),
  max: reduction('max', (g, [x], y, { axes }) => {
    // Ties share the gradient equally, so the rule stays a valid subgradient.
    const mask = ops.equal(x, y);
    return [ops.div(ops.mul(g, mask), ops.sum(mask, axes, true))];
  }),

  // ----- linear algebra -----
  matmul: {
    infer: ([a, b], { transA, transB }) => {
      const dtype = sameDtype('matmul', [a, b]);
      if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands must have rank >= 2, got ${shp(a.shape)} and ${shp(b.shape)}`);
      const [m, ka] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
      const [kb, n] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
      if (ka !== kb) {
        throw new Error(`matmul: inner dimensions differ: ${shp(a.shape)}${transA ? 'ᵀ' : ''} @ ${shp(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb})`);
      }
      const batch = broadcastShapes('matmul', [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
      return { shape: [...batch, m, n], dtype };
    },
    vjp: (g, [a, b], _y, { transA, transB }, n) => {
      const mm = (x: Tensor, y: Tensor, tx: boolean, ty: boolean) => ops.matmul(x, y, { transA: tx, transB: ty });
      let da: Tensor | null = null, db: Tensor | null = null;
      if (n[0]) da = transA ? (transB ? mm(b, g, true, true) : mm(b, g, false, true)) : (transB ? mm(g, b, false, false) : mm(g, b, false, true));
      if (n[1]) db = transB ? (transA ? mm(g, a, true, true) : mm(g, a, true, false)) : (transA ? mm(a, g, false, false) : mm(a, g, true, false));
      return [da && unbroadcast(da, a.shape), db && unbroadcast(db, b.shape)];
    },
  },

  // ----- layout -----
  reshape: {
    view: true,
    infer: ([x], { shape }) => {
      const n = shape.reduce((p: number, d: number) => p * d, 1);
      if (n !== x.size) throw new Error(`reshape: cannot reshape ${shp(x.shape)} (${x.size} elements) to ${shp(shape)}`);
      return { shape: [...shape], dtype: x.dtype };
    },
    vjp: (g, [x]) => [ops.reshape(g, x.shape)],
  },
  transpose: {
    infer: ([x], { perm }) => {
      const ok = perm.length === x.rank && [...perm].sort((p: number, q: number) => p - q).every((p: number, i: number) => p === i);
      if (!ok) throw new Error(`transpose: permutation ${shp(perm)} does not fit shape ${shp(x.shape)}`);
      return { shape: perm.map((p: number) => x.shape[p]), dtype: x.dtype };
    },
    vjp: (g, _x, _y, { perm }) => {
      const inv = new Array(perm.length);
      perm.forEach((p: number, i: number) => { inv[p] = i; });
      return [ops.transpose(g, inv)];
    },
  },
  slice: {
    infer: ([x], { begin, size }) => {
      const bad = begin.length !== x.rank || size.length !== x.rank ||
        begin.some((b: number, i: number) => b < 0 || size[i] < 0 || b + size[i] > x.shape[i]);
      if (bad) throw new Error(`slice: begin ${shp(begin)} size ${shp(size)} is out of bounds for shape ${shp(x.shape)}`);
      return { shape: [...size], dtype: x.dtype };
    },
    vjp: (g, [x], _y, { begin, size }) =>
      [ops.pad(g, x.shape.map((d, i) => [begin[i], d - begin[i] - size[i]] as [number, number]))],
  },
  pad: {
    infer: ([x], { before, after }) => {
      if (before.length !== x.rank || after.length !== x.rank || [...before, ...after].some((p: number) => p < 0 || !Number.isInteger(p))) {
        throw new Error(`pad: paddings ${shp(before)} / ${shp(after)} do not fit shape ${shp(x.shape)} (non-negative integers, one per axis)`);
      }
      return { shape: x.shape.map((d, i) => d + before[i] + after[i]), dtype: x.dtype };
    },
    vjp: (g, [x], _y, { before }) => [ops.slice(g, before, x.shape)],
  },
  concat: {
    infer: (xs, { axis }) => {
      const dtype = sameDtype('concat', xs);
      const r = xs[0].rank;
      if (axis < 0 || axis >= r) throw new Error(`concat: axis ${axis} is out of range for rank ${r}`);
      for (const x of xs) {
        if (x.rank !== r || x.shape.some((d, i) => i !== axis && d !== xs[0].shape[i])) {
          throw new Error(`concat: shapes ${xs.map((t) => shp(t.shape)).join(', ')} differ outside axis ${axis}`);
        }
      }
      const shape = [...xs[0].shape];
      shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
      return { shape, dtype };
    },
    vjp: (g, xs, _y, { axis }) => {
      let at = 0;
      return xs.map((x) => {
        const begin = x.shape.map((_, i) => (i === axis ? at : 0));
        at += x.shape[axis];
        return ops.slice(g, begin, x.shape);
      });
    },
  },
  broadcastTo: {
    infer: ([x], { shape }) => {
      const b = broadcastShapes('broadcastTo', [x.shape, shape]);
      if (b.length !== shape.length || b.some((d, i) => d !== shape[i])) {
        throw new Error(`broadcastTo: shape ${shp(x.shape)} cannot be broadcast to ${shp(shape)}`);
      }
      return { shape: [...shape], dtype: x.dtype };
    },
    vjp: (g, [x]) => [unbroadcast(g, x.shape)],
  },
  gather: {
    infer: ([x], { axis, indices }) => {
      checkAxes('gather', x, [axis]);
      for (const i of indices) {
        if (!Number.isInteger(i) || i < 0 || i >= x.shape[axis]) throw new Error(`gather: index ${i} is out of range for axis ${axis} of shape ${shp(x.shape)}`);
      }
      const shape = [...x.shape];
      shape[axis] = indices.length;
      return { shape, dtype: x.dtype };
    },
    vjp: (g, [x], _y, { axis, indices }) => [ops.scatterAdd(g, indices, axis, x.shape[axis])],
  },
  scatterAdd: {
    infer: ([g], { axis, indices, size }) => {
      checkAxes('scatterAdd', g, [axis]);
      if (g.shape[axis] !== indices.length) throw new Error(`scatterAdd: ${indices.length} indices for axis ${axis} of shape ${shp(g.shape)}`);
      for (const i of indices) {
        if (!Number.isInteger(i) || i < 0 || i >= size) throw new Error(`scatterAdd: index ${i} is out of range for size ${size}`);
      }
      const shape = [...g.shape];
      shape[axis] = size;
      return { shape, dtype: g.dtype };
    },
    vjp: (g, _x, _y, { axis, indices }) => [ops.gather(g, indices, axis)],
  },
  cast: {
    infer: ([x], { dtype }) => {
      if (dtype !== 'float32' && dtype !== 'float64') throw new Error(`cast: unknown dtype '${dtype}'`);
      return { shape: [...x.shape], dtype };
    },
    vjp: (g, [x]) => [ops.cast(g, x.dtype)],
  },

  // ----- convolution: the three kernels are each other's adjoints, so each rule uses the others -----
  conv2d: {
    infer: ([x, w], geo) => ({ shape: convOut('conv2d', x.shape, w.shape, geo), dtype: sameDtype('conv2d', [x, w]) }),
    vjp: (g, [x, w], _y, geo, n) => [
      n[0] ? ops.conv2dGradInput(g, w, x.shape, geo) : null,
      n[1] ? ops.conv2dGradFilter(x, g, w.shape, geo) : null,
    ],
  },
  conv2dGradInput: {
    infer: ([dy, w], { inShape, ...geo }) => {
      expectShape('conv2dGradInput', 'dy', dy.shape, convOut('conv2dGradInput', inShape, w.shape, geo));
      return { shape: [...inShape], dtype: sameDtype('conv2dGradInput', [dy, w]) };
    },
    vjp: (g, [dy, w], _y, { inShape, ...geo }, n) => [
      n[0] ? ops.conv2d(g, w, geo) : null,
      n[1] ? ops.conv2dGradFilter(g, dy, w.shape, geo) : null,
    ],
  },
  conv2dGradFilter: {
    infer: ([x, dy], { filterShape, ...geo }) => {
      expectShape('conv2dGradFilter', 'dy', dy.shape, convOut('conv2dGradFilter', x.shape, filterShape, geo));
      return { shape: [...filterShape], dtype: sameDtype('conv2dGradFilter', [x, dy]) };
    },
    vjp: (g, [x, dy], _y, { filterShape, ...geo }, n) => [
      n[0] ? ops.conv2dGradInput(dy, g, x.shape, geo) : null,
      n[1] ? ops.conv2d(x, g, geo) : null,
    ],
  },

  // ----- pooling: y = R(x) x with R selecting each window's maximum; R is constant almost everywhere -----
  maxPool2d: {
    infer: ([x], geo) => ({ shape: poolOut('maxPool2d', x.shape, geo), dtype: x.dtype }),
    vjp: (g, [x], _y, geo) => [ops.maxPool2dGrad(x, g, geo)],
  },
  /** Rᵀ dy: routes each window's cotangent to its maximum. */
  maxPool2dGrad: {
    infer: ([x, dy], geo) => {
      expectShape('maxPool2dGrad', 'dy', dy.shape, poolOut('maxPool2dGrad', x.shape, geo));
      return { shape: [...x.shape], dtype: sameDtype('maxPool2dGrad', [x, dy]) };
    },
    vjp: (g, [x], _y, geo) => [ZERO_GRAD, ops.maxPool2dSelect(x, g, geo)],
  },
  /** R g: picks g at each window's maximum of x. */
  maxPool2dSelect: {
    infer: ([x, g], geo) => {
      expectShape('maxPool2dSelect', 'g', g.shape, x.shape);
      return { shape: poolOut('maxPool2dSelect', x.shape, geo), dtype: sameDtype('maxPool2dSelect', [x, g]) };
    },
    vjp: (g, [x], _y, geo) => [ZERO_GRAD, ops.maxPool2dGrad(x, g, geo)],
  },
  avgPool2d: {
    infer: ([x], geo) => ({ shape: poolOut('avgPool2d', x.shape, geo), dtype: x.dtype }),
    vjp: (g, [x], _y, geo) => [ops.avgPool2dGrad(g, x.shape, geo)],
  },
  avgPool2dGrad: {
    infer: ([dy], { inShape, ...geo }) => {
      expectShape('avgPool2dGrad', 'dy', dy.shape, poolOut('avgPool2dGrad', inShape, geo));
      return { shape: [...inShape], dtype: dy.dtype };
    },
    vjp: (g, _x, _y, { inShape, ...geo }) => [ops.avgPool2d(g, geo)],
  },
};

/** Names of the primitives that run a kernel (views share storage instead). */
export const kernelNames = (): string[] => Object.keys(primitives).filter((n) => !primitives[n].view);
