// 2-D pooling over NCHW (N*C planes of H x W). Scalar: memory-bound and cheap next to the convs.
// Window bounds are clipped once per output row and column (tables), so the per-output loops carry
// no bounds checks and few live values (V8 spilled heavily with everything in one loop nest).
// Max pooling first finds each window's argmax (first maximum in row-major order, strict `>`, like
// the reference), then forward / gradient / select are simple passes over those indices.
// Padding positions are never taps; a window with no taps gives NaN (the reference reads
// xs[undefined] there). Averages divide by the full kh*kw, accumulating in f64.

import { at, lanes, scratch, unscratch } from './common';
import { J_POOL, jobsFor, partLo, runJobs, setArg, ways } from './parallel';

/** bounds[2i], bounds[2i+1] = clipped [start, end) of window i along one axis. */
function windowBounds(n: i32, size: i32, k: i32, s: i32, p: i32): usize {
  const t = scratch(<usize>max(n, 1) << 3);
  for (let i = 0; i < n; i++) {
    const st = i * s - p;
    store<i32>(t + (<usize>i << 3), max(st, 0));
    store<i32>(t + (<usize>i << 3) + 4, min(st + k, size));
  }
  return t;
}

// A tap takes over the window when it is greater than the best so far, or NaN where the best is not
// (the first NaN wins: NaN propagates, as in PyTorch).
// @ts-ignore: decorator
@inline function takes32(v: v128, best: v128): v128 {
  return v128.or(f32x4.gt(v, best), v128.and(f32x4.ne(v, v), f32x4.eq(best, best)));
}
// @ts-ignore: decorator
@inline function takes64(v: v128, best: v128): v128 {
  return v128.or(f64x2.gt(v, best), v128.and(f64x2.ne(v, v), f64x2.eq(best, best)));
}

/**
 * 2x2 windows, stride 2, no padding (the usual CNN pooling), L outputs at a time: the four taps of
 * each window are the even/odd lanes of two input rows; first-max selection runs on whole vectors
 * and carries the winning tap's offset. Writes L indices at o for outputs (i, j..j+L).
 */
// @ts-ignore: decorator
@inline function argmax2x2<T>(x: usize, o: usize, base: i32, W: i32): void {
  const r0 = at<T>(x, <usize>base), r1 = at<T>(r0, <usize>W);
  const a0 = v128.load(r0), a1 = v128.load(r0, 16), b0 = v128.load(r1), b1 = v128.load(r1, 16);
  if (sizeof<T>() == 4) {
    let best = i32x4.shuffle(a0, a1, 0, 2, 4, 6);
    let off = i32x4.splat(0);
    let v = i32x4.shuffle(a0, a1, 1, 3, 5, 7);
    let m = takes32(v, best);
    best = v128.bitselect(v, best, m); off = v128.bitselect(i32x4.splat(1), off, m);
    v = i32x4.shuffle(b0, b1, 0, 2, 4, 6);
    m = takes32(v, best);
    best = v128.bitselect(v, best, m); off = v128.bitselect(i32x4.splat(W), off, m);
    v = i32x4.shuffle(b0, b1, 1, 3, 5, 7);
    m = takes32(v, best);
    off = v128.bitselect(i32x4.splat(W + 1), off, m);
    v128.store(o, i32x4.add(off, i32x4.add(i32x4.splat(base), i32x4(0, 2, 4, 6))));
  } else {
    let best = i64x2.shuffle(a0, a1, 0, 2);
    let off = i64x2.splat(0);
    let v = i64x2.shuffle(a0, a1, 1, 3);
    let m = takes64(v, best);
    best = v128.bitselect(v, best, m); off = v128.bitselect(i64x2.splat(1), off, m);
    v = i64x2.shuffle(b0, b1, 0, 2);
    m = takes64(v, best);
    best = v128.bitselect(v, best, m); off = v128.bitselect(i64x2.splat(<i64>W), off, m);
    v = i64x2.shuffle(b0, b1, 1, 3);
    m = takes64(v, best);
    off = v128.bitselect(i64x2.splat(<i64>(W + 1)), off, m);
    store<i32>(o, base + <i32>i64x2.extract_lane(off, 0));
    store<i32>(o, base + 2 + <i32>i64x2.extract_lane(off, 1), 4);
  }
}

