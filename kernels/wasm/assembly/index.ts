// Entry point of the kernels module: memory management plus one export per kernel and dtype.
// Built with `--runtime minimal`: heap.alloc/heap.free are a real TLSF allocator (16-byte
// aligned, grows memory as needed); nothing here allocates managed objects, so the GC never runs.

import { unary, unarySerial, binary, binarySerial, where, castF32F64, castF64F32 } from './elementwise';
import { reduce, reduceInto } from './reduce';
import { gemm, gemmSerial, matmulBatched, matmulRange, setVirtualB, setPackBuffers, PACK_BYTES } from './matmul';
import { conv2d, conv2dGradInput, conv2dGradFilter, directRange, setWT, winogradGradPhase, winogradPhase } from './conv';
import { setIdx } from './common';
export { releaseScratch, scratchRequest } from './common';
import { JOB_SHAPE, JOB_STRIDES, J_BINARY, J_DIRECT, J_GEMM, J_MATMUL, J_REDUCE, J_UNARY, J_WINO, J_WINO_DW, J_POOL, J_COPY, jobArg, slot } from './parallel';

export { setThreads } from './parallel';
import { maxPool2d, maxPool2dGrad, maxPool2dSelect, maxPoolRange, avgPool2d, avgPool2dGrad } from './pool';
import { copyStrided, copyStridedSerial, gather, scatterAdd } from './copy';

export function alloc(bytes: usize): usize {
  return heap.alloc(bytes);
}

export function allocZeroed(bytes: usize): usize {
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}

export function free(ptr: usize): void {
  heap.free(ptr);
}

// ---- threads (threaded build; see parallel.ts) ------------------------------------------------

// Per-instance state of a worker: index counters (128 B), the Winograd scratch (256 B), pack buffers.
const STATE_BYTES: usize = 384 + PACK_BYTES;

/** Main instance: allocates the state block of one worker instance. */
export function allocThreadState(): usize {
  return heap.alloc(STATE_BYTES);
}

/** Worker instance: takes its state block (allocated by the main instance) before any job. */
export function useThreadState(p: usize): void {
  setIdx(p);
  setWT(p + 128);
  setPackBuffers(p + 384);
}

