// Elementwise kernels: unary maps, broadcasting binary ops, where, cast.
// Semantics follow kernels/ref/backend.ts exactly (NaN propagating through maximum/minimum/relu/sign,
// signed zeros included). SIMD where the op has a vector form; transcendental functions are scalar
// (Mathf for f32, Math for f64).

import { IDX, arg, at, lanes, resetIdx } from './common';
import { JOB_SHAPE, J_BINARY, J_UNARY, jobsFor, partLo, runJobs, setArg, slot, ways } from './parallel';

// Threaded build: elementwise calls over at least this many elements are split into contiguous
// ranges (of the outermost collapsed dimension), fewer for the scalar transcendental ops.
const EW_PAR_MIN: f64 = <f64>(1 << 15);
const EW_PAR_MIN_SCALAR: f64 = <f64>(1 << 12);

// Unary op codes (must match UNARY_OPS in ../backend.ts).
const NEG = 0, EXP = 1, LOG = 2, SQRT = 3, TANH = 4, SIGMOID = 5, RELU = 6, ABS = 7, SIN = 8, COS = 9, SIGN = 10;
// Binary op codes (must match BINARY_OPS in ../backend.ts).
const ADD = 0, SUB = 1, MUL = 2, DIV = 3, POW = 4, MAXIMUM = 5, MINIMUM = 6, GREATER = 7, GREATER_EQUAL = 8,
  LESS = 9, LESS_EQUAL = 10, EQUAL = 11, NOT_EQUAL = 12;

// ---------------------------------------------------------------------------------------------
// Unary

// float32 tanh through one f64 exp: Mathf.tanh (expm1-based) is 4x slower. 1 - 2/(e^2|x| + 1) loses
// at most ~log2(1/|x|) bits of the f64 result to cancellation, far below f32 precision for
// |x| >= 2^-11; below that the cubic Taylor term is exact to f32 precision.
// @ts-ignore: decorator
@inline function tanhF32(x: f32): f32 {
  const a = Math.abs(<f64>x);
  const r = a < 0.00048828125 ? a - a * a * a / 3.0 : 1.0 - 2.0 / (Math.exp(2.0 * a) + 1.0);
  return <f32>copysign<f64>(r, <f64>x); // tanh(-0) = -0
}

// @ts-ignore: decorator
@inline function unaryScalar<T>(op: i32, x: T): T {
  const f = sizeof<T>() == 4;
  if (op == NEG) return -x;
  if (op == EXP) return f ? <T>Mathf.exp(<f32>x) : <T>Math.exp(<f64>x);
  if (op == LOG) return f ? <T>Mathf.log(<f32>x) : <T>Math.log(<f64>x);
  if (op == SQRT) return f ? <T>Mathf.sqrt(<f32>x) : <T>Math.sqrt(<f64>x);
  if (op == TANH) return f ? <T>tanhF32(<f32>x) : <T>Math.tanh(<f64>x);
  if (op == SIGMOID) return f ? <T>(<f32>1 / (<f32>1 + Mathf.exp(-<f32>x))) : <T>(1.0 / (1.0 + Math.exp(-<f64>x)));
  if (op == RELU) return x <= <T>0 ? <T>0 : x; // NaN stays NaN, -0 gives +0
  if (op == ABS) return f ? <T>Mathf.abs(<f32>x) : <T>Math.abs(<f64>x);
  if (op == SIN) return f ? <T>Mathf.sin(<f32>x) : <T>Math.sin(<f64>x);
  if (op == COS) return f ? <T>Mathf.cos(<f32>x) : <T>Math.cos(<f64>x);
  // SIGN: both zeros map to +0, NaN stays NaN, like the reference.
  return x > <T>0 ? <T>1 : x < <T>0 ? <T>-1 : x == <T>0 ? <T>0 : x;
}

// @ts-ignore: decorator
@inline function unaryHasVec(op: i32): bool {
  return op == NEG || op == SQRT || op == RELU || op == ABS || op == SIGN;
}

