// 2-D convolution over NCHW input and OIHW filters, on the GEMM of matmul.ts.
//
// Think of col, the im2col matrix of a group of g images: one row per filter tap
// r = (c*KH + p)*KW + q, one column per output pixel of every image of the group (image-major),
// col[r][img*P + i*OW + j] with P = OH*OW. Then
//   forward:     y_g   [O, g*P]   = W [O, CKK] . col [CKK, g*P]
//   grad filter: dW    [O, CKK]  += dy_g [O, g*P] . col^T
//   grad input:  dcol  [CKK, g*P] = W^T . dy_g [O, g*P], then col2im (scatter-add) into dx.
// col is never built for the first two: with the input copied into a zero-padded buffer xp,
// col[r][n] = xp[pix[n] + tap[r]], and the GEMM's B packer gathers from xp through those two offset
// tables (setVirtualB). Grouping many images makes the GEMM wide even for 7x7 or 3x3 outputs.
// With stride 1 (and enough channels) the input gradient is itself computed as a forward
// convolution of dy with the flipped filter, so only strided input gradients use col2im.
// Small filters (Conv4's first layer) run directly, and float32 3x3 stride-1 convolutions with many
// channels use Winograd F(2x2, 3x3), forward and input gradient (winogradConv2d) and filter gradient
// (winogradConv2dGradFilter).

import { at, copyElems, lanes, scratch, unscratch } from './common';
import { BV_CONV, BV_CONV_T, gemm, gemmSerial, setVirtualB } from './matmul';
import { J_DIRECT, J_WINO, J_WINO_DW, jobsFor, partLo, runJobs, setArg, ways } from './parallel';

const GROUP_BUDGET: usize = 16 << 20; // bytes of per-group temporaries (padded input, output rows)
const COL_BUDGET: usize = 4 << 20; // bytes of the explicit col matrix of conv2dGradInput
// Filters with at most this many taps per output (C*KH*KW) and unit column stride take the direct
// path below: a GEMM with K <= 16 is all packing and micro-kernel overhead (Conv4's first layer,
// C = 1, ran at ~4.5 GFLOP/s through it and moved its output through memory three times).
const DIRECT_CKK = 16;

function groupSize<T>(N: i32, perImage: usize, budget: usize = GROUP_BUDGET): i32 {
  const g = budget / (perImage * sizeof<T>() + 1);
  return <i32>max<usize>(1, min<usize>(<usize>N, g));
}

// First and one-past-last output column j whose input column j*sw - pw + off lies in [0, W).
// @ts-ignore: decorator
@inline function colStart(pw: i32, off: i32, sw: i32): i32 {
  const t = pw - off;
  return t <= 0 ? 0 : (t + sw - 1) / sw;
}
// @ts-ignore: decorator
@inline function colEnd(W: i32, pw: i32, off: i32, sw: i32, OW: i32): i32 {
  const t = W - 1 + pw - off;
  return t < 0 ? 0 : min(OW, t / sw + 1);
}

/** True when col would equal x (1x1 filter, stride 1, no padding): the GEMM can read x directly. */
// @ts-ignore: decorator
@inline function isPointwise(KH: i32, KW: i32, sh: i32, sw: i32, ph: i32, pw: i32): bool {
  return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
}

/**
 * Offsets into a padded group buffer of g images [g][C][Hp][Wp]: pix[img*P + i*OW + j] is where
 * the window of output pixel (i, j) starts, tap[(c*KH + p)*KW + q] where tap (c, p, q) sits in it.
 * Output pixels never reach past the padding, so no bounds checks are needed.
 */
function fillOffsets(pix: usize, tap: usize, g: i32, C: i32, Hp: i32, Wp: i32, KH: i32, KW: i32, OH: i32, OW: i32,
  sh: i32, sw: i32, dh: i32, dw: i32): void {
  const plane = Hp * Wp;
  let r: usize = 0;
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < KH; p++) {
      for (let q = 0; q < KW; q++) store<i32>(tap + (r++ << 2), c * plane + p * dh * Wp + q * dw);
    }
  }
  let n: usize = 0;
  for (let img = 0; img < g; img++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) store<i32>(pix + (n++ << 2), img * C * plane + i * sh * Wp + j * sw);
    }
  }
}

/** Copies `planes` planes [H][W] into the interiors of the (zero-bordered) [Hp][Wp] planes of xp. */
function padInto<T>(x: usize, xp: usize, planes: i32, H: i32, W: i32, ph: i32, pw: i32): void {
  const Hp = H + 2 * ph, Wp = W + 2 * pw;
  for (let pl = 0; pl < planes; pl++) {
    for (let h = 0; h < H; h++) {
      const src = at<T>(x, (<usize>pl * <usize>H + <usize>h) * <usize>W);
      const dst = at<T>(xp, (<usize>pl * <usize>Hp + <usize>(h + ph)) * <usize>Wp + <usize>pw);
      copyElems<T>(dst, src, <usize>W);
    }
  }
}

/** dx += col2im(col): the adjoint of im2col. */
function col2im<T>(col: usize, dx: usize, g: i32, C: i32, H: i32, W: i32, KH: i32, KW: i32, OH: i32, OW: i32,
  sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  const P = <usize>OH * <usize>OW, ld = <usize>g * P, HW = <usize>H * <usize>W;
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < KH; p++) {
      for (let q = 0; q < KW; q++) {
        const r = <usize>((c * KH + p) * KW + q);
        const off = q * dw;
        const j0 = colStart(pw, off, sw), j1 = max(j0, colEnd(W, pw, off, sw, OW));
        for (let img = 0; img < g; img++) {
          const xc = at<T>(dx, (<usize>img * <usize>C + <usize>c) * HW);
          let s = at<T>(col, r * ld + <usize>img * P);
          for (let i = 0; i < OH; i++) {
            const h = i * sh - ph + p * dh;
            if (h >= 0 && h < H) {
              const dst = at<T>(xc, <usize>h * <usize>W + <usize>(j0 * sw - pw + off));
              if (sw == 1) {
                let j = j0;
                for (; j + 4 <= j1; j += 4) {
                  const o = <usize>(j - j0);
                  const pd = at<T>(dst, o), ps = at<T>(s, <usize>j);
                  if (sizeof<T>() == 4) {
                    v128.store(pd, f32x4.add(v128.load(pd), v128.load(ps)));
                  } else {
                    v128.store(pd, f64x2.add(v128.load(pd), v128.load(ps)));
                    v128.store(pd, f64x2.add(v128.load(pd, 16), v128.load(ps, 16)), 16);
                  }
                }
                for (; j < j1; j++) {
                  const pd = at<T>(dst, <usize>(j - j0));
                  store<T>(pd, load<T>(pd) + load<T>(at<T>(s, <usize>j)));
                }
              } else {
                for (let j = j0; j < j1; j++) {
                  const pd = at<T>(dst, <usize>((j - j0) * sw));
                  store<T>(pd, load<T>(pd) + load<T>(at<T>(s, <usize>j)));
                }
              }
            }
            s = at<T>(s, <usize>OW);
          }
        }
      }
    }
  }
}

