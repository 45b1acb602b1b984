// GEMM: C (+)= A B with A(m,k) = A[m*rsA + k*csA] and B(k,n) = B[k*rsB + n*csB] (element strides,
// so transposed operands are just other strides) and C row-major with leading dimension ldc.
//
// Blocked in the usual way (NC columns of B, KC deep, MC rows of A), both operands packed:
//  - B into panels NR wide (NR = 32 bytes: 8 f32 or 4 f64), k-major, zero-padded;
//  - A into panels MR = 4 rows deep with every element already splatted to a full v128, so the
//    micro-kernel only does plain v128 loads (V8 emits a lea + broadcast for load32_splat).
// The 4 x NR micro-kernel keeps its 8 accumulators, the 2 B vectors and 4 A vectors of one k step
// in registers: V8 hoists all loads of a basic block to its top, and 8 + 6 + 1 temp = 15 is exactly
// the xmm registers it allocates, so larger tiles spill (measured: 5x8, 6x8, 4x12 all slower).
// Baseline SIMD has no fused multiply-add, so each step is a mul and an add (~36 GFLOP/s f32 at
// N=512 on the 3.2 GHz Zen 3 this was tuned on). The pack buffers (~2.3 MiB) are allocated once.

import { at } from './common';
import { J_GEMM, J_MATMUL, jobsFor, partLo, runJobs, setArg, ways } from './parallel';

const MR = 4;
const KC = 256; // depth block, even
const MC = 64; // rows of A per packed block: MC*KC*16 bytes = 256 KiB, sits in L2
const NCP = 256; // B panels per packed block
// No separate small-matrix path: packing wins from 8x8x8 up and ties at 4x4x4 (measured).
const PANEL: usize = 32; // bytes per k step of a B panel

let packA: usize = 0;
let packB: usize = 0;
let tileBuf: usize = 0;

/** Bytes of the pack buffers of one instance (packA, packB, tileBuf, each 16-aligned). */
export const PACK_BYTES: usize = <usize>(MC * KC * 16) + <usize>(NCP * KC) * PANEL + <usize>MR * PANEL;

/** Gives this instance its pack buffers (worker instances: they must never allocate). */
export function setPackBuffers(p: usize): void {
  packA = p;
  packB = p + <usize>(MC * KC * 16);
  tileBuf = packB + <usize>(NCP * KC) * PANEL;
}

function ensureBuffers(): void {
  if (packA == 0) setPackBuffers(heap.alloc(PACK_BYTES));
}

/**
 * C[0..4, 0..NR) = (C +) sum over k < kc of A[k] (x) B[k]; kc is even (panels are zero-padded).
 * `c` and `ldc` are in bytes.
 */