// @ts-ignore: decorator
@inline function unaryVec<T>(op: i32, v: v128): v128 {
  const zero = v128.splat<T>(<T>0);
  if (op == NEG) return v128.neg<T>(v);
  if (op == SQRT) return v128.sqrt<T>(v);
  // x & ~(x <= 0): lanes <= 0 (-0 included) become +0, NaN lanes (the compare is false) stay NaN.
  // One instruction more than pmax(0, x), which dropped NaN.
  if (op == RELU) return v128.andnot(v, v128.le<T>(v, zero));
  if (op == ABS) return v128.abs<T>(v);
  const one = v128.splat<T>(<T>1);
  const s = v128.sub<T>(v128.and(v128.gt<T>(v, zero), one), v128.and(v128.lt<T>(v, zero), one));
  return v128.bitselect(v, s, v128.ne<T>(v, v)); // NaN lanes keep x
}

// @ts-ignore: decorator
@inline function unaryLoop<T>(op: i32, x: usize, y: usize, n: usize): void {
  let i: usize = 0;
  if (unaryHasVec(op)) {
    const L = lanes<T>();
    for (; i + 2 * L <= n; i += 2 * L) {
      const v0 = v128.load(at<T>(x, i)), v1 = v128.load(at<T>(x, i), 16);
      v128.store(at<T>(y, i), unaryVec<T>(op, v0));
      v128.store(at<T>(y, i), unaryVec<T>(op, v1), 16);
    }
  }
  for (; i < n; i++) store<T>(at<T>(y, i), unaryScalar<T>(op, load<T>(at<T>(x, i))));
}

// One function per op, so each specialised loop is compiled on its own: V8 generated 5x slower
// code for the transcendental loops when all of them sat inlined in one big dispatch function.
function uNeg<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(NEG, x, y, n); }
function uExp<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(EXP, x, y, n); }
function uLog<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(LOG, x, y, n); }
function uSqrt<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(SQRT, x, y, n); }
function uTanh<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(TANH, x, y, n); }
function uSigmoid<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(SIGMOID, x, y, n); }
function uRelu<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(RELU, x, y, n); }
function uAbs<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(ABS, x, y, n); }
function uSin<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(SIN, x, y, n); }
function uCos<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(COS, x, y, n); }
function uSign<T>(x: usize, y: usize, n: usize): void { unaryLoop<T>(SIGN, x, y, n); }

/** y[i] = f(x[i]) for i < n. */
export function unary<T>(op: i32, x: usize, y: usize, n: usize): void {
  const threads = ways(<f64>n, unaryHasVec(op) ? EW_PAR_MIN : EW_PAR_MIN_SCALAR);
  // Ranges cut at 64-byte boundaries of y.
  const unit: usize = 64 / sizeof<T>();
  const units = <i32>((n + unit - 1) / unit);
  const parts = jobsFor(threads, units);
  if (parts > 1) {
    for (let t = 0; t < parts; t++) {
      const i0 = min(n, <usize>partLo(units, parts, t) * unit), i1 = min(n, <usize>partLo(units, parts, t + 1) * unit);
      setArg(t, 0, J_UNARY); setArg(t, 1, sizeof<T>()); setArg(t, 2, op);
      setArg(t, 3, at<T>(x, i0)); setArg(t, 4, at<T>(y, i0)); setArg(t, 5, i1 - i0);
    }
    runJobs(parts);
    return;
  }
  unarySerial<T>(op, x, y, n);
}

export function unarySerial<T>(op: i32, x: usize, y: usize, n: usize): void {
  switch (op) {
    case NEG: uNeg<T>(x, y, n); break;
    case EXP: uExp<T>(x, y, n); break;
    case LOG: uLog<T>(x, y, n); break;
    case SQRT: uSqrt<T>(x, y, n); break;
    case TANH: uTanh<T>(x, y, n); break;
    case SIGMOID: uSigmoid<T>(x, y, n); break;
    case RELU: uRelu<T>(x, y, n); break;
    case ABS: uAbs<T>(x, y, n); break;
    case SIN: uSin<T>(x, y, n); break;
    case COS: uCos<T>(x, y, n); break;
    case SIGN: uSign<T>(x, y, n); break;
    default: unreachable();
  }
}

// ---------------------------------------------------------------------------------------------
// Binary