/** Copies rows [O][P] of gn consecutive images (each [O][P]) into one [O][gn*P] matrix, or back. */
function interleave<T>(src: usize, dst: usize, gn: i32, O: i32, P: usize, toGroup: bool): void {
  for (let img = 0; img < gn; img++) {
    for (let o = 0; o < O; o++) {
      const a = at<T>(src, (<usize>img * <usize>O + <usize>o) * P);
      const b = at<T>(dst, (<usize>o * <usize>gn + <usize>img) * P);
      if (toGroup) copyElems<T>(b, a, P);
      else copyElems<T>(a, b, P);
    }
  }
}

// ---- direct path for small filters (C*KH*KW <= DIRECT_CKK, column stride 1) --------------------
// One image at a time is copied into a zero-bordered buffer xp of rows Wp = W + 2*pw + lanes wide
// (the extra lanes let the last vector of a row read past its end without leaving the buffer).
// Output pixels go lanes at a time along a row; each tap is one unaligned vector load at a fixed
// offset (tap table) from the output position, so there are no bounds checks in the inner loops.

/** Element offsets of the taps (c, p, q) in a padded image of rows Wp: c*Hp*Wp + p*dh*Wp + q*dw. */
function directTaps(C: i32, KH: i32, KW: i32, Hp: i32, Wp: i32, dh: i32, dw: i32): usize {
  const tap = scratch(<usize>max(C * KH * KW, 1) << 2);
  let r: usize = 0;
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < KH; p++) {
      for (let q = 0; q < KW; q++) store<i32>(tap + (r++ << 2), (c * Hp + p * dh) * Wp + q * dw);
    }
  }
  return tap;
}

/** Copies one image [C][H][W] into the interior of the zero-bordered [C][Hp][Wp] buffer xp. */
function padImage<T>(x: usize, xp: usize, C: i32, H: i32, W: i32, Hp: i32, Wp: i32, ph: i32, pw: i32): void {
  for (let c = 0; c < C; c++) {
    for (let h = 0; h < H; h++) {
      copyElems<T>(at<T>(xp, (<usize>(c * Hp + h + ph)) * <usize>Wp + <usize>pw), at<T>(x, (<usize>(c * H + h)) * <usize>W), <usize>W);
    }
  }
}

// Threaded build: direct calls with at least this many multiply-adds are split, the forward pass
// over images, the filter gradient over output channels (each thread then pads every image into
// its own buffer; C is small on this path).
const DIRECT_PAR_MIN: f64 = <f64>(1 << 18);

/**
 * Runs a direct convolution (forward, or filter gradient when `grad`): inline, or split across the
 * threads with one zeroed padded-image buffer xp and a 16-byte spill slot per thread.
 */
function directConv<T>(grad: bool, x: usize, w: usize, y: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  const L = <i32>lanes<T>();
  const CKK = C * KH * KW;
  const Hp = H + 2 * ph, Wp = W + 2 * pw + L;
  const xpBytes = ((<usize>C * <usize>Hp * <usize>Wp * sizeof<T>() + 15) & ~15) + 16;
  const count = grad ? O : N;
  const parts = max(1, jobsFor(ways(<f64>N * <f64>O * <f64>OH * <f64>OW * <f64>CKK, DIRECT_PAR_MIN), count));
  const bufs = scratch(<usize>parts * xpBytes);
  memory.fill(bufs, 0, <usize>parts * xpBytes);
  const tap = directTaps(C, KH, KW, Hp, Wp, dh, dw);
  if (grad) memory.fill(y, 0, <usize>O * <usize>CKK * sizeof<T>());
  if (parts > 1) {
    for (let t = 0; t < parts; t++) {
      setArg(t, 0, J_DIRECT); setArg(t, 1, sizeof<T>()); setArg(t, 2, grad ? 1 : 0);
      setArg(t, 3, partLo(count, parts, t)); setArg(t, 4, partLo(count, parts, t + 1));
      setArg(t, 5, x); setArg(t, 6, w); setArg(t, 7, y); setArg(t, 8, N); setArg(t, 9, C); setArg(t, 10, H);
      setArg(t, 11, W); setArg(t, 12, O); setArg(t, 13, KH); setArg(t, 14, KW); setArg(t, 15, OH); setArg(t, 16, OW);
      setArg(t, 17, sh); setArg(t, 18, ph); setArg(t, 19, pw); setArg(t, 20, tap); setArg(t, 21, bufs + <usize>t * xpBytes);
      setArg(t, 22, xpBytes - 16);
    }
    runJobs(parts);
  } else {
    directRange<T>(grad, 0, count, x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, tap, bufs, xpBytes - 16);
  }
  unscratch(bufs);
  unscratch(tap);
}

/** One part of directConv: images [lo, hi) (forward) or output channels [lo, hi) (gradient). */
export function directRange<T>(grad: bool, lo: i32, hi: i32, x: usize, w: usize, y: usize, N: i32, C: i32, H: i32,
  W: i32, O: i32, KH: i32, KW: i32, OH: i32, OW: i32, sh: i32, ph: i32, pw: i32, tap: usize, xp: usize,
  spillAt: usize): void {
  if (grad) directConv2dGradFilter<T>(x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, lo, hi, tap, xp, xp + spillAt);
  else directConv2d<T>(x, w, y, lo, hi, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, tap, xp, xp + spillAt);
}

/** Images [n0, n1) of the direct forward convolution (xp: this thread's zeroed padded buffer). */
function directConv2d<T>(x: usize, w: usize, y: usize, n0: i32, n1: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, ph: i32, pw: i32, tap: usize, xp: usize, spill: usize): void {
  const L = <i32>lanes<T>();
  const CKK = C * KH * KW;
  const Hp = H + 2 * ph, Wp = W + 2 * pw + L;
  const xImg = <usize>C * <usize>H * <usize>W;
  let out = at<T>(y, <usize>n0 * <usize>O * <usize>OH * <usize>OW);
  for (let n = n0; n < n1; n++) {
    padImage<T>(at<T>(x, <usize>n * xImg), xp, C, H, W, Hp, Wp, ph, pw);
    for (let o = 0; o < O; o++) {
      const wo = at<T>(w, <usize>o * <usize>CKK);
      for (let i = 0; i < OH; i++) {
        const row = at<T>(xp, <usize>(i * sh) * <usize>Wp);
        let j = 0;
        // 4 vectors at a time: one weight splat feeds 4 independent accumulators.
        for (; j + 4 * L <= OW; j += 4 * L) {
          let a0 = v128.splat<T>(<T>0), a1 = a0, a2 = a0, a3 = a0;
          const s = at<T>(row, <usize>j);
          for (let t = 0; t < CKK; t++) {
            const wv = v128.splat<T>(load<T>(at<T>(wo, <usize>t)));
            const p = at<T>(s, <usize>load<i32>(tap + (<usize>t << 2)));
            a0 = v128.add<T>(a0, v128.mul<T>(wv, v128.load(p)));
            a1 = v128.add<T>(a1, v128.mul<T>(wv, v128.load(p, 16)));
            a2 = v128.add<T>(a2, v128.mul<T>(wv, v128.load(p, 32)));
            a3 = v128.add<T>(a3, v128.mul<T>(wv, v128.load(p, 48)));
          }
          const d = at<T>(out, <usize>j);
          v128.store(d, a0); v128.store(d, a1, 16); v128.store(d, a2, 32); v128.store(d, a3, 48);
        }
        for (; j < OW; j += L) {
          let a0 = v128.splat<T>(<T>0);
          const s = at<T>(row, <usize>j);
          for (let t = 0; t < CKK; t++) {
            const wv = v128.splat<T>(load<T>(at<T>(wo, <usize>t)));
            a0 = v128.add<T>(a0, v128.mul<T>(wv, v128.load(at<T>(s, <usize>load<i32>(tap + (<usize>t << 2))))));
          }
          if (j + L <= OW) {
            v128.store(at<T>(out, <usize>j), a0);
          } else {
            v128.store(spill, a0);
            copyElems<T>(at<T>(out, <usize>j), spill, <usize>(OW - j));
          }
        }
        out = at<T>(out, <usize>OW);
      }
    }
  }
}

