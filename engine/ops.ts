// User-facing operations. Each is a primitive run through the engine (engine/primitives.ts) or a
// composite of primitives, so everything here is differentiable to any order.

import type { DType, TypedArray } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';
import { fromValues, run, stopGradient } from './runtime.js';
import { Tensor } from './tensor.js';

type T = Tensor;
type Operand = Tensor | number;

// ---------- creation ----------

export interface CreateOptions { dtype?: DType }

/** Infers the shape of nested arrays. */
function shapeOfNested(v: any): number[] {
  const s: number[] = [];
  while (Array.isArray(v)) { s.push(v.length); v = v[0]; }
  return s;
}

/**
 * A tensor from numbers: nested arrays, a flat array or typed array plus a shape, or a scalar.
 * @example tensor([[1, 2], [3, 4]]); tensor(new Float32Array(6), [2, 3]); tensor(3.5, [], { dtype: 'float64' })
 */
export function tensor(values: number | ArrayLike<number> | any[], shape?: readonly number[], opts: CreateOptions = {}): T {
  let flat: ArrayLike<number>;
  if (typeof values === 'number') flat = [values];
  else if (Array.isArray(values)) flat = (values as any[]).flat(Infinity) as number[];
  else flat = values as ArrayLike<number>;
  const s = shape ?? (typeof values === 'number' ? [] : Array.isArray(values) ? shapeOfNested(values) : [flat.length]);
  if (sizeOf(s) !== flat.length) throw new Error(`tensor: ${flat.length} values do not fill shape [${s}]`);
  const dtype = opts.dtype ?? (values instanceof Float64Array ? 'float64' : 'float32');
  return fromValues(flat, s, dtype);
}

export const scalar = (v: number, dtype: DType = 'float32'): T => fromValues([v], [], dtype);
export const full = (shape: readonly number[], v: number, opts: CreateOptions = {}): T =>
  fromValues(new Float64Array(sizeOf(shape)).fill(v), shape, opts.dtype ?? 'float32');
export const zeros = (shape: readonly number[], opts: CreateOptions = {}): T => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts: CreateOptions = {}): T => full(shape, 1, opts);
export const zerosLike = (x: T): T => zeros(x.shape, { dtype: x.dtype });
export const onesLike = (x: T): T => ones(x.shape, { dtype: x.dtype });

/** [start, stop) in steps, as numpy.arange. */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions = {}): T {
  if (stop === undefined) { stop = start; start = 0; }
  const n = Math.max(0, Math.ceil((stop - start) / step));
  return fromValues(Float64Array.from({ length: n }, (_, i) => start + i * step), [n], opts.dtype ?? 'float32');
}

export function linspace(start: number, stop: number, n: number, opts: CreateOptions = {}): T {
  return fromValues(Float64Array.from({ length: n }, (_, i) => (n === 1 ? start : start + ((stop - start) * i) / (n - 1))), [n], opts.dtype ?? 'float32');
}

export function eye(n: number, opts: CreateOptions = {}): T {
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  return fromValues(v, [n, n], opts.dtype ?? 'float32');
}

/** Rows of the identity: labels [n] -> [n, depth]. */
export function oneHot(labels: ArrayLike<number>, depth: number, opts: CreateOptions = {}): T {
  const v = new Float64Array(labels.length * depth);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= depth) throw new Error(`oneHot: label ${l} is not in [0, ${depth})`);
    v[i * depth + l] = 1;
  }
  return fromValues(v, [labels.length, depth], opts.dtype ?? 'float32');
}

const lift = (v: Operand, like: T): T => (typeof v === 'number' ? fromValues([v], [], like.dtype) : v);
function pair(a: Operand, b: Operand, op: string): [T, T] {
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
  return typeof a === 'number' ? [lift(a, b as T), b as T] : [a, lift(b, a)];
}

// ---------- elementwise ----------