/** idx[o] = plane-major index of the argmax (first maximum, or first NaN) of window o, or -1 for an empty window. */
function argmaxAll<T>(x: usize, idx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, ht: usize, wt: usize,
  halving: bool): void {
  const planeSize = <usize>H * <usize>W;
  const L = <i32>lanes<T>();
  let o = idx;
  for (let nc = 0; nc < NC; nc++) {
    const plane = <usize>nc * planeSize;
    for (let i = 0; i < OH; i++) {
      const h0 = load<i32>(ht + (<usize>i << 3)), h1 = load<i32>(ht + (<usize>i << 3) + 4);
      let j = 0;
      if (halving) {
        const rowBase = <i32>(plane + <usize>(2 * i) * <usize>W);
        for (; j + L <= OW; j += L) {
          argmax2x2<T>(x, o, rowBase + 2 * j, W);
          o += <usize>L << 2;
        }
      }
      for (; j < OW; j++) {
        const w0 = load<i32>(wt + (<usize>j << 3)), w1 = load<i32>(wt + (<usize>j << 3) + 4);
        let best: i32 = -1;
        if (h0 < h1 && w0 < w1) {
          best = <i32>(plane + <usize>h0 * <usize>W + <usize>w0);
          // The running maximum travels as integer bits so both updates are integer selects (cmov):
          // `v > bv` is a coin flip on real data, and V8 turns float selects into branches.
          if (sizeof<T>() == 4) {
            let bits = load<i32>(at<T>(x, <usize>best));
            for (let h = h0; h < h1; h++) {
              const row = <i32>(plane + <usize>h * <usize>W);
              for (let w = w0; w < w1; w++) {
                const vb = load<i32>(at<T>(x, <usize>(row + w)));
                const v = reinterpret<f32>(vb), b = reinterpret<f32>(bits);
                const gt = v > b || (v != v && b == b);
                bits = select<i32>(vb, bits, gt);
                best = select<i32>(row + w, best, gt);
              }
            }
          } else {
            let bits = load<i64>(at<T>(x, <usize>best));
            for (let h = h0; h < h1; h++) {
              const row = <i32>(plane + <usize>h * <usize>W);
              for (let w = w0; w < w1; w++) {
                const vb = load<i64>(at<T>(x, <usize>(row + w)));
                const v = reinterpret<f64>(vb), b = reinterpret<f64>(bits);
                const gt = v > b || (v != v && b == b);
                bits = select<i64>(vb, bits, gt);
                best = select<i32>(row + w, best, gt);
              }
            }
          }
        }
        store<i32>(o, best);
        o += 4;
      }
    }
  }
}

// Max-pool passes over the argmax indices: forward y = x[argmax], gradient dx[argmax] += dy, and
// select y = gx[argmax]. Planes are independent, so a large call is split over planes (threaded
// build): each job finds the argmaxes of its planes and runs the pass on them, bit-identically.
const POOL_FORWARD = 0, POOL_GRAD = 1, POOL_SELECT = 2;
/** Input elements from which a max-pool call is split across threads (~20 µs of work). */
const POOL_PAR_MIN: f64 = <f64>(1 << 16);

/**
 * The pass over planes [lo, hi): x [NC, H, W] input, a the pass's other operand (dy or gx), y its
 * output (y or dx), idx the NC*OH*OW index scratch, ht / wt the window tables.
 */
export function maxPoolRange<T>(pass: i32, lo: i32, hi: i32, x: usize, a: usize, y: usize, idx: usize,
  H: i32, W: i32, OH: i32, OW: i32, ht: usize, wt: usize, halving: bool): void {
  const inPlane = <usize>H * <usize>W, outPlane = <usize>OH * <usize>OW;
  const xs = at<T>(x, <usize>lo * inPlane), is = idx + ((<usize>lo * outPlane) << 2);
  const n = <usize>(hi - lo) * outPlane;
  argmaxAll<T>(xs, is, hi - lo, H, W, OH, OW, ht, wt, halving);
  if (pass == POOL_GRAD) {
    // Indices are relative to the range's first plane, as are its dy and dx.
    const dys = at<T>(a, <usize>lo * outPlane), dxs = at<T>(y, <usize>lo * inPlane);
    memory.fill(dxs, 0, <usize>(hi - lo) * inPlane * sizeof<T>());
    for (let o: usize = 0; o < n; o++) {
      const t = load<i32>(is + (o << 2));
      if (t >= 0) {
        const p = at<T>(dxs, <usize>t);
        store<T>(p, load<T>(p) + load<T>(at<T>(dys, o)));
      }
    }
    return;
  }
  // Forward reads x, select reads gx (same shape as x).
  const src = pass == POOL_FORWARD ? xs : at<T>(a, <usize>lo * inPlane), ys = at<T>(y, <usize>lo * outPlane);
  for (let o: usize = 0; o < n; o++) {
    const t = load<i32>(is + (o << 2));
    store<T>(at<T>(ys, o), t < 0 ? <T>NaN : load<T>(at<T>(src, <usize>t)));
  }
}