/**
 * dw = sum over images and output pixels of dy (x) shifted x, taps in blocks of 4 that share each dy
 * load. The last vector of a row is zero-extended and its products masked, so lanes past the row
 * end add nothing even where x holds an infinity or NaN.
 */
function directConv2dGradFilter<T>(x: usize, dy: usize, dw_: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, ph: i32, pw: i32, o0: i32, o1: i32, tap: usize, xp: usize, spill: usize): void {
  // Output channels [o0, o1) of dw_ (zeroed by the caller); xp: this thread's zeroed padded buffer.
  const L = <i32>lanes<T>();
  const CKK = C * KH * KW;
  const Hp = H + 2 * ph, Wp = W + 2 * pw + L;
  const xImg = <usize>C * <usize>H * <usize>W, P = <usize>OH * <usize>OW;
  const full = OW / L * L, tail = OW - full;
  // Lanes [0, tail) set: keeps the products of the zero-extended last vector of a row.
  let mask = v128.splat<i32>(0);
  if (tail > 0) {
    memory.fill(spill, 0, 16);
    memory.fill(spill, 0xff, <usize>tail * sizeof<T>());
    mask = v128.load(spill);
  }
  for (let n = 0; n < N; n++) {
    padImage<T>(at<T>(x, <usize>n * xImg), xp, C, H, W, Hp, Wp, ph, pw);
    for (let o = o0; o < o1; o++) {
      const g = at<T>(dy, (<usize>n * <usize>O + <usize>o) * P);
      const wo = at<T>(dw_, <usize>o * <usize>CKK);
      for (let t0 = 0; t0 < CKK; t0 += 4) {
        const tb = min(4, CKK - t0);
        // Unused slots of a short block repeat the block's first tap; their sums are dropped.
        const o0 = <usize>load<i32>(tap + (<usize>t0 << 2));
        const o1 = tb > 1 ? <usize>load<i32>(tap + (<usize>(t0 + 1) << 2)) : o0;
        const o2 = tb > 2 ? <usize>load<i32>(tap + (<usize>(t0 + 2) << 2)) : o0;
        const o3 = tb > 3 ? <usize>load<i32>(tap + (<usize>(t0 + 3) << 2)) : o0;
        let a0 = v128.splat<T>(<T>0), a1 = a0, a2 = a0, a3 = a0;
        for (let i = 0; i < OH; i++) {
          const row = at<T>(xp, <usize>(i * sh) * <usize>Wp), gr = at<T>(g, <usize>i * <usize>OW);
          let j = 0;
          for (; j < full; j += L) {
            const gv = v128.load(at<T>(gr, <usize>j)), s = at<T>(row, <usize>j);
            a0 = v128.add<T>(a0, v128.mul<T>(gv, v128.load(at<T>(s, o0))));
            a1 = v128.add<T>(a1, v128.mul<T>(gv, v128.load(at<T>(s, o1))));
            a2 = v128.add<T>(a2, v128.mul<T>(gv, v128.load(at<T>(s, o2))));
            a3 = v128.add<T>(a3, v128.mul<T>(gv, v128.load(at<T>(s, o3))));
          }
          if (tail > 0) {
            memory.fill(spill, 0, 16);
            copyElems<T>(spill, at<T>(gr, <usize>j), <usize>tail);
            const gv = v128.load(spill), s = at<T>(row, <usize>j);
            a0 = v128.add<T>(a0, v128.and(v128.mul<T>(gv, v128.load(at<T>(s, o0))), mask));
            a1 = v128.add<T>(a1, v128.and(v128.mul<T>(gv, v128.load(at<T>(s, o1))), mask));
            a2 = v128.add<T>(a2, v128.and(v128.mul<T>(gv, v128.load(at<T>(s, o2))), mask));
            a3 = v128.add<T>(a3, v128.and(v128.mul<T>(gv, v128.load(at<T>(s, o3))), mask));
          }
        }
        addLanes<T>(at<T>(wo, <usize>t0), a0);
        if (tb > 1) addLanes<T>(at<T>(wo, <usize>(t0 + 1)), a1);
        if (tb > 2) addLanes<T>(at<T>(wo, <usize>(t0 + 2)), a2);
        if (tb > 3) addLanes<T>(at<T>(wo, <usize>(t0 + 3)), a3);
      }
    }
  }
}

/** *p += the sum of the lanes of v. */
// @ts-ignore: decorator
@inline function addLanes<T>(p: usize, v: v128): void {
  if (sizeof<T>() == 4) {
    store<T>(p, load<T>(p) + <T>(f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3)));
  } else {
    store<T>(p, load<T>(p) + <T>(f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1)));
  }
}

// ---- Winograd F(2x2, 3x3) for 3x3 stride-1 float32 convolutions with many channels ----------------
// Each 2x2 output tile is A^T [ (G g G^T) . (B^T d B) ] A over its 4x4 input patch d: 16 products per
// (tile, c, o) instead of 36, i.e. 16 GEMMs  M_e [O, T] = U_e [O, C] . V_e [C, T]  (e = one of the 16
// transformed positions, T = tiles) do 2.25x fewer multiplies than the im2col GEMM. The transforms
// (coefficients 0, +-1, +-1/2) are vectorised over 4 horizontally adjacent tiles. float64 keeps the
// GEMM path. For finite inputs the result equals the direct sum up to rounding; an infinite input can
// come out as NaN where the direct sum gives +-inf (the transforms subtract it from itself).
// Rows of V_e and M_e have 4 elements of slack so the last 4-tile group of a row may
// write (V) or read (M) past the row end; those lanes are never used.

const WINO_BUDGET: usize = 16 << 20; // bytes of V and M for one group of images

