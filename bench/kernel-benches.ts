// Kernel micro-benchmarks beside tfjs (wasm and cpu backends) in the same process: convolution forward
// and both gradients at a Conv4 layer's shape, elementwise and reduction bandwidth, and softmax
// cross-entropy. Each benchmark feeds both engines the same numbers, checks that their results agree,
// then times them interleaved (bench/harness.ts).

import { add, conv2d, conv2dGradFilter, conv2dGradInput, crossEntropy, exp, sum, tensor, tidy, valueAndGrad, type Tensor } from '../index.js';
import { HostRng, oihwToHwio, relErr } from './data.js';
import { timeInterleaved, type Contender } from './harness.js';
import { check, errorRow, oursMem, tfMem, timedRows, tracked, type Ctx, type Row, type Unit } from './rows.js';
import { useTfBackend, type Tf } from './tfjs.js';
import type * as TF from '@tensorflow/tfjs-core';

/** One engine's side of a benchmark, made on the engine's active backend. */
interface Prepared {
  op: () => void;
  /** The operation's result (ours: in the peer's layout), for the cross-check. */
  value: () => Promise<ArrayLike<number>> | ArrayLike<number>;
  dispose: () => void;
}

interface PairSpec {
  name: string;
  unit: Unit;
  /** FLOPs (GFLOP/s) or bytes moved (GB/s) per operation; unused for ms. */
  work: number;
  ours: () => Prepared;
  tf: (tf: Tf) => Prepared;
  peers: readonly ('wasm' | 'cpu')[];
  checkWhat: string;
  tolerance: number;
  /** Timed repetitions, if fewer than the suite's (a slow peer). */
  maxReps?: number;
}

async function pairBench(ctx: Ctx, spec: PairSpec): Promise<Row[]> {
  const { tf } = ctx;
  return tracked(ctx, spec.name, 'ours', oursMem, (om) => tracked(ctx, spec.name, 'tfjs', () => tfMem(tf), async (tm) => {
    const ours = spec.ours();
    const peers: { backend: 'wasm' | 'cpu'; p: Prepared }[] = [];
    const failed: Row[] = [];
    let leaked = 0;
    try {
      for (const backend of spec.peers) {
        await useTfBackend(tf, backend);
        const live = tf.memory().numTensors;
        try {
          // Probe once before the memory baseline: tfjs leaks the tensors of a call that throws.
          const p = spec.tf(tf);
          try { tf.tidy(() => { p.op(); }); peers.push({ backend, p }); } catch (e) { p.dispose(); throw e; }
        } catch (e) {
          const r = errorRow(spec.name, `tfjs-${backend}`, spec.unit, backend === 'wasm' ? ctx.tfjs.wasmThreads : 1, e);
          r.leakedTensors = tf.memory().numTensors - live;
          leaked += r.leakedTensors;
          failed.push(r);
        }
      }
      tm.peerLeak(leaked);
      om.setup(); tm.setup();
      const mine = await tidy(async () => Array.from(await ours.value()));
      const errs: number[] = [];
      for (const { backend, p } of peers) {
        await useTfBackend(tf, backend);
        errs.push(relErr(mine, await p.value()));
      }
      const cs: Contender[] = [
        { impl: ctx.oursImpl, threads: ctx.oursThreads, finish: ctx.finish, op: () => tidy(() => { ours.op(); }) },
        ...peers.map(({ backend, p }): Contender => ({
          impl: `tfjs-${backend}`, threads: backend === 'wasm' ? ctx.tfjs.wasmThreads : 1,
          activate: () => useTfBackend(tf, backend), op: () => tf.tidy(() => { p.op(); }),
        })),
      ];
      const timing = { ...ctx.timing, reps: Math.min(ctx.timing.reps, spec.maxReps ?? Infinity) };
      const rows = timedRows(spec.name, spec.unit, cs, await timeInterleaved(cs, timing), spec.work);
      rows.slice(1).forEach((r, i) => { r.check = check(spec.checkWhat, errs[i], spec.tolerance); });
      om.runs(); tm.runs();
      return [...rows, ...failed];
    } finally {
      ours.dispose();
      for (const { p } of peers) p.dispose();
    }
  }));
}

// ---------- convolution at a Conv4 layer's shape ----------

const nchwToNhwc = (a: ArrayLike<number>, n: number, c: number, h: number, w: number) => {
  const r = new Float32Array(a.length);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    r[((i * h + y) * w + x) * c + k] = a[((i * c + k) * h + y) * w + x];
  }
  return r;
};

/**
 * Conv4's second block at batch `n`: 64 -> 64 channels, 3x3, padding 1, on 14x14 maps. Ours is
 * NCHW/OIHW, tfjs NHWC/HWIO; both get the same numbers, and results are compared in tfjs's layout.
 */