function maxPoolPass<T>(pass: i32, x: usize, a: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  const idx = scratch(max<usize>(<usize>NC * <usize>OH * <usize>OW, 1) << 2);
  const ht = windowBounds(OH, H, kh, sh, ph), wt = windowBounds(OW, W, kw, sw, pw);
  const halving = kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0;
  const parts = jobsFor(ways(<f64>NC * <f64>H * <f64>W, POOL_PAR_MIN), NC);
  if (parts > 1) {
    for (let t = 0; t < parts; t++) {
      setArg(t, 0, J_POOL); setArg(t, 1, sizeof<T>()); setArg(t, 2, pass);
      setArg(t, 3, partLo(NC, parts, t)); setArg(t, 4, partLo(NC, parts, t + 1));
      setArg(t, 5, x); setArg(t, 6, a); setArg(t, 7, y); setArg(t, 8, idx);
      setArg(t, 9, H); setArg(t, 10, W); setArg(t, 11, OH); setArg(t, 12, OW);
      setArg(t, 13, ht); setArg(t, 14, wt); setArg(t, 15, halving ? 1 : 0);
    }
    runJobs(parts);
  } else {
    maxPoolRange<T>(pass, 0, NC, x, a, y, idx, H, W, OH, OW, ht, wt, halving);
  }
  unscratch(ht);
  unscratch(wt);
  unscratch(idx);
}

export function maxPool2d<T>(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  maxPoolPass<T>(POOL_FORWARD, x, 0, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw);
}

/** dx (zero-filled here) gets dy routed to each window's argmax. */
export function maxPool2dGrad<T>(x: usize, dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  maxPoolPass<T>(POOL_GRAD, x, dy, dx, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw);
}

/** y[window] = gx[argmax of x over the window] (the forward-mode counterpart of maxPool2dGrad). */
export function maxPool2dSelect<T>(x: usize, gx: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  maxPoolPass<T>(POOL_SELECT, x, gx, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw);
}

function avgAll<T>(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, ht: usize, wt: usize, inv: f64): void {
  const planeSize = <usize>H * <usize>W;
  let o = y;
  for (let nc = 0; nc < NC; nc++) {
    const plane = at<T>(x, <usize>nc * planeSize);
    for (let i = 0; i < OH; i++) {
      const h0 = load<i32>(ht + (<usize>i << 3)), h1 = load<i32>(ht + (<usize>i << 3) + 4);
      for (let j = 0; j < OW; j++) {
        const w0 = load<i32>(wt + (<usize>j << 3)), w1 = load<i32>(wt + (<usize>j << 3) + 4);
        let acc: f64 = 0;
        for (let h = h0; h < h1; h++) {
          const row = at<T>(plane, <usize>h * <usize>W);
          for (let w = w0; w < w1; w++) acc += <f64>load<T>(at<T>(row, <usize>w));
        }
        store<T>(o, <T>(acc * inv));
        o = at<T>(o, 1);
      }
    }
  }
}

function avgGradAll<T>(dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, ht: usize, wt: usize, inv: f64): void {
  const planeSize = <usize>H * <usize>W;
  let s = dy;
  for (let nc = 0; nc < NC; nc++) {
    const plane = at<T>(dx, <usize>nc * planeSize);
    for (let i = 0; i < OH; i++) {
      const h0 = load<i32>(ht + (<usize>i << 3)), h1 = load<i32>(ht + (<usize>i << 3) + 4);
      for (let j = 0; j < OW; j++) {
        const w0 = load<i32>(wt + (<usize>j << 3)), w1 = load<i32>(wt + (<usize>j << 3) + 4);
        const g = <f64>load<T>(s) * inv;
        s = at<T>(s, 1);
        for (let h = h0; h < h1; h++) {
          const row = at<T>(plane, <usize>h * <usize>W);
          for (let w = w0; w < w1; w++) {
            const pd = at<T>(row, <usize>w);
            store<T>(pd, <T>(<f64>load<T>(pd) + g));
          }
        }
      }
    }
  }
}

export function avgPool2d<T>(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  const ht = windowBounds(OH, H, kh, sh, ph), wt = windowBounds(OW, W, kw, sw, pw);
  avgAll<T>(x, y, NC, H, W, OH, OW, ht, wt, 1.0 / (<f64>kh * <f64>kw));
  unscratch(ht);
  unscratch(wt);
}

/** dx (zero-filled here) += dy / (kh*kw) over every tap of every window. */
export function avgPool2dGrad<T>(dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void {
  memory.fill(dx, 0, <usize>NC * <usize>H * <usize>W * sizeof<T>());
  const ht = windowBounds(OH, H, kh, sh, ph), wt = windowBounds(OW, W, kw, sw, pw);
  avgGradAll<T>(dy, dx, NC, H, W, OH, OW, ht, wt, 1.0 / (<f64>kh * <f64>kw));
  unscratch(ht);
  unscratch(wt);
}