/** True when conv2d takes the Winograd path. */
// @ts-ignore: decorator
@inline function winogradApplies<T>(C: i32, O: i32, KH: i32, KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, dh: i32, dw: i32): bool {
  return sizeof<T>() == 4 && KH == 3 && KW == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && C >= 16 && O >= 16
    && OH >= 4 && OW >= 4;
}

/** U_e[o][c] (e = 4i + k) = (G g G^T)[i][k] for each 3x3 filter g = w[o][c]. */
function winogradFilters(w: usize, U: usize, O: i32, C: i32): void {
  const OC = <usize>O * <usize>C;
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < C; c++) {
      const g = w + ((<usize>o * <usize>C + <usize>c) * 9 << 2);
      const oc = <usize>o * <usize>C + <usize>c;
      for (let i = 0; i < 4; i++) {
        // row i of G g (3 values)
        let t0: f32, t1: f32, t2: f32;
        if (i == 0) { t0 = load<f32>(g); t1 = load<f32>(g, 4); t2 = load<f32>(g, 8); }
        else if (i == 3) { t0 = load<f32>(g, 24); t1 = load<f32>(g, 28); t2 = load<f32>(g, 32); }
        else {
          const sgn: f32 = i == 1 ? 1 : -1;
          t0 = (load<f32>(g) + sgn * load<f32>(g, 12) + load<f32>(g, 24)) * 0.5;
          t1 = (load<f32>(g, 4) + sgn * load<f32>(g, 16) + load<f32>(g, 28)) * 0.5;
          t2 = (load<f32>(g, 8) + sgn * load<f32>(g, 20) + load<f32>(g, 32)) * 0.5;
        }
        const e = <usize>(4 * i);
        store<f32>(U + ((e * OC + oc) << 2), t0);
        store<f32>(U + (((e + 1) * OC + oc) << 2), (t0 + t1 + t2) * 0.5);
        store<f32>(U + (((e + 2) * OC + oc) << 2), (t0 - t1 + t2) * 0.5);
        store<f32>(U + (((e + 3) * OC + oc) << 2), t2);
      }
    }
  }
}

// B^T d of one 4-tile group, [r][k] vectors. Per instance: worker instances get their own (setWT).
let WT: usize = memory.data(16 * 16, 16);

export function setWT(p: usize): void {
  WT = p;
}

/** Columns k = 0..3 of patch row r for 4 tiles whose patches start at p, p+2, p+4, p+6. */
// @ts-ignore: decorator
@inline function patchCols(p: usize, k: i32): v128 {
  if (k == 0) return i32x4.shuffle(v128.load(p), v128.load(p, 16), 0, 2, 4, 6);
  if (k == 1) return i32x4.shuffle(v128.load(p), v128.load(p, 16), 1, 3, 5, 7);
  if (k == 2) return i32x4.shuffle(v128.load(p, 8), v128.load(p, 24), 0, 2, 4, 6);
  return i32x4.shuffle(v128.load(p, 8), v128.load(p, 24), 1, 3, 5, 7);
}

/** V_e = (B^T d B)[e] for the 4x4 patches of 4 tiles starting at p (patch rows Wp apart); V_e at V + e*vStride. */
// @ts-ignore: decorator
@inline function inputTransform4(p: usize, Wp: usize, V: usize, vStride: usize): void {
  // s[r][k] = (B^T d)[r][k]
  const r0 = p, r1 = p + (Wp << 2), r2 = r1 + (Wp << 2), r3 = r2 + (Wp << 2);
  for (let k = 0; k < 4; k++) {
    const d0 = patchCols(r0, k), d1 = patchCols(r1, k), d2 = patchCols(r2, k), d3 = patchCols(r3, k);
    // store the 4 rows of column k of B^T d into a small scratch laid out [r][k]
    v128.store(WT + (<usize>k << 4), f32x4.sub(d0, d2));
    v128.store(WT + (<usize>(4 + k) << 4), f32x4.add(d1, d2));
    v128.store(WT + (<usize>(8 + k) << 4), f32x4.sub(d2, d1));
    v128.store(WT + (<usize>(12 + k) << 4), f32x4.sub(d1, d3));
  }
  for (let r = 0; r < 4; r++) {
    const q = WT + (<usize>(4 * r) << 4);
    const s0 = v128.load(q), s1 = v128.load(q, 16), s2 = v128.load(q, 32), s3 = v128.load(q, 48);
    const e = V + <usize>(4 * r) * vStride;
    v128.store(e, f32x4.sub(s0, s2));
    v128.store(e + vStride, f32x4.add(s1, s2));
    v128.store(e + 2 * vStride, f32x4.sub(s2, s1));
    v128.store(e + 3 * vStride, f32x4.sub(s1, s3));
  }
}

// Geometry of a Winograd call, shared by its phases: TH x TW tiles per image (TWq: TW rounded up
// to 4-tile groups), padded image planes Hp x Wp, V/M rows of ldv elements.
// @ts-ignore: decorator
@inline function winoTW(OW: i32): i32 { return (OW + 1) >> 1; }
// @ts-ignore: decorator
@inline function winoTWq(OW: i32): i32 { return (winoTW(OW) + 3) & ~3; }

// @ts-ignore: decorator
@inline function winoTiles(OH: i32, OW: i32): usize { return <usize>((OH + 1) >> 1) * <usize>winoTW(OW); }

/** The zeroed padded-input planes of a Winograd call (C planes of (2 TH + 2) x (2 TWq + 4), see winogradInput). */
function winoPadded(C: i32, OH: i32, OW: i32): usize {
  const bytes = (<usize>C * <usize>(2 * ((OH + 1) >> 1) + 2) * <usize>(2 * winoTWq(OW) + 4)) << 2;
  const xp = scratch(bytes);
  memory.fill(xp, 0, bytes);
  return xp;
}

/** Images per group of a Winograd call: the 16 transformed rows of its C inputs and O outputs within WINO_BUDGET. */
function winoGroup(N: i32, C: i32, O: i32, OH: i32, OW: i32): i32 {
  return <i32>max<usize>(1, min<usize>(<usize>N, WINO_BUDGET / (16 * winoTiles(OH, OW) * <usize>(C + O) * 4 + 1)));
}

/** Phase 1, channels [c0, c1) of gn images from x: pad each into xp, transform into V. */
function winogradInput(x: usize, xp: usize, V: usize, ldv: usize, gn: i32, c0: i32, c1: i32, C: i32, H: i32, W: i32,
  OH: i32, OW: i32, ph: i32, pw: i32): void {
  const TH = (OH + 1) >> 1, TW = winoTW(OW), TWq = winoTWq(OW);
  const tilesImg = <usize>TH * <usize>TW;
  // Padded image: the patch of tile (ti, tj) starts at (2 ti, 2 tj); 4-tile groups read 8 columns
  // past their start, up to column 2 TWq + 1.
  const Hp = 2 * TH + 2, Wp = 2 * TWq + 4;
  const plane = <usize>Hp * <usize>Wp;
  const vStride = (<usize>C * ldv) << 2; // bytes between V_e and V_{e+1}
  const xImg = <usize>C * <usize>H * <usize>W;
  for (let img = 0; img < gn; img++) {
    padImage<f32>(x + ((<usize>img * xImg + <usize>c0 * <usize>H * <usize>W) << 2), xp + ((<usize>c0 * plane) << 2),
      c1 - c0, H, W, Hp, Wp, ph, pw);
    for (let c = c0; c < c1; c++) {
      const xc = xp + ((<usize>c * plane) << 2);
      for (let ti = 0; ti < TH; ti++) {
        const vrow = V + (((<usize>c * ldv) + <usize>img * tilesImg + <usize>ti * <usize>TW) << 2);
        const prow = xc + ((<usize>(2 * ti) * <usize>Wp) << 2);
        for (let tj = 0; tj < TW; tj += 4) {
          inputTransform4(prow + (<usize>(2 * tj) << 2), <usize>Wp, vrow + (<usize>tj << 2), vStride);
        }
      }
    }
  }
}

