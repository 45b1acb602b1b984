// User-facing operations. Each is a primitive run through the engine (engine/primitives.ts) or a
// composite of primitives, so everything here is differentiable to any order.

import type { DType, TypedArray } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';
import { checkAllocation, composite, fromValues, run, stopGradient } from './runtime.js';
import { Tensor } from './tensor.js';
import { checkAxis, checkDtype, checkInt, checkInts, checkNumber, checkOptions, checkShape, checkTensor, checkTensors, show } from './validate.js';

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
  else if (ArrayBuffer.isView(values) && !(values instanceof DataView)) flat = values as unknown as ArrayLike<number>;
  else throw new TypeError(`tensor: values must be a number, an array or a typed array, got ${show(values)}`);
  if (Array.isArray(flat)) {
    for (let i = 0; i < flat.length; i++) {
      if (typeof flat[i] !== 'number') throw new TypeError(`tensor: values must be numbers, got ${show(flat[i])} at flat index ${i}`);
    }
  }
  const s = shape === undefined ? (typeof values === 'number' ? [] : Array.isArray(values) ? shapeOfNested(values) : [flat.length]) : checkShape('tensor', 'shape', shape);
  if (sizeOf(s) !== flat.length) throw new RangeError(`tensor: ${flat.length} values do not fill shape [${s}]`);
  const o = checkOptions('tensor', opts);
  const dtype = o.dtype === undefined ? (values instanceof Float64Array ? 'float64' : 'float32') : checkDtype('tensor', o.dtype);
  return fromValues(flat, s, dtype);
}