export const add = (a: Operand, b: Operand): T => run('add', pair(a, b, 'add'));
export const sub = (a: Operand, b: Operand): T => run('sub', pair(a, b, 'sub'));
export const mul = (a: Operand, b: Operand): T => run('mul', pair(a, b, 'mul'));
export const div = (a: Operand, b: Operand): T => run('div', pair(a, b, 'div'));
export const pow = (a: Operand, b: Operand): T => run('pow', pair(a, b, 'pow'));
export const maximum = (a: Operand, b: Operand): T => run('maximum', pair(a, b, 'maximum'));
export const minimum = (a: Operand, b: Operand): T => run('minimum', pair(a, b, 'minimum'));
/** Comparisons give 1 where true and 0 where false, in the operands' dtype; they have no gradient. */
export const greater = (a: Operand, b: Operand): T => run('greater', pair(a, b, 'greater'));
export const greaterEqual = (a: Operand, b: Operand): T => run('greaterEqual', pair(a, b, 'greaterEqual'));
export const less = (a: Operand, b: Operand): T => run('less', pair(a, b, 'less'));
export const lessEqual = (a: Operand, b: Operand): T => run('lessEqual', pair(a, b, 'lessEqual'));
export const equal = (a: Operand, b: Operand): T => run('equal', pair(a, b, 'equal'));
export const notEqual = (a: Operand, b: Operand): T => run('notEqual', pair(a, b, 'notEqual'));
/** cond ? a : b elementwise (cond nonzero means true), with broadcasting. */
export function where(cond: T, a: Operand, b: Operand): T {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : cond;
  return run('where', [cond, lift(a, like), lift(b, like)]);
}

export const neg = (x: T): T => run('neg', [x]);
export const exp = (x: T): T => run('exp', [x]);
export const log = (x: T): T => run('log', [x]);
export const sqrt = (x: T): T => run('sqrt', [x]);
export const tanh = (x: T): T => run('tanh', [x]);
export const sigmoid = (x: T): T => run('sigmoid', [x]);
export const relu = (x: T): T => run('relu', [x]);
export const abs = (x: T): T => run('abs', [x]);
export const sin = (x: T): T => run('sin', [x]);
export const cos = (x: T): T => run('cos', [x]);
export const sign = (x: T): T => run('sign', [x]);
export const square = (x: T): T => mul(x, x);
export const leakyRelu = (x: T, slope = 0.01): T => maximum(x, mul(x, slope));
export const elu = (x: T): T => where(greater(x, 0), x, sub(exp(minimum(x, 0)), 1));
export const softplus = (x: T): T => add(relu(x), log(add(exp(neg(abs(x))), 1)));

// ---------- reductions ----------

function normAxes(x: T, axes: number | readonly number[] | undefined, op: string): number[] {
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
  const r = list.map((a) => (a < 0 ? a + x.rank : a));
  for (const a of r) if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw new Error(`${op}: axis ${a} is out of range for shape [${x.shape}]`);
  return [...new Set(r)].sort((p, q) => p - q);
}

function reduce(name: 'sum' | 'max', x: T, axes: number | readonly number[] | undefined, keepdims: boolean): T {
  const ax = normAxes(x, axes, name);
  const y = run(name, [x], { axes: ax });
  return keepdims ? y : reshape(y, x.shape.filter((_, i) => !ax.includes(i)));
}

/** Sum over axes (all by default). */
export const sum = (x: T, axes?: number | readonly number[], keepdims = false): T => reduce('sum', x, axes, keepdims);
export const max = (x: T, axes?: number | readonly number[], keepdims = false): T => reduce('max', x, axes, keepdims);
export const min = (x: T, axes?: number | readonly number[], keepdims = false): T => neg(max(neg(x), axes, keepdims));
export function mean(x: T, axes?: number | readonly number[], keepdims = false): T {
  const n = normAxes(x, axes, 'mean').reduce((p, a) => p * x.shape[a], 1);
  return div(sum(x, axes, keepdims), n);
}
/** Variance (population, as batch norm uses). */
export function variance(x: T, axes?: number | readonly number[], keepdims = false): T {
  const d = sub(x, mean(x, axes, true));
  return mean(mul(d, d), axes, keepdims);
}

/** log(sum(exp(x))) computed stably; its gradient is softmax. */
export function logSumExp(x: T, axes: number | readonly number[] = -1, keepdims = false): T {
  const m = stopGradient(max(x, axes, true));
  const r = add(log(sum(exp(sub(x, m)), axes, true)), m);
  return keepdims ? r : reshape(r, x.shape.filter((_, i) => !normAxes(x, axes, 'logSumExp').includes(i)));
}
export const logSoftmax = (x: T, axis = -1): T => sub(x, logSumExp(x, axis, true));
export const softmax = (x: T, axis = -1): T => exp(logSoftmax(x, axis));

/**
 * Mean cross-entropy between logits [batch, classes] and labels, given as class indices or as a
 * probability tensor (one-hot or soft) of the same shape as the logits.
 */
export function crossEntropy(logits: T, labels: ArrayLike<number> | T): T {
  if (logits.rank !== 2) throw new Error(`crossEntropy: logits must be [batch, classes], got [${logits.shape}]`);
  const target = labels instanceof Tensor ? labels : oneHot(labels, logits.shape[1], { dtype: logits.dtype });
  if (target.shape[0] !== logits.shape[0] || target.shape[1] !== logits.shape[1]) {
    throw new Error(`crossEntropy: labels [${target.shape}] do not match logits [${logits.shape}]`);
  }
  return neg(mean(sum(mul(target, logSoftmax(logits, 1)), 1)));
}

