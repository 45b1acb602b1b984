// Entry point of the kernels module: memory management plus one export per kernel and dtype.
// Built with `--runtime minimal`: heap.alloc/heap.free are a real TLSF allocator (16-byte
// aligned, grows memory as needed); nothing here allocates managed objects, so the GC never runs.

import { unary, binary, where, castF32F64, castF64F32 } from './elementwise';
import { reduce } from './reduce';
import { gemm, matmulBatched } from './matmul';
import { conv2d, conv2dGradInput, conv2dGradFilter } from './conv';
import { maxPool2d, maxPool2dGrad, maxPool2dSelect, avgPool2d, avgPool2dGrad } from './pool';
import { copyStrided, gather, scatterAdd } from './copy';

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