function microKernel<T>(kc: i32, a: usize, b: usize, c: usize, ldc: usize, accumulate: bool): void {
  let c00 = v128.splat<T>(<T>0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (let k = 0; k < kc; k += 2) {
    let b0 = v128.load(b), b1 = v128.load(b, 16);
    let av = v128.load(a);
    c00 = v128.add<T>(c00, v128.mul<T>(av, b0)); c01 = v128.add<T>(c01, v128.mul<T>(av, b1));
    av = v128.load(a, 16);
    c10 = v128.add<T>(c10, v128.mul<T>(av, b0)); c11 = v128.add<T>(c11, v128.mul<T>(av, b1));
    av = v128.load(a, 32);
    c20 = v128.add<T>(c20, v128.mul<T>(av, b0)); c21 = v128.add<T>(c21, v128.mul<T>(av, b1));
    av = v128.load(a, 48);
    c30 = v128.add<T>(c30, v128.mul<T>(av, b0)); c31 = v128.add<T>(c31, v128.mul<T>(av, b1));
    // Second k step in its own basic block (ldc is never 0, but neither binaryen nor V8 can know):
    // this stops V8 from hoisting its 6 loads above the first step's arithmetic, which would spill.
    if (ldc != 0) {
      b0 = v128.load(b, 32); b1 = v128.load(b, 48);
      av = v128.load(a, 64);
      c00 = v128.add<T>(c00, v128.mul<T>(av, b0)); c01 = v128.add<T>(c01, v128.mul<T>(av, b1));
      av = v128.load(a, 80);
      c10 = v128.add<T>(c10, v128.mul<T>(av, b0)); c11 = v128.add<T>(c11, v128.mul<T>(av, b1));
      av = v128.load(a, 96);
      c20 = v128.add<T>(c20, v128.mul<T>(av, b0)); c21 = v128.add<T>(c21, v128.mul<T>(av, b1));
      av = v128.load(a, 112);
      c30 = v128.add<T>(c30, v128.mul<T>(av, b0)); c31 = v128.add<T>(c31, v128.mul<T>(av, b1));
    }
    a += 128;
    b += 64;
  }
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
  if (accumulate) {
    c00 = v128.add<T>(c00, v128.load(c)); c01 = v128.add<T>(c01, v128.load(c, 16));
    c10 = v128.add<T>(c10, v128.load(c1)); c11 = v128.add<T>(c11, v128.load(c1, 16));
    c20 = v128.add<T>(c20, v128.load(c2)); c21 = v128.add<T>(c21, v128.load(c2, 16));
    c30 = v128.add<T>(c30, v128.load(c3)); c31 = v128.add<T>(c31, v128.load(c3, 16));
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16);
  v128.store(c3, c30); v128.store(c3, c31, 16);
}

/** Packs rows [0, mc) x depth [0, kc) of A (pointer already at the block origin). */
function packABlock<T>(A: usize, rsA: usize, csA: usize, mc: i32, kc: i32, kcp: i32, dst: usize): void {
  const zero = v128.splat<T>(<T>0);
  const cs = csA * sizeof<T>(), rs = rsA * sizeof<T>();
  for (let ir = 0; ir < mc; ir += MR) {
    const mr = min(MR, mc - ir);
    let d = dst + <usize>(ir * kcp) * 16;
    let p = A + <usize>ir * rs;
    if (mr == MR) {
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load_splat<T>(p));
        v128.store(d, v128.load_splat<T>(p + rs), 16);
        v128.store(d, v128.load_splat<T>(p + 2 * rs), 32);
        v128.store(d, v128.load_splat<T>(p + 3 * rs), 48);
        p += cs;
        d += 64;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let i = 0; i < MR; i++) v128.store(d + (<usize>i << 4), i < mr ? v128.load_splat<T>(p + <usize>i * rs) : zero);
        p += cs;
        d += 64;
      }
    }
    for (let k = kc; k < kcp; k++) {
      v128.store(d, zero); v128.store(d, zero, 16); v128.store(d, zero, 32); v128.store(d, zero, 48);
      d += 64;
    }
  }
}