export function convKernelBenches(ctx: Ctx, n: number, c = 64, size = 14): { name: string; run: () => Promise<Row[]> }[] {
  const o = c, k = 3, geo = { stride: [1, 1], pad: [1, 1], dilation: [1, 1] };
  const rng = new HostRng(n * 7919 + c);
  const X = rng.normals(n * c * size * size), W = rng.normals(o * c * k * k, 0.05), DY = rng.normals(n * o * size * size);
  const Xt = nchwToNhwc(X, n, c, size, size), Wt = oihwToHwio(W, o, c, k, k), DYt = nchwToNhwc(DY, n, o, size, size);
  const flop = 2 * n * size * size * o * c * k * k;
  const shape = `${n}x${c}x${size}x${size}, ${o}x${c}x3x3 filters`;
  const xShape = [n, c, size, size], yShape = [n, o, size, size], wShape = [o, c, k, k];
  const tfX = (tf: Tf) => tf.tensor4d(Xt, [n, size, size, c]);
  const tfW = (tf: Tf) => tf.tensor4d(Wt, [k, k, c, o]);
  const tfDY = (tf: Tf) => tf.tensor4d(DYt, [n, size, size, o]);
  const oursSide = (make: () => Tensor[], f: (t: Tensor[]) => Tensor, layout: (v: ArrayLike<number>) => ArrayLike<number>): Prepared => {
    const ts = make();
    return { op: () => { f(ts); }, value: async () => layout(await f(ts).data()), dispose: () => ts.forEach((t) => t.dispose()) };
  };
  const tfSide = (tf: Tf, ts: TF.Tensor[], f: (t: TF.Tensor[]) => TF.Tensor): Prepared => ({
    op: () => { f(ts); }, value: () => tf.tidy(() => f(ts).dataSync() as Float32Array), dispose: () => tf.dispose(ts),
  });
  const tol = 1e-4;
  return [
    {
      name: `conv2d fwd ${shape}`,
      run: () => pairBench(ctx, {
        name: `conv2d fwd ${shape}`, unit: 'GFLOP/s', work: flop, peers: ['wasm'], tolerance: tol, checkWhat: 'max|y_ours - y_tfjs| / max|y_tfjs|',
        ours: () => oursSide(() => [tensor(X, xShape), tensor(W, wShape)], ([x, w]) => conv2d(x, w, geo), (v) => nchwToNhwc(v, n, o, size, size)),
        tf: (tf) => tfSide(tf, [tfX(tf), tfW(tf)], ([x, w]) => tf.conv2d(x as TF.Tensor4D, w as TF.Tensor4D, 1, 'same')),
      }),
    },
    {
      name: `conv2d grad input ${shape}`,
      run: () => pairBench(ctx, {
        name: `conv2d grad input ${shape}`, unit: 'GFLOP/s', work: flop, peers: ['wasm'], tolerance: tol, checkWhat: 'max|dx_ours - dx_tfjs| / max|dx_tfjs|',
        ours: () => oursSide(() => [tensor(DY, yShape), tensor(W, wShape)], ([dy, w]) => conv2dGradInput(dy, w, xShape, geo), (v) => nchwToNhwc(v, n, c, size, size)),
        // tfjs's transposed convolution is its Conv2DBackpropInput kernel.
        tf: (tf) => tfSide(tf, [tfDY(tf), tfW(tf)], ([dy, w]) => tf.conv2dTranspose(dy as TF.Tensor4D, w as TF.Tensor4D, [n, size, size, c], 1, 'same')),
      }),
    },
    {
      name: `conv2d grad filter ${shape}`,
      run: () => pairBench(ctx, {
        // tfjs-wasm has no Conv2DBackpropFilter (its row records the error); tfjs-cpu's is a scalar
        // loop that takes about a minute per call here, so it is left to the conv4 fwd+bwd row.
        name: `conv2d grad filter ${shape}`, unit: 'GFLOP/s', work: flop, peers: ['wasm'], tolerance: tol, checkWhat: 'max|dw_ours - dw_tfjs| / max|dw_tfjs|',
        ours: () => oursSide(() => [tensor(X, xShape), tensor(DY, yShape)], ([x, dy]) => conv2dGradFilter(x, dy, wShape, geo), (v) => oihwToHwio(Float32Array.from(v), o, c, k, k)),
        tf: (tf) => {
          const ts = [tfX(tf), tfW(tf), tfDY(tf)];
          const g = tf.grad((w: TF.Tensor) => tf.sum(tf.mul(tf.conv2d(ts[0] as TF.Tensor4D, w as TF.Tensor4D, 1, 'same'), ts[2])));
          return { op: () => { g(ts[1]); }, value: () => tf.tidy(() => g(ts[1]).dataSync() as Float32Array), dispose: () => tf.dispose(ts) };
        },
      }),
    },
  ];
}

// ---------- bandwidth ----------