export const scalar = (v: number, dtype: DType = 'float32'): T => fromValues([checkNumberOrNaN('scalar', 'value', v)], [], checkDtype('scalar', dtype), 'scalar');
function fill(op: string, shape: readonly number[], v: number, opts: CreateOptions): T {
  const s = checkShape(op, 'shape', shape), dtype = checkDtype(op, checkOptions(op, opts).dtype ?? 'float32');
  checkAllocation(op, s, dtype);   // before a host array of that size is built
  return fromValues(new Float64Array(sizeOf(s)).fill(checkNumberOrNaN(op, 'value', v)), s, dtype, op);
}
export const full = (shape: readonly number[], v: number, opts: CreateOptions = {}): T => fill('full', shape, v, opts);
/** Any number, NaN and infinities included (a fill value, not a size). */
function checkNumberOrNaN(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${op}: ${arg} must be a number, got ${show(v)}`);
  return v;
}
export const zeros = (shape: readonly number[], opts: CreateOptions = {}): T => fill('zeros', shape, 0, opts);
export const ones = (shape: readonly number[], opts: CreateOptions = {}): T => fill('ones', shape, 1, opts);
export const zerosLike = (x: T): T => fill('zerosLike', checkTensor('zerosLike', 'x', x).shape, 0, { dtype: x.dtype });
export const onesLike = (x: T): T => fill('onesLike', checkTensor('onesLike', 'x', x).shape, 1, { dtype: x.dtype });

/** [start, stop) in steps, as numpy.arange. */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions = {}): T {
  checkNumber('arange', 'start', start);
  if (stop === undefined) { stop = start; start = 0; }
  checkNumber('arange', 'stop', stop);
  if (checkNumber('arange', 'step', step) === 0) throw new RangeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const dtype = checkDtype('arange', checkOptions('arange', opts).dtype ?? 'float32');
  checkAllocation('arange', [n], dtype);
  return fromValues(Float64Array.from({ length: n }, (_, i) => start + i * step), [n], dtype, 'arange');
}

export function linspace(start: number, stop: number, n: number, opts: CreateOptions = {}): T {
  checkNumber('linspace', 'start', start); checkNumber('linspace', 'stop', stop); checkInt('linspace', 'n', n, 0);
  const dtype = checkDtype('linspace', checkOptions('linspace', opts).dtype ?? 'float32');
  checkAllocation('linspace', [n], dtype);
  return fromValues(Float64Array.from({ length: n }, (_, i) => (n === 1 ? start : start + ((stop - start) * i) / (n - 1))), [n], dtype, 'linspace');
}

export function eye(n: number, opts: CreateOptions = {}): T {
  checkInt('eye', 'n', n, 0);
  checkAllocation('eye', [n, n], checkDtype('eye', checkOptions('eye', opts).dtype ?? 'float32'));
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  return fromValues(v, [n, n], opts.dtype ?? 'float32', 'eye');
}

/** Rows of the identity: labels [n] -> [n, depth]. */
export function oneHot(labels: ArrayLike<number>, depth: number, opts: CreateOptions = {}): T {
  checkInt('oneHot', 'depth', depth, 1);
  checkInts('oneHot', 'labels', labels);
  checkAllocation('oneHot', [labels.length, depth], checkDtype('oneHot', checkOptions('oneHot', opts).dtype ?? 'float32'));
  const v = new Float64Array(labels.length * depth);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= depth) throw new Error(`oneHot: label ${l} is not in [0, ${depth})`);
    v[i * depth + l] = 1;
  }
  return fromValues(v, [labels.length, depth], opts.dtype ?? 'float32', 'oneHot');
}

const lift = (v: Operand, like: T): T => (typeof v === 'number' ? fromValues([v], [], like.dtype) : v);
function operand(op: string, arg: string, v: unknown): Operand {
  if (typeof v !== 'number' && !(v instanceof Tensor)) throw new TypeError(`${op}: ${arg} must be a Tensor or a number, got ${show(v)}`);
  return v;
}
function pair(a: Operand, b: Operand, op: string): [T, T] {
  operand(op, 'a', a); operand(op, 'b', b);
  if (typeof a === 'number' && typeof b === 'number') throw new TypeError(`${op}: at least one operand must be a tensor, got ${a} and ${b}`);
  return typeof a === 'number' ? [lift(a, b as T), b as T] : [a, lift(b, a)];
}

// ---------- elementwise ----------

/** A binary op; a number operand becomes a scalar tensor, released once the op has run. */
function binaryOp(name: string, a: Operand, b: Operand): T {
  const [x, y] = pair(a, b, name);
  const out = run(name, [x, y]);
  if (x !== a) x.dispose();   // a lifted scalar: the graph keeps it if it needs it
  if (y !== b) y.dispose();
  return out;
}

export const add = (a: Operand, b: Operand): T => binaryOp('add', a, b);
export const sub = (a: Operand, b: Operand): T => binaryOp('sub', a, b);
export const mul = (a: Operand, b: Operand): T => binaryOp('mul', a, b);
export const div = (a: Operand, b: Operand): T => binaryOp('div', a, b);
export const pow = (a: Operand, b: Operand): T => binaryOp('pow', a, b);
export const maximum = (a: Operand, b: Operand): T => binaryOp('maximum', a, b);
export const minimum = (a: Operand, b: Operand): T => binaryOp('minimum', a, b);
/** Comparisons give 1 where true and 0 where false, in the operands' dtype; they have no gradient. */
export const greater = (a: Operand, b: Operand): T => binaryOp('greater', a, b);
export const greaterEqual = (a: Operand, b: Operand): T => binaryOp('greaterEqual', a, b);
export const less = (a: Operand, b: Operand): T => binaryOp('less', a, b);
export const lessEqual = (a: Operand, b: Operand): T => binaryOp('lessEqual', a, b);
export const equal = (a: Operand, b: Operand): T => binaryOp('equal', a, b);
export const notEqual = (a: Operand, b: Operand): T => binaryOp('notEqual', a, b);
/** cond ? a : b elementwise (cond nonzero means true), with broadcasting. */
export function where(cond: T, a: Operand, b: Operand): T {
  checkTensor('where', 'cond', cond); operand('where', 'a', a); operand('where', 'b', b);
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : cond;
  return composite('where', () => run('where', [cond, lift(a, like), lift(b, like)]));
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
export const square = (x: T): T => mul(checkTensor('square', 'x', x), x);
export const leakyRelu = (x: T, slope = 0.01): T => composite('leakyRelu', () => maximum(checkTensor('leakyRelu', 'x', x), mul(x, checkNumber('leakyRelu', 'slope', slope))));
export const elu = (x: T): T => composite('elu', () => where(greater(checkTensor('elu', 'x', x), 0), x, sub(exp(minimum(x, 0)), 1)));
export const softplus = (x: T): T => composite('softplus', () => add(relu(checkTensor('softplus', 'x', x)), log(add(exp(neg(abs(x))), 1))));

// ---------- reductions ----------

function normAxes(x: T, axes: number | readonly number[] | undefined, op: string): number[] {
  checkTensor(op, 'x', x);
  if (axes !== undefined && typeof axes !== 'number' && !Array.isArray(axes)) throw new TypeError(`${op}: axes must be a whole number or an array of them, got ${show(axes)}`);
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
  const r = list.map((a, i) => checkAxis(op, typeof axes === 'number' ? 'axis' : `axes[${i}]`, a, x.rank));
  return [...new Set(r)].sort((p, q) => p - q);
}

function reduce(name: 'sum' | 'max', x: T, axes: number | readonly number[] | undefined, keepdims: boolean): T {
  const ax = normAxes(x, axes, name);
  const y = run(name, [x], { axes: ax });
  if (keepdims) return y;
  // The reshape is a view: y's handle can go at once (hot path: no scope of its own).
  const r = reshape(y, x.shape.filter((_, i) => !ax.includes(i)));
  y.dispose();
  return r;
}

/** Sum over axes (all by default). */
export const sum = (x: T, axes?: number | readonly number[], keepdims = false): T => reduce('sum', x, axes, keepdims);
export const max = (x: T, axes?: number | readonly number[], keepdims = false): T => reduce('max', x, axes, keepdims);
export const min = (x: T, axes?: number | readonly number[], keepdims = false): T => composite('min', () => { normAxes(x, axes, 'min'); return neg(max(neg(x), axes, keepdims)); });
export function mean(x: T, axes?: number | readonly number[], keepdims = false): T {
  const n = normAxes(x, axes, 'mean').reduce((p, a) => p * x.shape[a], 1);
  const total = sum(x, axes, keepdims), r = div(total, n);
  total.dispose();
  return r;
}
/** Variance (population, as batch norm uses). */
export function variance(x: T, axes?: number | readonly number[], keepdims = false): T {
  normAxes(x, axes, 'variance');
  return composite('variance', () => {
    const d = sub(x, mean(x, axes, true));
    return mean(mul(d, d), axes, keepdims);
  });
}

/** log(sum(exp(x))) computed stably; its gradient is softmax. */
export function logSumExp(x: T, axes: number | readonly number[] = -1, keepdims = false): T {
  const ax = normAxes(x, axes, 'logSumExp');
  return composite('logSumExp', () => {
    // Shifted by the max, or by 0 where the max is infinite (an all -Infinity row gives -Infinity, not NaN).
    const m0 = max(x, ax, true);
    const m = stopGradient(where(less(abs(m0), Infinity), m0, 0));
    const r = add(log(sum(exp(sub(x, m)), ax, true)), m);
    return keepdims ? r : reshape(r, x.shape.filter((_, i) => !ax.includes(i)));
  });
}
export const logSoftmax = (x: T, axis = -1): T => composite('logSoftmax', () => sub(x, logSumExp(x, axis, true)));
export const softmax = (x: T, axis = -1): T => composite('softmax', () => exp(logSoftmax(x, axis)));

/**
 * Mean cross-entropy between logits [batch, classes] and labels, given as class indices or as a
 * probability tensor (one-hot or soft) of the same shape as the logits.
 */
export function crossEntropy(logits: T, labels: ArrayLike<number> | T): T {
  checkTensor('crossEntropy', 'logits', logits);
  if (logits.rank !== 2) throw new RangeError(`crossEntropy: logits must be [batch, classes], got [${logits.shape}]`);
  return composite('crossEntropy', () => {
    const target = labels instanceof Tensor ? labels : oneHot(labels, logits.shape[1], { dtype: logits.dtype });
    if (target.shape[0] !== logits.shape[0] || target.shape[1] !== logits.shape[1]) {
      throw new RangeError(`crossEntropy: labels [${target.shape}] do not match logits [${logits.shape}]`);
    }
    return neg(mean(sum(mul(target, logSoftmax(logits, 1)), 1)));
  });
}

/** Mean squared error. */
export function mse(pred: T, target: T): T {
  return composite('mse', () => {
    const d = sub(checkTensor('mse', 'pred', pred), checkTensor('mse', 'target', target));
    return mean(mul(d, d));
  });
}

// ---------- linear algebra ----------

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/** Matrix product with numpy semantics: 1-D operands are promoted and batch dimensions broadcast. */
export function matmul(a: T, b: T, opts: MatmulOptions = {}): T {
  checkTensor('matmul', 'a', a); checkTensor('matmul', 'b', b);
  const o = checkOptions('matmul', opts);
  if (a.rank === 0 || b.rank === 0) throw new RangeError(`matmul: operands must have rank >= 1, got [${a.shape}] and [${b.shape}]`);
  return composite('matmul', () => {
    const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
    const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
    const y = run('matmul', [a2, b2], { transA: !!o.transA && a.rank > 1, transB: !!o.transB && b.rank > 1 });
    if (a.rank > 1 && b.rank > 1) return y;
    const s = [...y.shape];
    if (b.rank === 1) s.pop();
    if (a.rank === 1) s.splice(s.length - (b.rank === 1 ? 1 : 2), 1);
    return reshape(y, s);
  });
}
export const dot = (a: T, b: T): T => composite('dot', () => sum(mul(checkTensor('dot', 'a', a), checkTensor('dot', 'b', b))));

// ---------- layout ----------

export function reshape(x: T, shape: readonly number[]): T {
  checkTensor('reshape', 'x', x);
  const s = checkShape('reshape', 'shape', shape, { hole: true });
  const hole = s.indexOf(-1);
  if (hole >= 0) {
    const rest = s.reduce((p, d, i) => (i === hole ? p : p * d), 1);
    s[hole] = rest === 0 ? 0 : x.size / rest;
    if (!Number.isInteger(s[hole])) throw new RangeError(`reshape: cannot reshape [${x.shape}] (${x.size} elements) to [${shape}]`);
  }
  return run('reshape', [x], { shape: s });
}
/** Collapses axes from startAxis on into one: [N, C, H, W] -> [N, C*H*W]. */
export const flatten = (x: T, startAxis = 1): T => {
  checkTensor('flatten', 'x', x);
  const a = checkAxis('flatten', 'startAxis', startAxis, x.rank, 1);
  return reshape(x, [...x.shape.slice(0, a), -1]);
};
export const expandDims = (x: T, axis: number): T => {
  checkTensor('expandDims', 'x', x);
  const s = [...x.shape];
  s.splice(checkAxis('expandDims', 'axis', axis, x.rank, 1), 0, 1);
  return reshape(x, s);
};
/** Removes axes of size 1: the given ones (each must have size 1), or all. */
export function squeeze(x: T, axes?: readonly number[]): T {
  checkTensor('squeeze', 'x', x);
  if (axes === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const ax = checkInts('squeeze', 'axes', axes).map((a, i) => checkAxis('squeeze', `axes[${i}]`, a, x.rank));
  for (const a of ax) if (x.shape[a] !== 1) throw new RangeError(`squeeze: axis ${a} of shape [${x.shape}] has size ${x.shape[a]}, not 1`);
  return reshape(x, x.shape.filter((_, i) => !ax.includes(i)));
}

/** Permutes axes (reverses them by default). */
export function transpose(x: T, perm?: readonly number[]): T {
  checkTensor('transpose', 'x', x);
  const p = perm ? checkInts('transpose', 'perm', perm).map((a, i) => checkAxis('transpose', `perm[${i}]`, a, x.rank)) : x.shape.map((_, i) => x.rank - 1 - i);
  return run('transpose', [x], { perm: p });
}
export const permute = transpose;

/** x[begin : begin + size] per axis; a size of -1 runs to the end. */
export function slice(x: T, begin: readonly number[], size?: readonly number[]): T {
  checkTensor('slice', 'x', x);
  const bg = checkInts('slice', 'begin', begin, 0), sz = size === undefined ? [] : checkInts('slice', 'size', size, -1);
  if (bg.length > x.rank || sz.length > x.rank) throw new RangeError(`slice: begin [${bg}] / size [${sz}] have more entries than shape [${x.shape}] has axes`);
  const b = x.shape.map((_, i) => bg[i] ?? 0);
  const s = x.shape.map((d, i) => (sz[i] === undefined || sz[i] < 0 ? d - b[i] : sz[i]));
  return run('slice', [x], { begin: b, size: s });
}

/** Zero padding: one [before, after] pair per axis. */
export function pad(x: T, paddings: readonly (readonly [number, number])[]): T {
  checkTensor('pad', 'x', x);
  if (!Array.isArray(paddings) || paddings.length !== x.rank || paddings.some((p) => !Array.isArray(p) || p.length !== 2)) {
    throw new RangeError(`pad: paddings must be one [before, after] pair per axis of [${x.shape}], got ${show(paddings)}`);
  }
  const before = checkInts('pad', 'paddings (before)', paddings.map((p) => p[0]), 0), after = checkInts('pad', 'paddings (after)', paddings.map((p) => p[1]), 0);
  return run('pad', [x], { before, after });
}

export function concat(xs: readonly T[], axis = 0): T {
  checkTensors('concat', 'xs', xs);
  if (xs.length === 0) throw new RangeError('concat: needs at least one tensor');
  const a = checkAxis('concat', 'axis', axis, xs[0].rank);
  return xs.length === 1 ? run('reshape', [xs[0]], { shape: xs[0].shape }) : run('concat', xs, { axis: a });
}
export function stack(xs: readonly T[], axis = 0): T {
  checkTensors('stack', 'xs', xs);
  if (xs.length === 0) throw new RangeError('stack: needs at least one tensor');
  const a = checkAxis('stack', 'axis', axis, xs[0].rank, 1);
  return composite('stack', () => concat(xs.map((x) => expandDims(x, a)), a));
}
/** Splits along axis into pieces of the given sizes, which must add up to the axis, or n equal pieces. */
export function split(x: T, sizes: number | readonly number[], axis = 0): T[] {
  checkTensor('split', 'x', x);
  const a = checkAxis('split', 'axis', axis, x.rank), d = x.shape[a];
  let list: number[];
  if (typeof sizes === 'number') {
    checkInt('split', 'sizes', sizes, 1);
    if (d % sizes !== 0) throw new RangeError(`split: axis ${a} of [${x.shape}] (${d}) cannot be split into ${sizes} equal pieces`);
    list = new Array(sizes).fill(d / sizes);
  } else {
    list = checkInts('split', 'sizes', sizes, 0);
    const total = list.reduce((p, q) => p + q, 0);
    if (total !== d) throw new RangeError(`split: sizes [${list}] add up to ${total}, but axis ${a} of [${x.shape}] has ${d}`);
  }
  let at = 0;
  return list.map((n) => {
    const begin = x.shape.map((_, i) => (i === a ? at : 0));
    at += n;
    return slice(x, begin, x.shape.map((e, i) => (i === a ? n : e)));
  });
}
export const broadcastTo = (x: T, shape: readonly number[]): T => {
  checkTensor('broadcastTo', 'x', x);
  const s = checkShape('broadcastTo', 'shape', shape);
  return x.shape.length === s.length && x.shape.every((d, i) => d === s[i]) ? x : run('broadcastTo', [x], { shape: s });
};

/** Selects entries along an axis: out[.., j, ..] = x[.., indices[j], ..] (index-select). */
export const gather = (x: T, indices: ArrayLike<number>, axis = 0): T => {
  checkTensor('gather', 'x', x);
  const a = checkAxis('gather', 'axis', axis, x.rank);
  return run('gather', [x], { axis: a, indices: Int32Array.from(checkInts('gather', 'indices', indices, 0, x.shape[a] - 1)) });
};
/** Adds g's slices into a zero tensor of `size` along axis at `indices`: the adjoint of gather. */
export const scatterAdd = (g: T, indices: ArrayLike<number>, axis: number, size: number): T => {
  checkTensor('scatterAdd', 'g', g);
  const a = checkAxis('scatterAdd', 'axis', axis, g.rank);
  checkInt('scatterAdd', 'size', size, 0);
  return run('scatterAdd', [g], { axis: a, indices: Int32Array.from(checkInts('scatterAdd', 'indices', indices, 0, size - 1)), size });
};

export const cast = (x: T, dtype: DType): T => (checkTensor('cast', 'x', x).dtype === checkDtype('cast', dtype) ? x : run('cast', [x], { dtype }));

// ---------- convolution and pooling (NCHW) ----------

type Pair = number | readonly [number, number];
/** A number or a pair of whole numbers >= min, as [rows, columns]. */
function two(op: string, arg: string, v: unknown, d: number, min: number): number[] {
  if (v === undefined) return [d, d];
  if (typeof v === 'number') { checkInt(op, arg, v, min); return [v, v]; }
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`${op}: ${arg} must be a whole number or a pair of them, got ${show(v)}`);
  return checkInts(op, arg, v, min);
}

/**
 * Padding of convolutions and pooling, as in TensorFlow.js, Keras and PyTorch:
 * - 'valid' (default): none;
 * - 'same': the output is ceil(input / stride) (the input size at stride 1, for any window, odd or
 *   even), the total padding split with the extra row or column at the end (bottom / right), as
 *   TensorFlow.js and Keras place it (PyTorch's padding='same' does the same at stride 1);
 * - p or [ph, pw]: p rows on top and bottom, pw columns left and right (PyTorch's padding=(ph, pw));
 * - [[top, bottom], [left, right]]: each side its own (what tf.pad or F.pad then 'valid' would do).
 */
export type Padding = Pair | readonly [readonly [number, number], readonly [number, number]] | 'same' | 'valid';
export interface Conv2dOptions { stride?: Pair; padding?: Padding; dilation?: Pair }
interface Geometry { stride: number[]; pad: number[]; padEnd?: number[]; dilation: number[] }

/** [top, left] and [bottom, right] for a window of (dilated) extent k over an input of `size`. */
function pads(op: string, padding: unknown, size: readonly number[], k: readonly number[], stride: readonly number[]): { pad: number[]; padEnd: number[] } {
  if (padding === undefined || padding === 'valid') return { pad: [0, 0], padEnd: [0, 0] };
  if (padding === 'same') {
    const total = [0, 1].map((i) => Math.max((Math.ceil(size[i] / stride[i]) - 1) * stride[i] + k[i] - size[i], 0));
    const pad = total.map((t) => Math.floor(t / 2));
    return { pad, padEnd: total.map((t, i) => t - pad[i]) };
  }
  if (typeof padding === 'string') throw new RangeError(`${op}: padding must be 'same', 'valid', a whole number, [rows, columns] or [[top, bottom], [left, right]], got ${show(padding)}`);
  if (Array.isArray(padding) && padding.length === 2 && padding.every(Array.isArray)) {
    const [[top, bottom], [left, right]] = padding.map((p) => { if (p.length !== 2) throw new TypeError(`${op}: padding [[top, bottom], [left, right]] needs pairs, got ${show(padding)}`); return checkInts(op, 'padding', p, 0); });
    return { pad: [top, left], padEnd: [bottom, right] };
  }
  const p = two(op, 'padding', padding, 0, 0);
  return { pad: p, padEnd: [...p] };
}

/** The engine's own geometry (from a backward rule, or given as such), checked all the same. */
const isGeometry = (o: object): o is { pad: unknown } => 'pad' in o;
function ownGeometry(op: string, o: any): { pad: number[]; padEnd: number[] } {
  const pad = two(op, 'pad', o.pad, 0, 0);
  return { pad, padEnd: o.padEnd === undefined ? [...pad] : two(op, 'padEnd', o.padEnd, 0, 0) };
}

function convGeometry(op: string, xShape: readonly number[], wShape: readonly number[], opts: Conv2dOptions | Geometry): Geometry {
  const o = checkOptions(op, opts) as Conv2dOptions & Partial<Geometry>;
  if (wShape.length !== 4) throw new RangeError(`${op}: filter must be [O, C, KH, KW], got [${wShape}]`);
  const stride = two(op, 'stride', o.stride, 1, 1), dilation = two(op, 'dilation', o.dilation, 1, 1);
  if (isGeometry(o)) return { stride, dilation, ...ownGeometry(op, o) };
  if (o.padding === 'same' && xShape.length !== 4) throw new RangeError(`${op}: input must be [N, C, H, W], got [${xShape}]`);
  const extent = [0, 1].map((i) => dilation[i] * (wShape[2 + i] - 1) + 1);
  return { stride, dilation, ...pads(op, o.padding, xShape.slice(2), extent, stride) };
}

/**
 * Padding beyond the symmetric part the kernels take (they pad the same on both sides), added to x
 * as rows and columns of `value` (differentiable: pad and concat have rules of their own).
 */
function padRest(op: string, x: T, g: { pad: number[]; padEnd?: number[] }, value: number, most = [Infinity, Infinity]): { x: T; pad: number[] } {
  const end = g.padEnd ?? g.pad, sym = [0, 1].map((i) => Math.min(g.pad[i], end[i], most[i]));
  const rest = [[g.pad[0] - sym[0], end[0] - sym[0]], [g.pad[1] - sym[1], end[1] - sym[1]]];
  if (rest.flat().every((p) => p === 0)) return { x, pad: sym };
  if (x.rank !== 4) throw new RangeError(`${op}: input must be [N, C, H, W], got [${x.shape}]`);
  if (value === 0) return { x: pad(x, [[0, 0], [0, 0], rest[0] as [number, number], rest[1] as [number, number]]), pad: sym };
  let y = x;
  for (const axis of [2, 3]) {
    const [before, after] = rest[axis - 2];
    const slab = (n: number) => full(y.shape.map((d, i) => (i === axis ? n : d)), value, { dtype: y.dtype });
    y = concat([...(before ? [slab(before)] : []), y, ...(after ? [slab(after)] : [])], axis);
  }
  return { x: y, pad: sym };
}

/** 2-D convolution (cross-correlation) of x [N, C, H, W] with filters w [O, C, KH, KW]. */
export function conv2d(x: T, w: T, opts: Conv2dOptions | Geometry = {}): T {
  const g = convGeometry('conv2d', checkTensor('conv2d', 'x', x).shape, checkTensor('conv2d', 'w', w).shape, opts);
  return composite('conv2d', () => {
    const p = padRest('conv2d', x, g, 0);
    return run('conv2d', [p.x, w], { stride: g.stride, pad: p.pad, dilation: g.dilation });
  });
}
/** The kernels' geometry: the same padding on both sides (conv2d adds the rest to its input). */
function symmetric(op: string, g: Geometry): Geometry {
  const end = g.padEnd ?? g.pad;
  if (end[0] !== g.pad[0] || end[1] !== g.pad[1]) throw new RangeError(`${op}: padding must be the same on both sides here, got [${g.pad[0]}, ${end[0]}] x [${g.pad[1]}, ${end[1]}]`);
  return { stride: g.stride, pad: g.pad, dilation: g.dilation };
}
/** The gradient of conv2d with respect to its input (a transposed convolution). */
export const conv2dGradInput = (dy: T, w: T, inShape: readonly number[], geo: Geometry): T =>
  run('conv2dGradInput', [checkTensor('conv2dGradInput', 'dy', dy), checkTensor('conv2dGradInput', 'w', w)],
    { inShape: checkShape('conv2dGradInput', 'inShape', inShape), ...symmetric('conv2dGradInput', convGeometry('conv2dGradInput', inShape, w.shape, geo)) });
/** The gradient of conv2d with respect to its filter. */
export const conv2dGradFilter = (x: T, dy: T, filterShape: readonly number[], geo: Geometry): T =>
  run('conv2dGradFilter', [checkTensor('conv2dGradFilter', 'x', x), checkTensor('conv2dGradFilter', 'dy', dy)],
    { filterShape: checkShape('conv2dGradFilter', 'filterShape', filterShape), ...symmetric('conv2dGradFilter', convGeometry('conv2dGradFilter', x.shape, filterShape, geo)) });

export interface Pool2dOptions { stride?: Pair; padding?: Padding }
interface PoolGeometry { kernel: number[]; stride: number[]; pad: number[]; padEnd?: number[] }
function poolGeometry(op: string, xShape: readonly number[], kernel: Pair | PoolGeometry, opts: Pool2dOptions): PoolGeometry {
  if (typeof kernel === 'object' && kernel !== null && 'kernel' in kernel) {
    const g = kernel as PoolGeometry;
    return { kernel: two(op, 'kernel', g.kernel, 1, 1), stride: two(op, 'stride', g.stride, 1, 1), ...ownGeometry(op, g) };
  }
  const o = checkOptions(op, opts);
  const k = two(op, 'kernel', kernel, 1, 1), stride = two(op, 'stride', o.stride ?? kernel, 1, 1);
  if (o.padding === 'same' && xShape.length !== 4) throw new RangeError(`${op}: input must be [N, C, H, W], got [${xShape}]`);
  const p = pads(op, o.padding, xShape.slice(2), k, stride);
  // A window that lay wholly in the padding would have nothing to pool.
  if ([0, 1].some((i) => p.pad[i] >= k[i] || p.padEnd[i] >= k[i])) {
    throw new RangeError(`${op}: padding [${p.pad[0]}, ${p.padEnd[0]}] x [${p.pad[1]}, ${p.padEnd[1]}] must be smaller than the window [${k}] on every side`);
  }
  return { kernel: k, stride, ...p };
}

/** Max pooling over windows of x [N, C, H, W]; the stride defaults to the window. Padding is never selected. */
export function maxPool2d(x: T, kernel: Pair | PoolGeometry, opts: Pool2dOptions = {}): T {
  const g = poolGeometry('maxPool2d', checkTensor('maxPool2d', 'x', x).shape, kernel, opts);
  return composite('maxPool2d', () => {
    // The pooling kernels pad at most half a window on each side (as PyTorch); the rest goes to x.
    const p = padRest('maxPool2d', x, g, -Infinity, g.kernel.map((k) => Math.floor(k / 2)));
    return run('maxPool2d', [p.x], { kernel: g.kernel, stride: g.stride, pad: p.pad });
  });
}
const poolKernelGeometry = (op: string, x: readonly number[], geo: PoolGeometry) => {
  const g = poolGeometry(op, x, geo, {}), end = g.padEnd ?? g.pad;
  if (end[0] !== g.pad[0] || end[1] !== g.pad[1]) throw new RangeError(`${op}: padding must be the same on both sides here, got [${g.pad[0]}, ${end[0]}] x [${g.pad[1]}, ${end[1]}]`);
  return { kernel: g.kernel, stride: g.stride, pad: g.pad };
};
export const maxPool2dGrad = (x: T, dy: T, geo: PoolGeometry): T => run('maxPool2dGrad', [x, dy], poolKernelGeometry('maxPool2dGrad', x.shape, geo));
export const maxPool2dSelect = (x: T, g: T, geo: PoolGeometry): T => run('maxPool2dSelect', [x, g], poolKernelGeometry('maxPool2dSelect', x.shape, geo));
/** Average pooling; padded positions count as zeros in the window's average (PyTorch's count_include_pad). */
export function avgPool2d(x: T, kernel: Pair | PoolGeometry, opts: Pool2dOptions = {}): T {
  const g = poolGeometry('avgPool2d', checkTensor('avgPool2d', 'x', x).shape, kernel, opts);
  return composite('avgPool2d', () => {
    const p = padRest('avgPool2d', x, g, 0, g.kernel.map((k) => Math.floor(k / 2)));
    return run('avgPool2d', [p.x], { kernel: g.kernel, stride: g.stride, pad: p.pad });
  });
}
export const avgPool2dGrad = (dy: T, inShape: readonly number[], geo: PoolGeometry): T =>
  run('avgPool2dGrad', [dy], { inShape: checkShape('avgPool2dGrad', 'inShape', inShape), ...poolKernelGeometry('avgPool2dGrad', inShape, geo) });

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