/** Packs depth [0, kc) x columns [0, nc) of B (pointer at the block origin) into NR-wide panels. */
function packBBlock<T>(B: usize, rsB: usize, csB: usize, kc: i32, kcp: i32, nc: i32, dst: usize): void {
  const NR = <i32>(PANEL / sizeof<T>());
  const zero = v128.splat<T>(<T>0);
  const rs = rsB * sizeof<T>(), cs = csB * sizeof<T>();
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    let d = dst + <usize>(jr / NR) * <usize>kcp * PANEL;
    const base = B + <usize>jr * cs;
    if (nr == NR && csB == 1) {
      let p = base;
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load(p)); v128.store(d, v128.load(p, 16), 16);
        p += rs;
        d += PANEL;
      }
    } else if (nr == NR && rsB == 1) {
      // Transposed B: each panel column is contiguous along k. Move L x L blocks (L = lanes)
      // through registers with shuffles instead of element by element.
      let k = 0;
      if (sizeof<T>() == 4) {
        for (; k + 4 <= kc; k += 4) {
          const kk = <usize>k << 2, dk = d + <usize>k * PANEL;
          for (let j = 0; j < 8; j += 4) {
            const s = base + <usize>j * cs + kk;
            const r0 = v128.load(s), r1 = v128.load(s + cs), r2 = v128.load(s + 2 * cs), r3 = v128.load(s + 3 * cs);
            const lo01 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), hi01 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
            const lo23 = i32x4.shuffle(r2, r3, 0, 4, 1, 5), hi23 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
            const o = dk + (<usize>j << 2);
            v128.store(o, i64x2.shuffle(lo01, lo23, 0, 2));
            v128.store(o + PANEL, i64x2.shuffle(lo01, lo23, 1, 3));
            v128.store(o + 2 * PANEL, i64x2.shuffle(hi01, hi23, 0, 2));
            v128.store(o + 3 * PANEL, i64x2.shuffle(hi01, hi23, 1, 3));
          }
        }
      } else {
        for (; k + 2 <= kc; k += 2) {
          const kk = <usize>k << 3, dk = d + <usize>k * PANEL;
          for (let j = 0; j < 4; j += 2) {
            const s = base + <usize>j * cs + kk;
            const r0 = v128.load(s), r1 = v128.load(s + cs);
            const o = dk + (<usize>j << 3);
            v128.store(o, i64x2.shuffle(r0, r1, 0, 2));
            v128.store(o + PANEL, i64x2.shuffle(r0, r1, 1, 3));
          }
        }
      }
      for (; k < kc; k++) {
        const dk = d + <usize>k * PANEL;
        for (let j = 0; j < NR; j++) store<T>(at<T>(dk, <usize>j), load<T>(at<T>(base + <usize>j * cs, <usize>k)));
      }
      d += <usize>kc * PANEL;
    } else {
      for (let k = 0; k < kc; k++) {
        const row = base + <usize>k * rs;
        v128.store(d, zero); v128.store(d, zero, 16);
        for (let j = 0; j < nr; j++) store<T>(at<T>(d, <usize>j), load<T>(row + <usize>j * cs));
        d += PANEL;
      }
    }
    for (let k = kc; k < kcp; k++) { v128.store(d, zero); v128.store(d, zero, 16); d += PANEL; }
  }
}

// Virtual B operand for convolutions: instead of a materialised im2col matrix, the packer gathers
// straight from a zero-padded input X through two i32 offset tables (element offsets):
//   BV_CONV    B(k, n) = X[pix[n] + tap[k]]   (forward: k = filter tap, n = output pixel)
//   BV_CONV_T  B(k, n) = X[pix[k] + tap[n]]   (filter gradient: k = output pixel, n = tap)
// The two terms separate because an output pixel fixes (image, top-left corner) and a tap fixes
// (channel, dy*dilation, dx*dilation).
export const BV_NONE = 0;
export const BV_CONV = 1;
export const BV_CONV_T = 2;
let bvMode = BV_NONE;
let bvX: usize = 0;
let bvPix: usize = 0;
let bvTap: usize = 0;

/** Makes the next gemm call read B virtually (its B pointer and strides are then ignored). */
export function setVirtualB(mode: i32, x: usize, pix: usize, tap: usize): void {
  bvMode = mode;
  bvX = x;
  bvPix = pix;
  bvTap = tap;
}

function packBVirtual<T>(mode: i32, k0: i32, kc: i32, kcp: i32, n0: i32, nc: i32, dst: usize): void {
  const NR = <i32>(PANEL / sizeof<T>());
  const X = bvX;
  const zero = v128.splat<T>(<T>0);
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    let d = dst + <usize>(jr / NR) * <usize>kcp * PANEL;
    if (mode == BV_CONV) {
      const pix = bvPix + (<usize>(n0 + jr) << 2), tap = bvTap + (<usize>k0 << 2);
      const b0 = load<i32>(pix);
      let contiguous = nr == NR;
      for (let j = 1; j < nr; j++) if (load<i32>(pix + (<usize>j << 2)) != b0 + j) contiguous = false;
      if (contiguous) {
        // NR neighbouring pixels of one output row (stride 1): one contiguous run of X per tap
        for (let k = 0; k < kc; k++) {
          const s = at<T>(X, <usize>(b0 + load<i32>(tap + (<usize>k << 2))));
          v128.store(d, v128.load(s)); v128.store(d, v128.load(s, 16), 16);
          d += PANEL;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const t = load<i32>(tap + (<usize>k << 2));
          v128.store(d, zero); v128.store(d, zero, 16);
          for (let j = 0; j < nr; j++) store<T>(at<T>(d, <usize>j), load<T>(at<T>(X, <usize>(load<i32>(pix + (<usize>j << 2)) + t))));
          d += PANEL;
        }
      }
    } else {
      const tap = bvTap + (<usize>(n0 + jr) << 2), pix = bvPix + (<usize>k0 << 2);
      for (let k = 0; k < kc; k++) {
        const b = load<i32>(pix + (<usize>k << 2));
        v128.store(d, zero); v128.store(d, zero, 16);
        for (let j = 0; j < nr; j++) store<T>(at<T>(d, <usize>j), load<T>(at<T>(X, <usize>(b + load<i32>(tap + (<usize>j << 2))))));
        d += PANEL;
      }
    }
    for (let k = kc; k < kcp; k++) { v128.store(d, zero); v128.store(d, zero, 16); d += PANEL; }
  }
}