/** Phase 2, positions [e0, e1): M_e [O, Tn] = U_e [O, C] . V_e [C, Tn] on this thread. */
function winogradGemms(U: usize, V: usize, M: usize, ldv: usize, O: i32, C: i32, Tn: i32, e0: i32, e1: i32): void {
  const vStride = (<usize>C * ldv) << 2, mStride = (<usize>O * ldv) << 2;
  for (let e = e0; e < e1; e++) {
    gemmSerial<f32>(O, Tn, C, U + ((<usize>e * <usize>O * <usize>C) << 2), <usize>C, 1,
      V + <usize>e * vStride, ldv, 1, M + <usize>e * mStride, ldv, false);
  }
}

/** Phase 3, output channels [o0, o1) of gn images into y: Y = A^T m A per tile, through rowBuf. */
function winogradOutput(M: usize, y: usize, rowBuf: usize, ldv: usize, gn: i32, o0: i32, o1: i32, O: i32, OH: i32,
  OW: i32): void {
  const TH = (OH + 1) >> 1, TW = winoTW(OW), TWq = winoTWq(OW);
  const tilesImg = <usize>TH * <usize>TW;
  const rowLen = <usize>(2 * TWq + 8); // output rows 2 ti and 2 ti + 1 before their copy into y
  const mStride = (<usize>O * ldv) << 2;
  const yImg = <usize>O * <usize>OH * <usize>OW;
  // Output transform: 4 tiles at a time.
  for (let img = 0; img < gn; img++) {
    for (let o = o0; o < o1; o++) {
      const yo = y + ((<usize>img * yImg + <usize>o * <usize>OH * <usize>OW) << 2);
      for (let ti = 0; ti < TH; ti++) {
        const mrow = M + (((<usize>o * ldv) + <usize>img * tilesImg + <usize>ti * <usize>TW) << 2);
        for (let tj = 0; tj < TW; tj += 4) {
          const q = mrow + (<usize>tj << 2);
          // t0[k] = m0k + m1k + m2k, t1[k] = m1k - m2k - m3k
          let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
          for (let k = 0; k < 4; k++) {
            const m0 = v128.load(q + <usize>k * mStride), m1 = v128.load(q + <usize>(4 + k) * mStride);
            const m2 = v128.load(q + <usize>(8 + k) * mStride), m3 = v128.load(q + <usize>(12 + k) * mStride);
            const t0 = f32x4.add(f32x4.add(m0, m1), m2), t1 = f32x4.sub(f32x4.sub(m1, m2), m3);
            if (k == 0) { a0 = t0; b0 = t1; } else if (k == 1) { a1 = t0; b1 = t1; } else if (k == 2) { a2 = t0; b2 = t1; } else { a3 = t0; b3 = t1; }
          }
          const y00 = f32x4.add(f32x4.add(a0, a1), a2), y01 = f32x4.sub(f32x4.sub(a1, a2), a3);
          const y10 = f32x4.add(f32x4.add(b0, b1), b2), y11 = f32x4.sub(f32x4.sub(b1, b2), b3);
          const rb = rowBuf + (<usize>(2 * tj) << 2);
          v128.store(rb, i32x4.shuffle(y00, y01, 0, 4, 1, 5));
          v128.store(rb, i32x4.shuffle(y00, y01, 2, 6, 3, 7), 16);
          v128.store(rb + (rowLen << 2), i32x4.shuffle(y10, y11, 0, 4, 1, 5));
          v128.store(rb + (rowLen << 2), i32x4.shuffle(y10, y11, 2, 6, 3, 7), 16);
        }
        const i0 = 2 * ti;
        copyElems<f32>(yo + ((<usize>i0 * <usize>OW) << 2), rowBuf, <usize>OW);
        if (i0 + 1 < OH) copyElems<f32>(yo + ((<usize>(i0 + 1) * <usize>OW) << 2), rowBuf + (rowLen << 2), <usize>OW);
      }
    }
  }
}

// Threaded build: Winograd calls with at least this many multiply-adds in their GEMMs are split
// (each phase across the threads: channels, transformed positions e, output channels).
const WINO_PAR_MIN: f64 = <f64>(1 << 19);

/** Runs one phase over [lo, hi) (a job of a split call, or the whole phase inline). */
export function winogradPhase(phase: i32, lo: i32, hi: i32, x: usize, xp: usize, V: usize, M: usize, U: usize,
  y: usize, rowBuf: usize, ldv: usize, gn: i32, C: i32, H: i32, W: i32, O: i32, OH: i32, OW: i32, ph: i32, pw: i32): void {
  if (phase == 0) winogradInput(x, xp, V, ldv, gn, lo, hi, C, H, W, OH, OW, ph, pw);
  else if (phase == 1) winogradGemms(U, V, M, ldv, O, C, gn * ((OH + 1) >> 1) * winoTW(OW), lo, hi);
  else winogradOutput(M, y, rowBuf, ldv, gn, lo, hi, O, OH, OW);
}

/**
 * Runs phase `phase` of a Winograd call over all its channels (0: C inputs, 1: the 16 GEMMs, 2: O
 * outputs) as jobs when `threads` > 1, else inline; job t gets rowBuf + t * rowBytes.
 */
function winogradPhaseJobs(threads: i32, phase: i32, x: usize, xp: usize, V: usize, M: usize, U: usize, y: usize,
  rowBuf: usize, rowBytes: usize, ldv: usize, gn: i32, C: i32, H: i32, W: i32, O: i32, OH: i32, OW: i32, ph: i32, pw: i32): void {
  const count = phase == 0 ? C : phase == 1 ? 16 : O;
  // The 16 GEMMs are 16 jobs (each packs only its own operands).
  const parts = threads <= 1 ? 1 : phase == 1 ? 16 : jobsFor(threads, count);
  if (parts <= 1) {
    winogradPhase(phase, 0, count, x, xp, V, M, U, y, rowBuf, ldv, gn, C, H, W, O, OH, OW, ph, pw);
    return;
  }
  for (let t = 0; t < parts; t++) {
    setArg(t, 0, J_WINO); setArg(t, 1, phase); setArg(t, 2, partLo(count, parts, t)); setArg(t, 3, partLo(count, parts, t + 1));
    setArg(t, 4, x); setArg(t, 5, xp); setArg(t, 6, V); setArg(t, 7, M); setArg(t, 8, U); setArg(t, 9, y);
    setArg(t, 10, rowBuf + <usize>t * rowBytes); setArg(t, 11, ldv); setArg(t, 12, gn); setArg(t, 13, C);
    setArg(t, 14, H); setArg(t, 15, W); setArg(t, 16, O); setArg(t, 17, OH); setArg(t, 18, OW); setArg(t, 19, ph);
    setArg(t, 20, pw);
  }
  runJobs(parts);
}