// @ts-ignore: decorator
@inline function binScalar<T>(op: i32, a: T, b: T): T {
  if (op == ADD) return a + b;
  if (op == SUB) return a - b;
  if (op == MUL) return a * b;
  if (op == DIV) return a / b;
  if (op == POW) {
    // 1^y = 1 and (-1)^(+-Inf) = 1, as IEEE 754's pow, C and PyTorch (and the reference) define them.
    if (a == <T>1 || (a == <T>-1 && abs<T>(b) == <T>Infinity)) return <T>1;
    return sizeof<T>() == 4 ? <T>Mathf.pow(<f32>a, <f32>b) : <T>Math.pow(<f64>a, <f64>b);
  }
  // f32.max / f32.min: NaN if either is NaN, max(-0, +0) = +0 (Math.max, like the reference).
  if (op == MAXIMUM) return max<T>(a, b);
  if (op == MINIMUM) return min<T>(a, b);
  if (op == GREATER) return a > b ? <T>1 : <T>0;
  if (op == GREATER_EQUAL) return a >= b ? <T>1 : <T>0;
  if (op == LESS) return a < b ? <T>1 : <T>0;
  if (op == LESS_EQUAL) return a <= b ? <T>1 : <T>0;
  if (op == EQUAL) return a == b ? <T>1 : <T>0;
  return a != b ? <T>1 : <T>0;
}

// @ts-ignore: decorator
@inline function binVec<T>(op: i32, a: v128, b: v128): v128 {
  const one = v128.splat<T>(<T>1);
  if (op == ADD) return v128.add<T>(a, b);
  if (op == SUB) return v128.sub<T>(a, b);
  if (op == MUL) return v128.mul<T>(a, b);
  if (op == DIV) return v128.div<T>(a, b);
  // f32x4.max / min are IEEE 754-2019 maximum / minimum: Math.max semantics in one instruction.
  if (op == MAXIMUM) return v128.max<T>(a, b);
  if (op == MINIMUM) return v128.min<T>(a, b);
  if (op == GREATER) return v128.and(v128.gt<T>(a, b), one);
  if (op == GREATER_EQUAL) return v128.and(v128.ge<T>(a, b), one);
  if (op == LESS) return v128.and(v128.lt<T>(a, b), one);
  if (op == LESS_EQUAL) return v128.and(v128.le<T>(a, b), one);
  if (op == EQUAL) return v128.and(v128.eq<T>(a, b), one);
  return v128.and(v128.ne<T>(a, b), one);
}