// Threaded build: GEMMs with at least this many multiply-adds are split across the threads (about
// 20-40 us of work on one thread; smaller calls run inline).
const GEMM_PAR_MIN: f64 = <f64>(1 << 19);

/**
 * C (+)= A B; all strides in elements. In the threaded build a large call is split into column
 * ranges of C (or row ranges when M > N), one per thread. Every element of C is still summed by
 * one thread over the same K blocks in the same order, so the result does not depend on the split.
 */
export function gemm<T>(M: i32, N: i32, K: i32, A: usize, rsA: usize, csA: usize, B: usize, rsB: usize, csB: usize,
  C: usize, ldc: usize, accumulate: bool): void {
  const parts = ways(<f64>M * <f64>N * <f64>K, GEMM_PAR_MIN);
  if (parts > 1 && gemmSplit<T>(parts, M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate)) return;
  gemmSerial<T>(M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate);
}

/** Writes one GEMM job per part and runs them; false when the call is too narrow to split. */
function gemmSplit<T>(parts: i32, M: i32, N: i32, K: i32, A: usize, rsA: usize, csA: usize, B: usize, rsB: usize,
  csB: usize, C: usize, ldc: usize, accumulate: bool): bool {
  // One job per thread: splitting N makes every job pack all of A (M x K), splitting M all of B
  // (K x N), so more jobs would pack more; duplicate the smaller. Column ranges are cut at 64-byte
  // boundaries of C, row ranges at MR.
  const byCols = N >= M;
  const unit = byCols ? <i32>(64 / sizeof<T>()) : MR;
  const total = byCols ? N : M;
  const units = (total + unit - 1) / unit;
  parts = min(parts, units);
  if (parts <= 1) return false;
  const vb = bvMode;
  bvMode = BV_NONE;
  const es = <usize>sizeof<T>();
  for (let t = 0; t < parts; t++) {
    const r0 = partLo(units, parts, t) * unit, r1 = min(total, partLo(units, parts, t + 1) * unit);
    let a = A, b = B, c = C, pix = bvPix, tap = bvTap, m = M, n = N;
    if (byCols) {
      n = r1 - r0;
      c += <usize>r0 * es;
      if (vb == BV_CONV) pix += <usize>r0 << 2;
      else if (vb == BV_CONV_T) tap += <usize>r0 << 2;
      else b += <usize>r0 * csB * es;
    } else {
      m = r1 - r0;
      a += <usize>r0 * rsA * es;
      c += <usize>r0 * ldc * es;
    }
    setArg(t, 0, J_GEMM); setArg(t, 1, es); setArg(t, 2, m); setArg(t, 3, n); setArg(t, 4, K);
    setArg(t, 5, a); setArg(t, 6, rsA); setArg(t, 7, csA); setArg(t, 8, b); setArg(t, 9, rsB); setArg(t, 10, csB);
    setArg(t, 11, c); setArg(t, 12, ldc); setArg(t, 13, accumulate ? 1 : 0);
    setArg(t, 14, vb); setArg(t, 15, bvX); setArg(t, 16, pix); setArg(t, 17, tap);
  }
  runJobs(parts);
  return true;
}