/** Elementwise and reduction throughput in GB/s (bytes read + written per operation / time). */
export function bandwidthBenches(ctx: Ctx, size: number, bn: readonly number[]): { name: string; run: () => Promise<Row[]> }[] {
  const rng = new HostRng(size);
  const A = rng.normals(size), B = rng.normals(size);
  const mb = size >= 2 ** 20 ? `${size / 2 ** 20}M` : `${size / 1024}K`;
  // Batch-norm statistics reduce over every axis but the channels: [N, C, H, W] -> [C].
  const bnSize = bn.reduce((a, b) => a * b, 1);
  const BN = rng.normals(bnSize);
  const side = (tf: Tf, ts: TF.Tensor[], f: (t: TF.Tensor[]) => TF.Tensor): Prepared => ({
    op: () => { f(ts); }, value: () => tf.tidy(() => f(ts).dataSync() as Float32Array), dispose: () => tf.dispose(ts),
  });
  const ours = (ts: Tensor[], f: (t: Tensor[]) => Tensor): Prepared => ({
    op: () => { f(ts); }, value: async () => f(ts).data(), dispose: () => ts.forEach((t) => t.dispose()),
  });
  const spec = (name: string, bytes: number, o: () => Prepared, t: (tf: Tf) => Prepared, tolerance = 1e-6): { name: string; run: () => Promise<Row[]> } => ({
    name, run: () => pairBench(ctx, { name, unit: 'GB/s', work: bytes, peers: ['wasm', 'cpu'], checkWhat: 'max|ours - tfjs| / max|tfjs|', tolerance, ours: o, tf: t }),
  });
  return [
    spec(`add ${mb} f32 (a + b)`, 12 * size, () => ours([tensor(A, [size]), tensor(B, [size])], ([a, b]) => add(a, b)),
      (tf) => side(tf, [tf.tensor1d(A), tf.tensor1d(B)], ([a, b]) => tf.add(a, b))),
    spec(`exp ${mb} f32`, 8 * size, () => ours([tensor(A, [size])], ([a]) => exp(a)),
      (tf) => side(tf, [tf.tensor1d(A)], ([a]) => tf.exp(a)), 1e-5),
    // Sums of a million terms in different orders: f32 rounding differs by more than elementwise ops.
    spec(`sum ${mb} f32 (all elements)`, 4 * size, () => ours([tensor(A, [size])], ([a]) => sum(a)),
      (tf) => side(tf, [tf.tensor1d(A)], ([a]) => tf.sum(a)), 1e-3),
    spec(`sum over N,H,W of ${bn.join('x')} (batch-norm statistics)`, 4 * bnSize, () => ours([tensor(BN, [...bn])], ([a]) => sum(a, [0, 2, 3])),
      // The same reduction in tfjs's NHWC layout is over axes 0, 1, 2.
      (tf) => side(tf, [tf.tensor4d(nchwToNhwc(BN, bn[0], bn[1], bn[2], bn[3]), [bn[0], bn[2], bn[3], bn[1]])], ([a]) => tf.sum(a, [0, 1, 2])), 1e-4),
  ];
}

// ---------- softmax cross-entropy ----------

/** Softmax cross-entropy on [rows, classes] logits, loss and gradient with respect to the logits. */
export function softmaxBench(ctx: Ctx, rows: number, classes: number): { name: string; run: () => Promise<Row[]> } {
  const name = `softmax cross-entropy fwd+bwd ${rows}x${classes}`;
  const rng = new HostRng(rows * 31 + classes);
  const L = rng.normals(rows * classes, 2);
  const labels = Int32Array.from({ length: rows }, () => Math.floor(rng.uniform() * classes));
  const onehot = new Float32Array(rows * classes);
  labels.forEach((c, i) => { onehot[i * classes + c] = 1; });
  return {
    name,
    run: () => pairBench(ctx, {
      name, unit: 'ms', work: 0, peers: ['wasm', 'cpu'], tolerance: 1e-5, checkWhat: 'max|dlogits_ours - dlogits_tfjs| / max|dlogits_tfjs|',
      ours: () => {
        const l = tensor(L, [rows, classes]);
        const vg = valueAndGrad((x: Tensor) => crossEntropy(x, labels));
        return { op: () => { vg(l); }, value: async () => vg(l)[1].data(), dispose: () => l.dispose() };
      },
      tf: (tf) => {
        const l = tf.tensor2d(L, [rows, classes]), y = tf.tensor2d(onehot, [rows, classes]);
        const g = tf.valueAndGrad((x: TF.Tensor) => tf.losses.softmaxCrossEntropy(y, x) as TF.Scalar);
        return { op: () => { g(l); }, value: () => tf.tidy(() => g(l).grad.dataSync() as Float32Array), dispose: () => tf.dispose([l, y]) };
      },
    }),
  };
}