function winogradConv2d(x: usize, w: usize, y: usize, N: i32, C: i32, H: i32, W: i32, O: i32, OH: i32, OW: i32,
  ph: i32, pw: i32): void {
  const TWq = winoTWq(OW), tilesImg = winoTiles(OH, OW);
  const xp = winoPadded(C, OH, OW);
  const g = winoGroup(N, C, O, OH, OW);
  const T = <usize>g * tilesImg;
  const ldv = T + 4; // row length of V_e and M_e, in elements
  const V = scratch((16 * <usize>C * ldv) << 2);
  const M = scratch((16 * <usize>O * ldv + 4) << 2);
  const U = scratch((16 * <usize>O * <usize>C) << 2);
  winogradFilters(w, U, O, C);
  const rowLen = <usize>(2 * TWq + 8);
  const threads = ways(16 * <f64>T * <f64>O * <f64>C, WINO_PAR_MIN);
  // One output row buffer per job (worker jobs must not allocate).
  const rowBuf = scratch(<usize>max(1, jobsFor(threads, O)) * (rowLen << 3));
  const xImg = <usize>C * <usize>H * <usize>W, yImg = <usize>O * <usize>OH * <usize>OW;
  for (let n0 = 0; n0 < N; n0 += g) {
    const gn = min(g, N - n0);
    const xg = x + ((<usize>n0 * xImg) << 2), yg = y + ((<usize>n0 * yImg) << 2);
    for (let phase = 0; phase < 3; phase++) {
      winogradPhaseJobs(threads, phase, xg, xp, V, M, U, yg, rowBuf, rowLen << 3, ldv, gn, C, H, W, O, OH, OW, ph, pw);
    }
  }
  unscratch(xp); unscratch(V); unscratch(M); unscratch(U); unscratch(rowBuf);
}

// ---- Winograd F(2x2, 3x3) filter gradient ------------------------------------------------------
// With M = sum_c U[o][c] . V[c] and Y = A^T M A per tile (above), dL/dM = A dY A^T (4x4 from the
// 2x2 of dY over the tile) and dL/dU[o][c] = sum over tiles of dL/dM[o] . V[c], so
//   S_e [O, C] = Z_e [O, T] . V_e^T [T, C],   Z_e = (A dY A^T)[e] per tile,
//   dW[o][c] = G^T S[o][c] G  (3x3 from the 4x4 of S over e):
// 16 GEMMs contracting over the tiles, 2.25x fewer multiplies than the im2col GEMM (Conv4's 64x64
// layers on 14x14 maps spent most of a MAML step's filter-gradient time there). Output pixels past
// OH x OW in the last tile row or column have zero gradient (a zero-padded copy of each dY plane).

/**
 * Phase 0 of the filter gradient, output channels [o0, o1) of gn images of dy: Z_e rows, 4 tiles
 * at a time, through pb, a zero-filled (2 TH) x (2 TWq) plane buffer of this job.
 */
function winogradGradOutput(dy: usize, Z: usize, pb: usize, ldv: usize, gn: i32, o0: i32, o1: i32, O: i32, OH: i32,
  OW: i32): void {
  const TH = (OH + 1) >> 1, TW = winoTW(OW), TWq = winoTWq(OW);
  const tilesImg = <usize>TH * <usize>TW;
  const Wb = <usize>(2 * TWq);
  const zStride = (<usize>O * ldv) << 2;
  const yImg = <usize>O * <usize>OH * <usize>OW;
  // Only [0, OH) x [0, OW) is ever written, so the rest of pb stays zero.
  memory.fill(pb, 0, (<usize>(2 * TH) * Wb) << 2);
  for (let img = 0; img < gn; img++) {
    for (let o = o0; o < o1; o++) {
      const src = dy + ((<usize>img * yImg + <usize>o * <usize>OH * <usize>OW) << 2);
      for (let i = 0; i < OH; i++) copyElems<f32>(pb + ((<usize>i * Wb) << 2), src + ((<usize>i * <usize>OW) << 2), <usize>OW);
      for (let ti = 0; ti < TH; ti++) {
        // Tiles in row order: a 4-tile group past the row's end writes into the next row's (or the
        // next image's, or the row slack's) first slots, which are written properly afterwards.
        const zrow = Z + (((<usize>o * ldv) + <usize>img * tilesImg + <usize>ti * <usize>TW) << 2);
        const r0 = pb + ((<usize>(2 * ti) * Wb) << 2), r1 = r0 + (Wb << 2);
        for (let tj = 0; tj < TW; tj += 4) {
          const p0 = r0 + (<usize>(2 * tj) << 2), p1 = r1 + (<usize>(2 * tj) << 2);
          const a = i32x4.shuffle(v128.load(p0), v128.load(p0, 16), 0, 2, 4, 6), b = i32x4.shuffle(v128.load(p0), v128.load(p0, 16), 1, 3, 5, 7);
          const c = i32x4.shuffle(v128.load(p1), v128.load(p1, 16), 0, 2, 4, 6), d = i32x4.shuffle(v128.load(p1), v128.load(p1, 16), 1, 3, 5, 7);
          const z = zrow + (<usize>tj << 2);
          for (let r = 0; r < 4; r++) {
            // Row r of A dY: [a, b], [a + c, b + d], [a - c, b - d], [-c, -d]; times A^T: [p, p + q, p - q, -q].
            const p = r == 0 ? a : r == 1 ? f32x4.add(a, c) : r == 2 ? f32x4.sub(a, c) : f32x4.neg(c);
            const q = r == 0 ? b : r == 1 ? f32x4.add(b, d) : r == 2 ? f32x4.sub(b, d) : f32x4.neg(d);
            const e = z + <usize>(4 * r) * zStride;
            v128.store(e, p);
            v128.store(e + zStride, f32x4.add(p, q));
            v128.store(e + 2 * zStride, f32x4.sub(p, q));
            v128.store(e + 3 * zStride, f32x4.neg(q));
          }
        }
      }
    }
  }
}

/** Phase 1 of the filter gradient, positions [e0, e1): S_e [O, C] (+)= Z_e [O, Tn] . V_e^T on this thread. */
function winogradGradGemms(Z: usize, V: usize, S: usize, ldv: usize, O: i32, C: i32, Tn: i32, e0: i32, e1: i32, acc: bool): void {
  const vStride = (<usize>C * ldv) << 2, zStride = (<usize>O * ldv) << 2;
  for (let e = e0; e < e1; e++) {
    gemmSerial<f32>(O, C, Tn, Z + <usize>e * zStride, ldv, 1, V + <usize>e * vStride, 1, ldv,
      S + ((<usize>e * <usize>O * <usize>C) << 2), <usize>C, acc);
  }
}