/** C (+)= A B on the calling thread. */
export function gemmSerial<T>(M: i32, N: i32, K: i32, A: usize, rsA: usize, csA: usize, B: usize, rsB: usize, csB: usize,
  C: usize, ldc: usize, accumulate: bool): void {
  // A virtual B applies to this call only; clearing it first also keeps a trapped call from
  // leaking the mode into later ones.
  const virtualB = bvMode;
  bvMode = BV_NONE;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) for (let m = 0; m < M; m++) memory.fill(at<T>(C, <usize>m * ldc), 0, <usize>N * sizeof<T>());
    return;
  }
  ensureBuffers();
  const NR = <i32>(PANEL / sizeof<T>());
  const NC = NCP * NR;
  const ldcB = ldc * sizeof<T>();
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const kcp = (kc + 1) & ~1;
      const acc = accumulate || pc > 0;
      if (virtualB != BV_NONE) packBVirtual<T>(virtualB, pc, kc, kcp, jc, nc, packB);
      else packBBlock<T>(at<T>(B, <usize>pc * rsB + <usize>jc * csB), rsB, csB, kc, kcp, nc, packB);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        packABlock<T>(at<T>(A, <usize>ic * rsA + <usize>pc * csA), rsA, csA, mc, kc, kcp, packA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const bp = packB + <usize>(jr / NR) * <usize>kcp * PANEL;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const ap = packA + <usize>(ir * kcp) * 16;
            const cp = at<T>(C, <usize>(ic + ir) * ldc + <usize>(jc + jr));
            if (mr == MR && nr == NR) {
              microKernel<T>(kcp, ap, bp, cp, ldcB, acc);
            } else {
              microKernel<T>(kcp, ap, bp, tileBuf, PANEL, false);
              for (let i = 0; i < mr; i++) {
                for (let j = 0; j < nr; j++) {
                  const p = at<T>(cp, <usize>i * ldc + <usize>j);
                  const v = load<T>(at<T>(tileBuf + <usize>i * PANEL, <usize>j));
                  store<T>(p, acc ? load<T>(p) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Batched matmul: for each b < batch, out[b] = A_b B_b with element offsets of A_b and B_b read
 * as i32 pairs from offs. `transA`/`transB` are expressed through the strides.
 */
export function matmulBatched<T>(batch: i32, offs: usize, M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize,
  b: usize, rsB: usize, csB: usize, y: usize): void {
  // Many small products (each below the GEMM split size): split the batch instead.
  const work = <f64>M * <f64>N * <f64>K;
  if (batch > 1 && work < GEMM_PAR_MIN) {
    const parts = jobsFor(ways(work * <f64>batch, GEMM_PAR_MIN), batch);
    if (parts > 1) {
      const es = <usize>sizeof<T>();
      for (let t = 0; t < parts; t++) {
        setArg(t, 0, J_MATMUL); setArg(t, 1, es); setArg(t, 2, partLo(batch, parts, t)); setArg(t, 3, partLo(batch, parts, t + 1));
        setArg(t, 4, offs); setArg(t, 5, M); setArg(t, 6, N); setArg(t, 7, K); setArg(t, 8, a); setArg(t, 9, rsA);
        setArg(t, 10, csA); setArg(t, 11, b); setArg(t, 12, rsB); setArg(t, 13, csB); setArg(t, 14, y);
      }
      runJobs(parts);
      return;
    }
  }
  matmulRange<T>(0, batch, offs, M, N, K, a, rsA, csA, b, rsB, csB, y, false);
}

/** Products [i0, i1) of matmulBatched (unless `serial`, each GEMM is split on its own when large enough). */
export function matmulRange<T>(i0: i32, i1: i32, offs: usize, M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize,
  b: usize, rsB: usize, csB: usize, y: usize, serial: bool): void {
  const mn = <usize>M * <usize>N;
  for (let i = i0; i < i1; i++) {
    const oa = <usize>load<i32>(offs + (<usize>i << 3)), ob = <usize>load<i32>(offs + (<usize>i << 3) + 4);
    const pa = at<T>(a, oa), pb = at<T>(b, ob), py = at<T>(y, <usize>i * mn);
    if (serial) gemmSerial<T>(M, N, K, pa, rsA, csA, pb, rsB, csB, py, <usize>N, false);
    else gemm<T>(M, N, K, pa, rsA, csA, pb, rsB, csB, py, <usize>N, false);
  }
}
