// sum / max over any set of axes. The JS side collapses the input shape into runs of reduced and
// kept dimensions and passes, per dimension, the stride into the output (0 where reduced). The
// innermost run is then either reduced (a horizontal SIMD reduction per row) or kept (rows are
// folded into the output with vertical SIMD ops).

import { IDX, arg, at, lanes, resetIdx } from './common';
import { JOB_SHAPE, JOB_STRIDES, J_REDUCE, jobsFor, partLo, runJobs, setArg, slot, ways } from './parallel';

// Threaded build: reductions over at least this many input elements are split along a kept
// dimension (so every output is still reduced by one thread, in the same order).
const REDUCE_PAR_MIN: f64 = <f64>(1 << 15);

const SUM = 0;

// max is Math.max (f32.max / f32x4.max): NaN propagates and +0 beats -0, so the result does not
// depend on the order the lanes and rows are combined in.
// @ts-ignore: decorator
@inline function maxS<T>(acc: T, v: T): T {
  return max<T>(acc, v);
}

// @ts-ignore: decorator
@inline function maxV<T>(acc: v128, v: v128): v128 {
  return v128.max<T>(acc, v);
}

// @ts-ignore: decorator
@inline function hsum<T>(v: v128): T {
  if (sizeof<T>() == 4) {
    return <T>(f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
  }
  return <T>(f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1));
}

// @ts-ignore: decorator
@inline function hmax<T>(v: v128): T {
  if (sizeof<T>() == 4) {
    let m = f32x4.extract_lane(v, 0);
    m = maxS<f32>(m, f32x4.extract_lane(v, 1));
    m = maxS<f32>(m, f32x4.extract_lane(v, 2));
    return <T>maxS<f32>(m, f32x4.extract_lane(v, 3));
  }
  return <T>maxS<f64>(f64x2.extract_lane(v, 0), f64x2.extract_lane(v, 1));
}

/** Sum of x[0..n). Four vector accumulators to hide the add latency. */
export function sumRow<T>(x: usize, n: usize): T {
  const L = lanes<T>();
  let a0 = v128.splat<T>(<T>0), a1 = a0, a2 = a0, a3 = a0;
  let i: usize = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    const p = at<T>(x, i);
    a0 = v128.add<T>(a0, v128.load(p));
    a1 = v128.add<T>(a1, v128.load(p, 16));
    a2 = v128.add<T>(a2, v128.load(p, 32));
    a3 = v128.add<T>(a3, v128.load(p, 48));
  }
  for (; i + L <= n; i += L) a0 = v128.add<T>(a0, v128.load(at<T>(x, i)));
  let s = hsum<T>(v128.add<T>(v128.add<T>(a0, a1), v128.add<T>(a2, a3)));
  for (; i < n; i++) s += load<T>(at<T>(x, i));
  return s;
}

function maxRow<T>(x: usize, n: usize): T {
  const L = lanes<T>();
  let m: T = <T>-Infinity;
  let i: usize = 0;
  if (n >= 2 * L) {
    let a0 = v128.splat<T>(<T>-Infinity), a1 = a0;
    for (; i + 2 * L <= n; i += 2 * L) {
      const p = at<T>(x, i);
      a0 = maxV<T>(a0, v128.load(p));
      a1 = maxV<T>(a1, v128.load(p, 16));
    }
    m = maxS<T>(hmax<T>(a0), hmax<T>(a1));
  }
  for (; i < n; i++) m = maxS<T>(m, load<T>(at<T>(x, i)));
  return m;
}

// y[i] = y[i] op x[i] for i < n
function foldRow<T>(op: i32, y: usize, x: usize, n: usize): void {
  const L = lanes<T>();
  let i: usize = 0;
  if (op == SUM) {
    for (; i + L <= n; i += L) v128.store(at<T>(y, i), v128.add<T>(v128.load(at<T>(y, i)), v128.load(at<T>(x, i))));
    for (; i < n; i++) store<T>(at<T>(y, i), load<T>(at<T>(y, i)) + load<T>(at<T>(x, i)));
  } else {
    for (; i + L <= n; i += L) v128.store(at<T>(y, i), maxV<T>(v128.load(at<T>(y, i)), v128.load(at<T>(x, i))));
    for (; i < n; i++) store<T>(at<T>(y, i), maxS<T>(load<T>(at<T>(y, i)), load<T>(at<T>(x, i))));
  }
}