/** Runs job slot t on this instance (the main thread runs slot 0, worker t slot t). */
export function runSlot(t: i32): void {
  const s = slot(t);
  const kind = load<i32>(s);
  const dbl = jobArg(s, 1) == 8;
  if (kind == J_GEMM) {
    const M = <i32>jobArg(s, 2), N = <i32>jobArg(s, 3), K = <i32>jobArg(s, 4);
    const A = jobArg(s, 5), rsA = jobArg(s, 6), csA = jobArg(s, 7), B = jobArg(s, 8), rsB = jobArg(s, 9), csB = jobArg(s, 10);
    const C = jobArg(s, 11), ldc = jobArg(s, 12), acc = jobArg(s, 13) != 0;
    const vb = <i32>jobArg(s, 14);
    if (vb != 0) setVirtualB(vb, jobArg(s, 15), jobArg(s, 16), jobArg(s, 17));
    if (dbl) gemmSerial<f64>(M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, acc);
    else gemmSerial<f32>(M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, acc);
  } else if (kind == J_MATMUL) {
    const i0 = <i32>jobArg(s, 2), i1 = <i32>jobArg(s, 3), offs = jobArg(s, 4);
    const M = <i32>jobArg(s, 5), N = <i32>jobArg(s, 6), K = <i32>jobArg(s, 7);
    const a = jobArg(s, 8), rsA = jobArg(s, 9), csA = jobArg(s, 10), b = jobArg(s, 11), rsB = jobArg(s, 12), csB = jobArg(s, 13);
    const y = jobArg(s, 14);
    if (dbl) matmulRange<f64>(i0, i1, offs, M, N, K, a, rsA, csA, b, rsB, csB, y, true);
    else matmulRange<f32>(i0, i1, offs, M, N, K, a, rsA, csA, b, rsB, csB, y, true);
  } else if (kind == J_WINO) {
    winogradPhase(<i32>jobArg(s, 1), <i32>jobArg(s, 2), <i32>jobArg(s, 3), jobArg(s, 4), jobArg(s, 5), jobArg(s, 6),
      jobArg(s, 7), jobArg(s, 8), jobArg(s, 9), jobArg(s, 10), jobArg(s, 11), <i32>jobArg(s, 12), <i32>jobArg(s, 13),
      <i32>jobArg(s, 14), <i32>jobArg(s, 15), <i32>jobArg(s, 16), <i32>jobArg(s, 17), <i32>jobArg(s, 18),
      <i32>jobArg(s, 19), <i32>jobArg(s, 20));
  } else if (kind == J_DIRECT) {
    const grad = jobArg(s, 2) != 0, lo = <i32>jobArg(s, 3), hi = <i32>jobArg(s, 4);
    const x = jobArg(s, 5), w = jobArg(s, 6), y = jobArg(s, 7);
    const N = <i32>jobArg(s, 8), C = <i32>jobArg(s, 9), H = <i32>jobArg(s, 10), W = <i32>jobArg(s, 11), O = <i32>jobArg(s, 12);
    const KH = <i32>jobArg(s, 13), KW = <i32>jobArg(s, 14), OH = <i32>jobArg(s, 15), OW = <i32>jobArg(s, 16);
    const sh = <i32>jobArg(s, 17), ph = <i32>jobArg(s, 18), pw = <i32>jobArg(s, 19);
    const tap = jobArg(s, 20), xp = jobArg(s, 21), spillAt = jobArg(s, 22);
    if (dbl) directRange<f64>(grad, lo, hi, x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, tap, xp, spillAt);
    else directRange<f32>(grad, lo, hi, x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, ph, pw, tap, xp, spillAt);
  } else if (kind == J_UNARY) {
    const op = <i32>jobArg(s, 2), x = jobArg(s, 3), y = jobArg(s, 4), n = jobArg(s, 5);
    if (dbl) unarySerial<f64>(op, x, y, n);
    else unarySerial<f32>(op, x, y, n);
  } else if (kind == J_BINARY) {
    const op = <i32>jobArg(s, 2), rank = <i32>jobArg(s, 3), sa = jobArg(s, 4), sb = jobArg(s, 5);
    const a = jobArg(s, 6), b = jobArg(s, 7), y = jobArg(s, 8);
    if (dbl) binarySerial<f64>(op, rank, s + JOB_SHAPE, sa, sb, a, b, y);
    else binarySerial<f32>(op, rank, s + JOB_SHAPE, sa, sb, a, b, y);
  } else if (kind == J_REDUCE) {
    const op = <i32>jobArg(s, 2), rank = <i32>jobArg(s, 3), os = jobArg(s, 4), x = jobArg(s, 5), y = jobArg(s, 6);
    if (dbl) reduceInto<f64>(op, rank, s + JOB_SHAPE, os, s + JOB_STRIDES, x, y);
    else reduceInto<f32>(op, rank, s + JOB_SHAPE, os, s + JOB_STRIDES, x, y);
  } else if (kind == J_WINO_DW) {
    winogradGradPhase(<i32>jobArg(s, 1), <i32>jobArg(s, 2), <i32>jobArg(s, 3), jobArg(s, 4), jobArg(s, 5), jobArg(s, 6),
      jobArg(s, 7), jobArg(s, 8), jobArg(s, 9), <i32>jobArg(s, 10), <i32>jobArg(s, 11), <i32>jobArg(s, 12),
      <i32>jobArg(s, 13), <i32>jobArg(s, 14), jobArg(s, 15) != 0);
  } else if (kind == J_POOL) {
    const pass = <i32>jobArg(s, 2), lo = <i32>jobArg(s, 3), hi = <i32>jobArg(s, 4);
    const x = jobArg(s, 5), a = jobArg(s, 6), y = jobArg(s, 7), idx = jobArg(s, 8);
    const H = <i32>jobArg(s, 9), W = <i32>jobArg(s, 10), OH = <i32>jobArg(s, 11), OW = <i32>jobArg(s, 12);
    const ht = jobArg(s, 13), wt = jobArg(s, 14), halving = jobArg(s, 15) != 0;
    if (dbl) maxPoolRange<f64>(pass, lo, hi, x, a, y, idx, H, W, OH, OW, ht, wt, halving);
    else maxPoolRange<f32>(pass, lo, hi, x, a, y, idx, H, W, OH, OW, ht, wt, halving);
  } else if (kind == J_COPY) {
    const rank = <i32>jobArg(s, 2), ds = jobArg(s, 3), ss = jobArg(s, 4), dst = jobArg(s, 5), src = jobArg(s, 6);
    if (dbl) copyStridedSerial<u64>(rank, s + JOB_SHAPE, ds, ss, dst, src);
    else copyStridedSerial<u32>(rank, s + JOB_SHAPE, ds, ss, dst, src);
  } else if (kind != 0) {
    unreachable();
  }
}

export function unary_f32(op: i32, x: usize, y: usize, n: usize): void { unary<f32>(op, x, y, n); }
export function unary_f64(op: i32, x: usize, y: usize, n: usize): void { unary<f64>(op, x, y, n); }

export function binary_f32(op: i32, rank: i32, shape: usize, sa: usize, sb: usize, a: usize, b: usize, y: usize): void {
  binary<f32>(op, rank, shape, sa, sb, a, b, y);
}
export function binary_f64(op: i32, rank: i32, shape: usize, sa: usize, sb: usize, a: usize, b: usize, y: usize): void {
  binary<f64>(op, rank, shape, sa, sb, a, b, y);
}

export function where_f32(rank: i32, shape: usize, sc: usize, sa: usize, sb: usize, c: usize, a: usize, b: usize, y: usize): void {
  where<f32>(rank, shape, sc, sa, sb, c, a, b, y);
}
export function where_f64(rank: i32, shape: usize, sc: usize, sa: usize, sb: usize, c: usize, a: usize, b: usize, y: usize): void {
  where<f64>(rank, shape, sc, sa, sb, c, a, b, y);
}