// One output row: y[i] = a[i*sa] op b[i*sb]. Contiguous and scalar-broadcast operands get SIMD.
// @ts-ignore: decorator
@inline function binRowOp<T>(op: i32, a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void {
  const L = lanes<T>();
  let i: usize = 0;
  if (op != POW) {
    if (sa == 1 && sb == 1) {
      for (; i + L <= n; i += L) v128.store(at<T>(y, i), binVec<T>(op, v128.load(at<T>(a, i)), v128.load(at<T>(b, i))));
      for (; i < n; i++) store<T>(at<T>(y, i), binScalar<T>(op, load<T>(at<T>(a, i)), load<T>(at<T>(b, i))));
      return;
    }
    if (sa == 1 && sb == 0) {
      const bs = load<T>(b), bv = v128.splat<T>(bs);
      for (; i + L <= n; i += L) v128.store(at<T>(y, i), binVec<T>(op, v128.load(at<T>(a, i)), bv));
      for (; i < n; i++) store<T>(at<T>(y, i), binScalar<T>(op, load<T>(at<T>(a, i)), bs));
      return;
    }
    if (sa == 0 && sb == 1) {
      const as = load<T>(a), av = v128.splat<T>(as);
      for (; i + L <= n; i += L) v128.store(at<T>(y, i), binVec<T>(op, av, v128.load(at<T>(b, i))));
      for (; i < n; i++) store<T>(at<T>(y, i), binScalar<T>(op, as, load<T>(at<T>(b, i))));
      return;
    }
  }
  for (; i < n; i++) store<T>(at<T>(y, i), binScalar<T>(op, load<T>(at<T>(a, i * sa)), load<T>(at<T>(b, i * sb))));
}

function bAdd<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(ADD, a, sa, b, sb, y, n); }
function bSub<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(SUB, a, sa, b, sb, y, n); }
function bMul<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(MUL, a, sa, b, sb, y, n); }
function bDiv<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(DIV, a, sa, b, sb, y, n); }
function bPow<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(POW, a, sa, b, sb, y, n); }
function bMaximum<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(MAXIMUM, a, sa, b, sb, y, n); }
function bMinimum<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(MINIMUM, a, sa, b, sb, y, n); }
function bGreater<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(GREATER, a, sa, b, sb, y, n); }
function bGreaterEqual<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(GREATER_EQUAL, a, sa, b, sb, y, n); }
function bLess<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(LESS, a, sa, b, sb, y, n); }
function bLessEqual<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(LESS_EQUAL, a, sa, b, sb, y, n); }
function bEqual<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(EQUAL, a, sa, b, sb, y, n); }
function bNotEqual<T>(a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void { binRowOp<T>(NOT_EQUAL, a, sa, b, sb, y, n); }

// Dispatch per row, to one out-of-line loop per op (see unary).
function binRow<T>(op: i32, a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void {
  switch (op) {
    case ADD: bAdd<T>(a, sa, b, sb, y, n); break;
    case SUB: bSub<T>(a, sa, b, sb, y, n); break;
    case MUL: bMul<T>(a, sa, b, sb, y, n); break;
    case DIV: bDiv<T>(a, sa, b, sb, y, n); break;
    case POW: bPow<T>(a, sa, b, sb, y, n); break;
    case MAXIMUM: bMaximum<T>(a, sa, b, sb, y, n); break;
    case MINIMUM: bMinimum<T>(a, sa, b, sb, y, n); break;
    case GREATER: bGreater<T>(a, sa, b, sb, y, n); break;
    case GREATER_EQUAL: bGreaterEqual<T>(a, sa, b, sb, y, n); break;
    case LESS: bLess<T>(a, sa, b, sb, y, n); break;
    case LESS_EQUAL: bLessEqual<T>(a, sa, b, sb, y, n); break;
    case EQUAL: bEqual<T>(a, sa, b, sb, y, n); break;
    case NOT_EQUAL: bNotEqual<T>(a, sa, b, sb, y, n); break;
    default: unreachable();
  }
}

/**
 * y = a op b over the (already collapsed) output shape shape[0..rank) with per-input strides
 * (0 on broadcast dimensions). y is contiguous. rank >= 1.
 */
export function binary<T>(op: i32, rank: i32, shapeP: usize, saP: usize, sbP: usize, a: usize, b: usize, y: usize): void {
  const parts = splitOuter(rank, shapeP, op == POW ? EW_PAR_MIN_SCALAR : EW_PAR_MIN);
  if (parts > 1) {
    for (let t = 0; t < parts; t++) {
      const d0 = outerLo(rank, shapeP, parts, t);
      setArg(t, 0, J_BINARY); setArg(t, 1, sizeof<T>()); setArg(t, 2, op); setArg(t, 3, rank);
      setArg(t, 4, saP); setArg(t, 5, sbP); setArg(t, 6, at<T>(a, d0 * <usize>arg(saP, 0)));
      setArg(t, 7, at<T>(b, d0 * <usize>arg(sbP, 0))); setArg(t, 8, at<T>(y, d0 * innerSize(rank, shapeP)));
    }
    runJobs(parts);
    return;
  }
  binarySerial<T>(op, rank, shapeP, saP, sbP, a, b, y);
}

/** Ways to split an elementwise call over `shape` (1: inline) along its outermost dimension. */
function splitOuter(rank: i32, shapeP: usize, minWork: f64): i32 {
  let total: f64 = 1;
  for (let d = 0; d < rank; d++) total *= <f64>arg(shapeP, d);
  const threads = ways(total, minWork);
  if (threads <= 1) return 1;
  const units = rank == 1 ? (arg(shapeP, 0) + 15) >> 4 : arg(shapeP, 0);
  const parts = jobsFor(threads, units);
  if (parts <= 1) return 1;
  // Each part gets its own copy of the shape with the outermost extent cut to its range.
  for (let t = 0; t < parts; t++) {
    const sh = slot(t) + JOB_SHAPE;
    memory.copy(sh, shapeP, <usize>rank << 2);
    const lo = outerLo(rank, shapeP, parts, t), hi = outerLo(rank, shapeP, parts, t + 1);
    store<i32>(sh, <i32>(hi - lo));
  }
  return parts;
}

/** First outermost index of part t (rank 1: cut at multiples of 16 elements). */
function outerLo(rank: i32, shapeP: usize, parts: i32, t: i32): usize {
  const n = arg(shapeP, 0);
  if (rank == 1) return <usize>min(n, partLo((n + 15) >> 4, parts, t) << 4);
  return <usize>partLo(n, parts, t);
}

/** Elements per outermost index of a contiguous output. */
function innerSize(rank: i32, shapeP: usize): usize {
  let m: usize = 1;
  for (let d = 1; d < rank; d++) m *= <usize>arg(shapeP, d);
  return m;
}

export function binarySerial<T>(op: i32, rank: i32, shapeP: usize, saP: usize, sbP: usize, a: usize, b: usize, y: usize): void {
  const last = rank - 1;
  const n = <usize>arg(shapeP, last);
  const ia = <usize>arg(saP, last), ib = <usize>arg(sbP, last);
  let outer: usize = 1;
  for (let d = 0; d < last; d++) outer *= <usize>arg(shapeP, d);
  if (n == 0 || outer == 0) return;
  resetIdx(rank);
  let oa: usize = 0, ob: usize = 0, oy: usize = 0;
  for (let o: usize = 0; o < outer; o++) {
    binRow<T>(op, at<T>(a, oa), ia, at<T>(b, ob), ib, at<T>(y, oy), n);
    oy += n;
    for (let d = last - 1; d >= 0; d--) {
      const p = IDX + (<usize>d << 2);
      const k = load<i32>(p) + 1;
      const sa = <usize>arg(saP, d), sb = <usize>arg(sbP, d);
      oa += sa; ob += sb;
      if (k < arg(shapeP, d)) { store<i32>(p, k); break; }
      store<i32>(p, 0);
      const s = <usize>arg(shapeP, d);
      oa -= sa * s; ob -= sb * s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// where(c, a, b): c != 0 ? a : b (NaN counts as true, like `c !== 0`).

// @ts-ignore: decorator
@inline function whereRow<T>(c: usize, sc: usize, a: usize, sa: usize, b: usize, sb: usize, y: usize, n: usize): void {
  let i: usize = 0;
  if (sc == 1 && sa == 1 && sb == 1) {
    const L = lanes<T>(), zero = v128.splat<T>(<T>0);
    for (; i + L <= n; i += L) {
      const m = v128.ne<T>(v128.load(at<T>(c, i)), zero);
      v128.store(at<T>(y, i), v128.bitselect(v128.load(at<T>(a, i)), v128.load(at<T>(b, i)), m));
    }
  }
  for (; i < n; i++) {
    store<T>(at<T>(y, i), load<T>(at<T>(c, i * sc)) != <T>0 ? load<T>(at<T>(a, i * sa)) : load<T>(at<T>(b, i * sb)));
  }
}

export function where<T>(rank: i32, shapeP: usize, scP: usize, saP: usize, sbP: usize, c: usize, a: usize, b: usize, y: usize): void {
  const last = rank - 1;
  const n = <usize>arg(shapeP, last);
  const ic = <usize>arg(scP, last), ia = <usize>arg(saP, last), ib = <usize>arg(sbP, last);
  let outer: usize = 1;
  for (let d = 0; d < last; d++) outer *= <usize>arg(shapeP, d);
  if (n == 0 || outer == 0) return;
  resetIdx(rank);
  let oc: usize = 0, oa: usize = 0, ob: usize = 0, oy: usize = 0;
  for (let o: usize = 0; o < outer; o++) {
    whereRow<T>(at<T>(c, oc), ic, at<T>(a, oa), ia, at<T>(b, ob), ib, at<T>(y, oy), n);
    oy += n;
    for (let d = last - 1; d >= 0; d--) {
      const p = IDX + (<usize>d << 2);
      const k = load<i32>(p) + 1;
      const sc = <usize>arg(scP, d), sa = <usize>arg(saP, d), sb = <usize>arg(sbP, d);
      oc += sc; oa += sa; ob += sb;
      if (k < arg(shapeP, d)) { store<i32>(p, k); break; }
      store<i32>(p, 0);
      const s = <usize>arg(shapeP, d);
      oc -= sc * s; oa -= sa * s; ob -= sb * s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cast

export function castF32F64(x: usize, y: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) store<f64>(y + (i << 3), <f64>load<f32>(x + (i << 2)));
}

export function castF64F32(x: usize, y: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) store<f32>(y + (i << 2), <f32>load<f64>(x + (i << 3)));
}