/** Mean squared error. */
export function mse(pred: T, target: T): T {
  const d = sub(pred, target);
  return mean(mul(d, d));
}

// ---------- linear algebra ----------

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/** Matrix product with numpy semantics: 1-D operands are promoted and batch dimensions broadcast. */
export function matmul(a: T, b: T, opts: MatmulOptions = {}): T {
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const y = run('matmul', [a2, b2], { transA: !!opts.transA && a.rank > 1, transB: !!opts.transB && b.rank > 1 });
  if (a.rank > 1 && b.rank > 1) return y;
  const s = [...y.shape];
  if (b.rank === 1) s.pop();
  if (a.rank === 1) s.splice(s.length - (b.rank === 1 ? 1 : 2), 1);
  return reshape(y, s);
}
export const dot = (a: T, b: T): T => sum(mul(a, b));

// ---------- layout ----------

export function reshape(x: T, shape: readonly number[]): T {
  const s = [...shape];
  const hole = s.indexOf(-1);
  if (hole >= 0) {
    const rest = s.reduce((p, d, i) => (i === hole ? p : p * d), 1);
    s[hole] = rest === 0 ? 0 : x.size / rest;
    if (!Number.isInteger(s[hole])) throw new Error(`reshape: cannot reshape [${x.shape}] (${x.size} elements) to [${shape}]`);
  }
  return run('reshape', [x], { shape: s });
}
/** Collapses axes from startAxis on into one: [N, C, H, W] -> [N, C*H*W]. */
export const flatten = (x: T, startAxis = 1): T => reshape(x, [...x.shape.slice(0, startAxis), -1]);
export const expandDims = (x: T, axis: number): T => {
  const s = [...x.shape];
  s.splice(axis < 0 ? axis + x.rank + 1 : axis, 0, 1);
  return reshape(x, s);
};
export const squeeze = (x: T, axes?: number[]): T =>
  reshape(x, x.shape.filter((d, i) => (axes ? !(axes.includes(i) && d === 1) : d !== 1)));

/** Permutes axes (reverses them by default). */
export function transpose(x: T, perm?: readonly number[]): T {
  const p = perm ? perm.map((a) => (a < 0 ? a + x.rank : a)) : x.shape.map((_, i) => x.rank - 1 - i);
  return run('transpose', [x], { perm: p });
}
export const permute = transpose;

/** x[begin : begin + size] per axis; a size of -1 runs to the end. */
export function slice(x: T, begin: readonly number[], size?: readonly number[]): T {
  const b = x.shape.map((_, i) => begin[i] ?? 0);
  const s = x.shape.map((d, i) => (size === undefined || size[i] === undefined || size[i] < 0 ? d - b[i] : size[i]));
  return run('slice', [x], { begin: b, size: s });
}

/** Zero padding: one [before, after] pair per axis. */
export function pad(x: T, paddings: readonly (readonly [number, number])[]): T {
  if (paddings.length !== x.rank) throw new Error(`pad: ${paddings.length} paddings for shape [${x.shape}]`);
  return run('pad', [x], { before: paddings.map((p) => p[0]), after: paddings.map((p) => p[1]) });
}

export function concat(xs: readonly T[], axis = 0): T {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  const a = axis < 0 ? axis + xs[0].rank : axis;
  return xs.length === 1 ? run('reshape', [xs[0]], { shape: xs[0].shape }) : run('concat', xs, { axis: a });
}
export function stack(xs: readonly T[], axis = 0): T {
  if (xs.length === 0) throw new Error('stack: needs at least one tensor');
  return concat(xs.map((x) => expandDims(x, axis)), axis);
}
/** Splits along axis into pieces of the given sizes (or n equal pieces). */
export function split(x: T, sizes: number | readonly number[], axis = 0): T[] {
  const a = axis < 0 ? axis + x.rank : axis;
  const list = typeof sizes === 'number' ? new Array(sizes).fill(x.shape[a] / sizes) : [...sizes];
  let at = 0;
  return list.map((n) => {
    const begin = x.shape.map((_, i) => (i === a ? at : 0));
    at += n;
    return slice(x, begin, x.shape.map((d, i) => (i === a ? n : d)));
  });
}
export const broadcastTo = (x: T, shape: readonly number[]): T =>
  x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i]) ? x : run('broadcastTo', [x], { shape: [...shape] });

