// Data movement: one strided N-d copy behind transpose, slice, pad, concat and broadcastTo, plus
// gather / scatterAdd along an axis. Copies are bitwise, so they take T = u32 (float32) or
// u64 (float64).

import { IDX, arg, at, copyElems, lanes, resetIdx } from './common';
import { JOB_SHAPE, J_COPY, jobsFor, partLo, runJobs, setArg, slot, ways } from './parallel';

const TILE: usize = 16;

// Copies an R x Cn block: dst[r*dR + c*dC] = src[r*sR + c*sC].
// @ts-ignore: decorator
@inline function copy2d<T>(dst: usize, dR: usize, dC: usize, src: usize, sR: usize, sC: usize, R: usize, Cn: usize): void {
  if (dC == 1 && sC == 1) {
    for (let r: usize = 0; r < R; r++) copyElems<T>(at<T>(dst, r * dR), at<T>(src, r * sR), Cn);
  } else if (dC == 1 && sC == 0) {
    // broadcast along the row
    for (let r: usize = 0; r < R; r++) {
      const v = load<T>(at<T>(src, r * sR)), d = at<T>(dst, r * dR);
      for (let c: usize = 0; c < Cn; c++) store<T>(at<T>(d, c), v);
    }
  } else if (sR == 1 && dC == 1 && R >= TILE && Cn >= TILE) {
    // transpose: tile so that both the strided reads and the contiguous writes stay in cache
    for (let r0: usize = 0; r0 < R; r0 += TILE) {
      const r1 = min(R, r0 + TILE);
      for (let c0: usize = 0; c0 < Cn; c0 += TILE) {
        const c1 = min(Cn, c0 + TILE);
        for (let r = r0; r < r1; r++) {
          const d = at<T>(dst, r * dR), s = at<T>(src, r);
          for (let c = c0; c < c1; c++) store<T>(at<T>(d, c), load<T>(at<T>(s, c * sC)));
        }
      }
    }
  } else {
    for (let r: usize = 0; r < R; r++) {
      const d = at<T>(dst, r * dR), s = at<T>(src, r * sR);
      for (let c: usize = 0; c < Cn; c++) store<T>(at<T>(d, c * dC), load<T>(at<T>(s, c * sC)));
    }
  }
}

/**
 * dst[sum i_d*ds[d]] = src[sum i_d*ss[d]] for every index of shape[0..rank) (element strides).
 * The last two dimensions are copied as a 2-D block, the others iterated.
 */
export function copyStrided<T>(rank: i32, shapeP: usize, dsP: usize, ssP: usize, dst: usize, src: usize): void {
  // Threaded build: a large copy is split along its outermost dimension, each part with its own
  // copy of the shape (outer extent cut to its range) in its job slot.
  if (rank >= 2) {
    let total: f64 = 1;
    for (let d = 0; d < rank; d++) total *= <f64>arg(shapeP, d);
    const n0 = arg(shapeP, 0);
    const parts = jobsFor(ways(total, COPY_PAR_MIN), n0);
    if (parts > 1) {
      const ds0 = <usize>arg(dsP, 0), ss0 = <usize>arg(ssP, 0);
      for (let t = 0; t < parts; t++) {
        const lo = partLo(n0, parts, t), hi = partLo(n0, parts, t + 1);
        const sh = slot(t) + JOB_SHAPE;
        memory.copy(sh, shapeP, <usize>rank << 2);
        store<i32>(sh, hi - lo);
        setArg(t, 0, J_COPY); setArg(t, 1, sizeof<T>()); setArg(t, 2, rank); setArg(t, 3, dsP); setArg(t, 4, ssP);
        setArg(t, 5, at<T>(dst, <usize>lo * ds0)); setArg(t, 6, at<T>(src, <usize>lo * ss0));
      }
      runJobs(parts);
      return;
    }
  }
  copyStridedSerial<T>(rank, shapeP, dsP, ssP, dst, src);
}

/** Elements from which a strided copy is split across threads (~20 µs of work). */
const COPY_PAR_MIN: f64 = <f64>(1 << 16);

export function copyStridedSerial<T>(rank: i32, shapeP: usize, dsP: usize, ssP: usize, dst: usize, src: usize): void {
  if (rank <= 0) { store<T>(dst, load<T>(src)); return; }
  let total: usize = 1;
  for (let d = 0; d < rank; d++) total *= <usize>arg(shapeP, d);
  if (total == 0) return;
  const last = rank - 1;
  const Cn = <usize>arg(shapeP, last), dC = <usize>arg(dsP, last), sC = <usize>arg(ssP, last);
  let R: usize = 1, dR: usize = 0, sR: usize = 0;
  let outerRank = last;
  if (rank >= 2) {
    R = <usize>arg(shapeP, last - 1); dR = <usize>arg(dsP, last - 1); sR = <usize>arg(ssP, last - 1);
    outerRank = last - 1;
  }
  let outer: usize = 1;
  for (let d = 0; d < outerRank; d++) outer *= <usize>arg(shapeP, d);
  resetIdx(rank);
  let od: usize = 0, os: usize = 0;
  for (let o: usize = 0; o < outer; o++) {
    copy2d<T>(at<T>(dst, od), dR, dC, at<T>(src, os), sR, sC, R, Cn);
    for (let d = outerRank - 1; d >= 0; d--) {
      const p = IDX + (<usize>d << 2);
      const k = load<i32>(p) + 1;
      const a = <usize>arg(dsP, d), b = <usize>arg(ssP, d);
      od += a; os += b;
      if (k < arg(shapeP, d)) { store<i32>(p, k); break; }
      store<i32>(p, 0);
      const s = <usize>arg(shapeP, d);
      od -= a * s; os -= b * s;
    }
  }
}

/** y[a, j, c] = x[a, idx[j], c] for x of shape [outer, n, inner] and J indices (i32 at idxP). */
export function gather<T>(x: usize, y: usize, outer: i32, n: i32, inner: i32, idxP: usize, J: i32): void {
  const m = <usize>inner;
  let d = y;
  for (let a = 0; a < outer; a++) {
    const base = <usize>a * <usize>n;
    for (let j = 0; j < J; j++) {
      copyElems<T>(d, at<T>(x, (base + <usize>arg(idxP, j)) * m), m);
      d = at<T>(d, m);
    }
  }
}

/** y (zero-filled here, shape [outer, n, inner]) += g[a, j, c] at y[a, idx[j], c]. */
export function scatterAdd<T>(g: usize, y: usize, outer: i32, n: i32, inner: i32, idxP: usize, J: i32): void {
  const L = lanes<T>();
  const m = <usize>inner;
  memory.fill(y, 0, <usize>outer * <usize>n * m * sizeof<T>());
  let s = g;
  for (let a = 0; a < outer; a++) {
    const base = <usize>a * <usize>n;
    for (let j = 0; j < J; j++) {
      const d = at<T>(y, (base + <usize>arg(idxP, j)) * m);
      let c: usize = 0;
      for (; c + L <= m; c += L) v128.store(at<T>(d, c), v128.add<T>(v128.load(at<T>(d, c)), v128.load(at<T>(s, c))));
      for (; c < m; c++) store<T>(at<T>(d, c), load<T>(at<T>(d, c)) + load<T>(at<T>(s, c)));
      s = at<T>(s, m);
    }
  }
}