/** Runs one filter-gradient phase over [lo, hi) (a job of a split call, or the whole phase inline). */
export function winogradGradPhase(phase: i32, lo: i32, hi: i32, dy: usize, Z: usize, V: usize, S: usize, pb: usize,
  ldv: usize, gn: i32, C: i32, O: i32, OH: i32, OW: i32, acc: bool): void {
  if (phase == 0) winogradGradOutput(dy, Z, pb, ldv, gn, lo, hi, O, OH, OW);
  else winogradGradGemms(Z, V, S, ldv, O, C, gn * ((OH + 1) >> 1) * winoTW(OW), lo, hi, acc);
}

function winogradConv2dGradFilter(x: usize, dy: usize, dw_: usize, N: i32, C: i32, H: i32, W: i32, O: i32, OH: i32,
  OW: i32, ph: i32, pw: i32): void {
  const TH = (OH + 1) >> 1, TWq = winoTWq(OW), tilesImg = winoTiles(OH, OW);
  const xp = winoPadded(C, OH, OW);
  const g = winoGroup(N, C, O, OH, OW);
  const T = <usize>g * tilesImg;
  const ldv = T + 4;
  const V = scratch((16 * <usize>C * ldv) << 2);
  const Z = scratch((16 * <usize>O * ldv + 4) << 2);
  const S = scratch((16 * <usize>O * <usize>C) << 2);
  const threads = ways(16 * <f64>T * <f64>O * <f64>C, WINO_PAR_MIN);
  // One dY plane buffer per job (worker jobs must not allocate).
  const pbBytes = (<usize>(2 * TH) * <usize>(2 * TWq)) << 2;
  const pbs = scratch(<usize>max(1, jobsFor(threads, O)) * pbBytes);
  const xImg = <usize>C * <usize>H * <usize>W, yImg = <usize>O * <usize>OH * <usize>OW;
  for (let n0 = 0; n0 < N; n0 += g) {
    const gn = min(g, N - n0);
    const xg = x + ((<usize>n0 * xImg) << 2), dyg = dy + ((<usize>n0 * yImg) << 2);
    // V from the forward pass's input transform (its phase 0), then Z, then the 16 GEMMs.
    winogradPhaseJobs(threads, 0, xg, xp, V, 0, 0, 0, 0, 0, ldv, gn, C, H, W, O, OH, OW, ph, pw);
    for (let phase = 0; phase < 2; phase++) {
      const count = phase == 0 ? O : 16;
      const parts = threads <= 1 ? 1 : phase == 1 ? 16 : jobsFor(threads, count);
      if (parts > 1) {
        for (let t = 0; t < parts; t++) {
          setArg(t, 0, J_WINO_DW); setArg(t, 1, phase); setArg(t, 2, partLo(count, parts, t)); setArg(t, 3, partLo(count, parts, t + 1));
          setArg(t, 4, dyg); setArg(t, 5, Z); setArg(t, 6, V); setArg(t, 7, S); setArg(t, 8, pbs + <usize>t * pbBytes);
          setArg(t, 9, ldv); setArg(t, 10, gn); setArg(t, 11, C); setArg(t, 12, O); setArg(t, 13, OH); setArg(t, 14, OW);
          setArg(t, 15, n0 > 0 ? 1 : 0);
        }
        runJobs(parts);
      } else {
        winogradGradPhase(phase, 0, count, dyg, Z, V, S, pbs, ldv, gn, C, O, OH, OW, n0 > 0);
      }
    }
  }
  // dW[o][c] = G^T S G: rows of G^T s are s0 + (s1 + s2) / 2, (s1 - s2) / 2, (s1 + s2) / 2 + s3.
  const OC = <usize>O * <usize>C;
  for (let oc: usize = 0; oc < OC; oc++) {
    const out = dw_ + ((oc * 9) << 2);
    for (let k = 0; k < 4; k++) {
      // column k of G^T s, kept in t0..t2 per k
      const s0 = load<f32>(S + (((<usize>k) * OC + oc) << 2)), s1 = load<f32>(S + (((<usize>(4 + k)) * OC + oc) << 2));
      const s2 = load<f32>(S + (((<usize>(8 + k)) * OC + oc) << 2)), s3 = load<f32>(S + (((<usize>(12 + k)) * OC + oc) << 2));
      store<f32>(WT + (<usize>k << 2), s0 + (s1 + s2) * 0.5);
      store<f32>(WT + (<usize>(4 + k) << 2), (s1 - s2) * 0.5);
      store<f32>(WT + (<usize>(8 + k) << 2), (s1 + s2) * 0.5 + s3);
    }
    for (let i = 0; i < 3; i++) {
      const r = WT + (<usize>(4 * i) << 2);
      const t0 = load<f32>(r), t1 = load<f32>(r, 4), t2 = load<f32>(r, 8), t3 = load<f32>(r, 12);
      store<f32>(out + (<usize>(3 * i) << 2), t0 + (t1 + t2) * 0.5);
      store<f32>(out + (<usize>(3 * i + 1) << 2), (t1 - t2) * 0.5);
      store<f32>(out + (<usize>(3 * i + 2) << 2), (t1 + t2) * 0.5 + t3);
    }
  }
  unscratch(xp); unscratch(V); unscratch(Z); unscratch(S); unscratch(pbs);
}

export function conv2d<T>(x: usize, w: usize, y: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32, KW: i32,
  OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  const P = <usize>OH * <usize>OW, CKK = C * KH * KW;
  const total = <usize>N * <usize>O * P;
  if (total == 0) return;
  if (CKK == 0) { memory.fill(y, 0, total * sizeof<T>()); return; }
  const xImg = <usize>C * <usize>H * <usize>W, yImg = <usize>O * P;
  if (isPointwise(KH, KW, sh, sw, ph, pw)) {
    for (let n = 0; n < N; n++) {
      gemm<T>(O, <i32>P, CKK, w, <usize>CKK, 1, at<T>(x, <usize>n * xImg), P, 1, at<T>(y, <usize>n * yImg), P, false);
    }
    return;
  }
  if (sw == 1 && CKK <= DIRECT_CKK) {
    directConv<T>(false, x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, dh, dw);
    return;
  }
  if (winogradApplies<T>(C, O, KH, KW, OH, OW, sh, sw, dh, dw)) {
    winogradConv2d(x, w, y, N, C, H, W, O, OH, OW, ph, pw);
    return;
  }
  const padded = ph > 0 || pw > 0;
  const Hp = H + 2 * ph, Wp = W + 2 * pw, xpImg = <usize>C * <usize>Hp * <usize>Wp;
  const g = groupSize<T>(N, (padded ? xpImg : 0) + yImg);
  const xp = padded ? scratch(<usize>g * xpImg * sizeof<T>()) : 0;
  if (padded) memory.fill(xp, 0, <usize>g * xpImg * sizeof<T>()); // borders stay zero
  const tmp = g > 1 ? scratch(<usize>g * yImg * sizeof<T>()) : 0;
  const pix = scratch(<usize>g * P * 4), tap = scratch(<usize>CKK * 4);
  fillOffsets(pix, tap, g, C, Hp, Wp, KH, KW, OH, OW, sh, sw, dh, dw);
  for (let n0 = 0; n0 < N; n0 += g) {
    const gn = min(g, N - n0);
    const ld = <usize>gn * P;
    const xg = at<T>(x, <usize>n0 * xImg);
    if (padded) padInto<T>(xg, xp, gn * C, H, W, ph, pw);
    const yg = at<T>(y, <usize>n0 * yImg);
    setVirtualB(BV_CONV, padded ? xp : xg, pix, tap);
    gemm<T>(O, <i32>ld, CKK, w, <usize>CKK, 1, 0, 0, 0, gn == 1 ? yg : tmp, ld, false);
    if (gn > 1) interleave<T>(yg, tmp, gn, O, P, false);
  }
  if (xp) unscratch(xp);
  if (tmp) unscratch(tmp);
  unscratch(pix);
  unscratch(tap);
}