/** Selects entries along an axis: out[.., j, ..] = x[.., indices[j], ..] (index-select). */
export const gather = (x: T, indices: ArrayLike<number>, axis = 0): T =>
  run('gather', [x], { axis: axis < 0 ? axis + x.rank : axis, indices: Int32Array.from(indices) });
/** Adds g's slices into a zero tensor of `size` along axis at `indices`: the adjoint of gather. */
export const scatterAdd = (g: T, indices: ArrayLike<number>, axis: number, size: number): T =>
  run('scatterAdd', [g], { axis: axis < 0 ? axis + g.rank : axis, indices: Int32Array.from(indices), size });

export const cast = (x: T, dtype: DType): T => (x.dtype === dtype ? x : run('cast', [x], { dtype }));

// ---------- convolution and pooling (NCHW) ----------

type Pair = number | readonly [number, number];
const two = (v: Pair | undefined, d: number): number[] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [...v]);

export interface Conv2dOptions { stride?: Pair; padding?: Pair | 'same' | 'valid'; dilation?: Pair }
interface Geometry { stride: number[]; pad: number[]; dilation: number[] }

function convGeometry(wShape: readonly number[], o: Conv2dOptions | Geometry): Geometry {
  if ('pad' in o) return o as Geometry;
  const dilation = two(o.dilation, 1);
  let pad: number[];
  if (o.padding === 'same') pad = [0, 1].map((i) => Math.floor((dilation[i] * (wShape[2 + i] - 1)) / 2));
  else if (o.padding === 'valid' || o.padding === undefined) pad = [0, 0];
  else pad = two(o.padding, 0);
  return { stride: two(o.stride, 1), pad, dilation };
}

/** 2-D convolution (cross-correlation) of x [N, C, H, W] with filters w [O, C, KH, KW]. */
export const conv2d = (x: T, w: T, opts: Conv2dOptions | Geometry = {}): T => run('conv2d', [x, w], convGeometry(w.shape, opts));
/** The gradient of conv2d with respect to its input (a transposed convolution). */
export const conv2dGradInput = (dy: T, w: T, inShape: readonly number[], geo: Geometry): T =>
  run('conv2dGradInput', [dy, w], { inShape: [...inShape], ...geo });
/** The gradient of conv2d with respect to its filter. */
export const conv2dGradFilter = (x: T, dy: T, filterShape: readonly number[], geo: Geometry): T =>
  run('conv2dGradFilter', [x, dy], { filterShape: [...filterShape], ...geo });

export interface Pool2dOptions { stride?: Pair; padding?: Pair }
interface PoolGeometry { kernel: number[]; stride: number[]; pad: number[] }
const poolGeometry = (kernel: Pair, o: Pool2dOptions | PoolGeometry): PoolGeometry =>
  'kernel' in o ? (o as PoolGeometry) : { kernel: two(kernel, 1), stride: two(o.stride ?? kernel, 1), pad: two(o.padding, 0) };

/** Max pooling over windows of x [N, C, H, W]; the stride defaults to the window. */
export const maxPool2d = (x: T, kernel: Pair | PoolGeometry, opts: Pool2dOptions = {}): T =>
  run('maxPool2d', [x], typeof kernel === 'object' && 'kernel' in kernel ? kernel : poolGeometry(kernel as Pair, opts));
export const maxPool2dGrad = (x: T, dy: T, geo: PoolGeometry): T => run('maxPool2dGrad', [x, dy], geo);
export const maxPool2dSelect = (x: T, g: T, geo: PoolGeometry): T => run('maxPool2dSelect', [x, g], geo);
/** Average pooling; padded positions count as zeros in the window's average. */
export const avgPool2d = (x: T, kernel: Pair | PoolGeometry, opts: Pool2dOptions = {}): T =>
  run('avgPool2d', [x], typeof kernel === 'object' && 'kernel' in kernel ? kernel : poolGeometry(kernel as Pair, opts));
export const avgPool2dGrad = (dy: T, inShape: readonly number[], geo: PoolGeometry): T =>
  run('avgPool2dGrad', [dy], { inShape: [...inShape], ...geo });

// ---------- checks ----------

/** True when every value is finite (no NaN or Inf). */
export async function isFinite(x: T): Promise<boolean> {
  const v: TypedArray = await x.data();
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}

/** Indices of the maxima along the last axis, read back to the host (for accuracy, not differentiable). */
export async function argMax(x: T): Promise<Int32Array> {
  const v = await x.data();
  const n = x.shape[x.rank - 1], rows = x.size / n;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < n; j++) if (v[r * n + j] > v[r * n + best]) best = j;
    out[r] = best;
  }
  return out;
}