/**
 * y (outSize elements) = reduction of the contiguous x of (collapsed) shape shape[0..rank), where
 * x element (i_0..i_r) goes to y[sum i_d * os[d]]. rank >= 1; the innermost out-stride is 0 or 1.
 */
export function reduce<T>(op: i32, rank: i32, shapeP: usize, osP: usize, x: usize, y: usize, outSize: usize): void {
  const init: T = op == SUM ? <T>0 : <T>-Infinity;
  for (let i: usize = 0; i < outSize; i++) store<T>(at<T>(y, i), init);
  let total: f64 = 1;
  for (let d = 0; d < rank; d++) total *= <f64>arg(shapeP, d);
  let parts = ways(total, REDUCE_PAR_MIN);
  if (parts > 1) {
    const threads = parts;
    // The longest kept dimension (out-stride != 0); the innermost one is cut at 16 elements.
    let sd = -1, best = 1;
    for (let d = 0; d < rank; d++) {
      if (arg(osP, d) == 0) continue;
      const units = d == rank - 1 ? (arg(shapeP, d) + 15) >> 4 : arg(shapeP, d);
      if (units > best) { best = units; sd = d; }
    }
    parts = jobsFor(threads, best);
    if (sd >= 0 && parts > 1) {
      const unit = sd == rank - 1 ? 16 : 1, ext = arg(shapeP, sd);
      for (let t = 0; t < parts; t++) {
        const s = slot(t);
        const lo = min(ext, partLo(best, parts, t) * unit), hi = min(ext, partLo(best, parts, t + 1) * unit);
        // This part's shape (extent sd cut to [lo, hi)) and the input's element strides.
        memory.copy(s + JOB_SHAPE, shapeP, <usize>rank << 2);
        store<i32>(s + JOB_SHAPE + (<usize>sd << 2), hi - lo);
        let xs: usize = 1;
        for (let d = rank - 1; d >= 0; d--) {
          store<i32>(s + JOB_STRIDES + (<usize>d << 2), <i32>xs);
          xs *= <usize>arg(shapeP, d);
        }
        const xOff = <usize>lo * <usize>load<i32>(s + JOB_STRIDES + (<usize>sd << 2));
        setArg(t, 0, J_REDUCE); setArg(t, 1, sizeof<T>()); setArg(t, 2, op); setArg(t, 3, rank); setArg(t, 4, osP);
        setArg(t, 5, at<T>(x, xOff)); setArg(t, 6, at<T>(y, <usize>lo * <usize>arg(osP, sd)));
      }
      runJobs(parts);
      return;
    }
  }
  reduceInto<T>(op, rank, shapeP, osP, 0, x, y);
}

/**
 * Folds x into the (initialised) y. xsP: the input's element strides per dimension, or 0 when x is
 * contiguous over shape. The order of the terms of each output is the same either way.
 */
export function reduceInto<T>(op: i32, rank: i32, shapeP: usize, osP: usize, xsP: usize, x: usize, y: usize): void {
  const last = rank - 1;
  const n = <usize>arg(shapeP, last);
  const io = <usize>arg(osP, last);
  let outer: usize = 1;
  for (let d = 0; d < last; d++) outer *= <usize>arg(shapeP, d);
  if (n == 0 || outer == 0) return;
  resetIdx(rank);
  let ox: usize = 0, oy: usize = 0;
  for (let o: usize = 0; o < outer; o++) {
    const px = at<T>(x, ox), py = at<T>(y, oy);
    if (io == 0) {
      if (op == SUM) store<T>(py, load<T>(py) + sumRow<T>(px, n));
      else store<T>(py, maxS<T>(load<T>(py), maxRow<T>(px, n)));
    } else {
      foldRow<T>(op, py, px, n);
    }
    if (xsP == 0) ox += n;
    for (let d = last - 1; d >= 0; d--) {
      const p = IDX + (<usize>d << 2);
      const k = load<i32>(p) + 1;
      const so = <usize>arg(osP, d);
      const sx: usize = xsP == 0 ? 0 : <usize>arg(xsP, d);
      oy += so;
      ox += sx;
      if (k < arg(shapeP, d)) { store<i32>(p, k); break; }
      store<i32>(p, 0);
      oy -= so * <usize>arg(shapeP, d);
      ox -= sx * <usize>arg(shapeP, d);
    }
  }
}