export function cast_f32_f64(x: usize, y: usize, n: usize): void { castF32F64(x, y, n); }
export function cast_f64_f32(x: usize, y: usize, n: usize): void { castF64F32(x, y, n); }

export function reduce_f32(op: i32, rank: i32, shape: usize, os: usize, x: usize, y: usize, outSize: usize): void {
  reduce<f32>(op, rank, shape, os, x, y, outSize);
}
export function reduce_f64(op: i32, rank: i32, shape: usize, os: usize, x: usize, y: usize, outSize: usize): void {
  reduce<f64>(op, rank, shape, os, x, y, outSize);
}

export function gemm_f32(M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize, b: usize, rsB: usize, csB: usize,
  c: usize, ldc: usize, accumulate: bool): void {
  gemm<f32>(M, N, K, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
}
export function gemm_f64(M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize, b: usize, rsB: usize, csB: usize,
  c: usize, ldc: usize, accumulate: bool): void {
  gemm<f64>(M, N, K, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
}

export function matmul_f32(batch: i32, offs: usize, M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize,
  b: usize, rsB: usize, csB: usize, y: usize): void {
  matmulBatched<f32>(batch, offs, M, N, K, a, rsA, csA, b, rsB, csB, y);
}
export function matmul_f64(batch: i32, offs: usize, M: i32, N: i32, K: i32, a: usize, rsA: usize, csA: usize,
  b: usize, rsB: usize, csB: usize, y: usize): void {
  matmulBatched<f64>(batch, offs, M, N, K, a, rsA, csA, b, rsB, csB, y);
}

// Convolutions: (in0, in1, out, N, C, H, W, O, KH, KW, OH, OW, strideH, strideW, padH, padW, dilH, dilW)
export function conv2d_f32(x: usize, w: usize, y: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32, KW: i32,
  OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2d<f32>(x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}
export function conv2d_f64(x: usize, w: usize, y: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32, KW: i32,
  OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2d<f64>(x, w, y, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}
export function conv2dGradInput_f32(dy: usize, w: usize, dx: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2dGradInput<f32>(dy, w, dx, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}
export function conv2dGradInput_f64(dy: usize, w: usize, dx: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2dGradInput<f64>(dy, w, dx, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}
export function conv2dGradFilter_f32(x: usize, dy: usize, dw_: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2dGradFilter<f32>(x, dy, dw_, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}
export function conv2dGradFilter_f64(x: usize, dy: usize, dw_: usize, N: i32, C: i32, H: i32, W: i32, O: i32, KH: i32,
  KW: i32, OH: i32, OW: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32): void {
  conv2dGradFilter<f64>(x, dy, dw_, N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
}

// Pooling: (inputs..., out, N*C, H, W, OH, OW, kh, kw, strideH, strideW, padH, padW)
export function maxPool2d_f32(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2d<f32>(x, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function maxPool2d_f64(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2d<f64>(x, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function maxPool2dGrad_f32(x: usize, dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32,
  kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2dGrad<f32>(x, dy, dx, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function maxPool2dGrad_f64(x: usize, dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32,
  kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2dGrad<f64>(x, dy, dx, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function maxPool2dSelect_f32(x: usize, gx: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32,
  kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2dSelect<f32>(x, gx, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function maxPool2dSelect_f64(x: usize, gx: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32,
  kw: i32, sh: i32, sw: i32, ph: i32, pw: i32): void { maxPool2dSelect<f64>(x, gx, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function avgPool2d_f32(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { avgPool2d<f32>(x, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function avgPool2d_f64(x: usize, y: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { avgPool2d<f64>(x, y, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function avgPool2dGrad_f32(dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { avgPool2dGrad<f32>(dy, dx, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }
export function avgPool2dGrad_f64(dy: usize, dx: usize, NC: i32, H: i32, W: i32, OH: i32, OW: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32): void { avgPool2dGrad<f64>(dy, dx, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw); }

// Copies take the element width, not the float type: b32 for float32, b64 for float64.
export function copy_b32(rank: i32, shape: usize, ds: usize, ss: usize, dst: usize, src: usize): void {
  copyStrided<u32>(rank, shape, ds, ss, dst, src);
}
export function copy_b64(rank: i32, shape: usize, ds: usize, ss: usize, dst: usize, src: usize): void {
  copyStrided<u64>(rank, shape, ds, ss, dst, src);
}
export function gather_b32(x: usize, y: usize, outer: i32, n: i32, inner: i32, idx: usize, J: i32): void {
  gather<u32>(x, y, outer, n, inner, idx, J);
}
export function gather_b64(x: usize, y: usize, outer: i32, n: i32, inner: i32, idx: usize, J: i32): void {
  gather<u64>(x, y, outer, n, inner, idx, J);
}
export function scatterAdd_f32(g: usize, y: usize, outer: i32, n: i32, inner: i32, idx: usize, J: i32): void {
  scatterAdd<f32>(g, y, outer, n, inner, idx, J);
}
export function scatterAdd_f64(g: usize, y: usize, outer: i32, n: i32, inner: i32, idx: usize, J: i32): void {
  scatterAdd<f64>(g, y, outer, n, inner, idx, J);
}