export function conv2dGradInput<T>(dy: usize, w: usize, dx: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  const P = <usize>OH * <usize>OW, CKK = C * KH * KW;
  const xImg = <usize>C * <usize>H * <usize>W, yImg = <usize>O * P;
  if (N == 0 || CKK == 0 || P == 0) { memory.fill(dx, 0, <usize>N * xImg * sizeof<T>()); return; }
  const fph = (KH - 1) * dh - ph, fpw = (KW - 1) * dw - pw;
  if (sh == 1 && sw == 1 && fph >= 0 && fpw >= 0 && C >= 8 && !isPointwise(KH, KW, sh, sw, ph, pw)) {
    // With stride 1 the input gradient is a plain convolution of dy with the filter transposed
    // (O <-> C) and flipped, padded by (K-1)*dilation - pad: that reuses the fused forward path.
    // Its GEMM has only C rows, so few input channels keep the col2im route below.
    const wf = scratch(<usize>O * <usize>CKK * sizeof<T>());
    const khw = KH * KW;
    for (let o = 0; o < O; o++) {
      for (let c = 0; c < C; c++) {
        for (let t = 0; t < khw; t++) {
          store<T>(at<T>(wf, <usize>((c * O + o) * khw + khw - 1 - t)), load<T>(at<T>(w, <usize>((o * C + c) * khw + t))));
        }
      }
    }
    conv2d<T>(dy, wf, dx, N, O, OH, OW, C, KH, KW, H, W, 1, 1, fph, fpw, dh, dw);
    unscratch(wf);
    return;
  }
  memory.fill(dx, 0, <usize>N * xImg * sizeof<T>());
  if (isPointwise(KH, KW, sh, sw, ph, pw)) {
    for (let n = 0; n < N; n++) {
      gemm<T>(CKK, <i32>P, O, w, 1, <usize>CKK, at<T>(dy, <usize>n * yImg), P, 1, at<T>(dx, <usize>n * xImg), P, false);
    }
    return;
  }
  const g = groupSize<T>(N, <usize>CKK * P, COL_BUDGET);
  const dcol = scratch(<usize>CKK * <usize>g * P * sizeof<T>());
  const dyg = g > 1 ? scratch(<usize>O * <usize>g * P * sizeof<T>()) : 0;
  for (let n0 = 0; n0 < N; n0 += g) {
    const gn = min(g, N - n0);
    const ld = <usize>gn * P;
    let bsrc = at<T>(dy, <usize>n0 * yImg);
    if (gn > 1) { interleave<T>(bsrc, dyg, gn, O, P, true); bsrc = dyg; }
    // A = W^T: A(r, o) = w[o*CKK + r]
    gemm<T>(CKK, <i32>ld, O, w, 1, <usize>CKK, bsrc, ld, 1, dcol, ld, false);
    col2im<T>(dcol, at<T>(dx, <usize>n0 * xImg), gn, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
  }
  unscratch(dcol);
  if (dyg) unscratch(dyg);
}

export function conv2dGradFilter<T>(x: usize, dy: usize, dw_: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  const P = <usize>OH * <usize>OW, CKK = C * KH * KW;
  const xImg = <usize>C * <usize>H * <usize>W, yImg = <usize>O * P;
  const wSize = <usize>O * <usize>CKK;
  if (wSize == 0) return;
  if (N == 0 || P == 0) { memory.fill(dw_, 0, wSize * sizeof<T>()); return; }
  if (isPointwise(KH, KW, sh, sw, ph, pw)) {
    for (let n = 0; n < N; n++) {
      gemm<T>(O, CKK, <i32>P, at<T>(dy, <usize>n * yImg), P, 1, at<T>(x, <usize>n * xImg), 1, P, dw_, <usize>CKK, n > 0);
    }
    return;
  }
  if (sw == 1 && CKK <= DIRECT_CKK) {
    directConv<T>(true, x, dy, dw_, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, dh, dw);
    return;
  }
  if (winogradApplies<T>(C, O, KH, KW, OH, OW, sh, sw, dh, dw)) {
    winogradConv2dGradFilter(x, dy, dw_, N, C, H, W, O, OH, OW, ph, pw);
    return;
  }
  const padded = ph > 0 || pw > 0;
  const Hp = H + 2 * ph, Wp = W + 2 * pw, xpImg = <usize>C * <usize>Hp * <usize>Wp;
  const g = groupSize<T>(N, (padded ? xpImg : 0) + yImg);
  const xp = padded ? scratch(<usize>g * xpImg * sizeof<T>()) : 0;
  if (padded) memory.fill(xp, 0, <usize>g * xpImg * sizeof<T>());
  const dyg = g > 1 ? scratch(<usize>g * yImg * sizeof<T>()) : 0;
  const pix = scratch(<usize>g * P * 4), tap = scratch(<usize>CKK * 4);
  fillOffsets(pix, tap, g, C, Hp, Wp, KH, KW, OH, OW, sh, sw, dh, dw);
  for (let n0 = 0; n0 < N; n0 += g) {
    const gn = min(g, N - n0);
    const ld = <usize>gn * P;
    const xg = at<T>(x, <usize>n0 * xImg);
    if (padded) padInto<T>(xg, xp, gn * C, H, W, ph, pw);
    let asrc = at<T>(dy, <usize>n0 * yImg);
    if (gn > 1) { interleave<T>(asrc, dyg, gn, O, P, true); asrc = dyg; }
    setVirtualB(BV_CONV_T, padded ? xp : xg, pix, tap);
    gemm<T>(O, CKK, <i32>ld, asrc, ld, 1, 0, 0, 0, dw_, <usize>CKK, n0 > 0);
  }
  if (xp) unscratch(xp);
  if (dyg) unscratch(dyg);
  unscratch(pix);
  unscratch(tap);
}
