// The functions a learned optimiser is trained and tested on (Andrychowicz et al. 2016, section 3):
// random quadratics f(θ) = ||Wθ − y||², and a small MLP classifying images (MNIST in the paper).

import * as nn from '../engine/nn.js';
import * as ops from '../engine/ops.js';
import { treeMap } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { keep } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { DType } from '../kernels/backend.js';
import type { Optimizee } from './l2l.js';

export interface QuadraticOptions {
  rng: Random;
  /** Independent functions optimised side by side, their losses averaged (default 128, the reference code's batch). */
  batch?: number;
  /** Dimensions of θ (default 10). */
  dims?: number;
  /**
   * How W and y are drawn: 'uniform' U[0, 1), the reference code's (deepmind/learning-to-learn
   * problems.quadratic; the default), or 'gaussian' N(0, 1), the paper's text.
   */
  draw?: 'uniform' | 'gaussian';
  dtype?: DType;
}

/**
 * A random quadratic family member: f(θ) = mean over the batch of Σ_i ((Wθ − y)_i)², W [batch, d, d],
 * y [batch, d], θ_0 ~ N(0, 0.01²) [batch, d] (the reference code's start). Owns W and y: dispose() frees them.
 */
export function quadratic(o: QuadraticOptions): Optimizee<Tensor> & { w: Tensor; y: Tensor } {
  const b = o.batch ?? 128, d = o.dims ?? 10, dtype = o.dtype ?? 'float32';
  const draw = (shape: number[]) => (o.draw === 'gaussian' ? o.rng.normal(shape, { dtype }) : o.rng.uniform(shape, { dtype }));
  const w = keep(draw([b, d, d])), y = keep(draw([b, d]));
  const start = keep(o.rng.normal([b, d], { std: 0.01, dtype }));
  return {
    w, y,
    init: () => ops.add(start, 0),
    loss: (theta) => {
      const r = ops.sub(ops.reshape(ops.matmul(w, ops.reshape(theta, [b, d, 1])), [b, d]), y);
      return ops.mean(ops.sum(ops.mul(r, r), 1));
    },
    dispose: () => { w.dispose(); y.dispose(); start.dispose(); },
  };
}

export interface MLPOptimizeeOptions {
  rng: Random;
  /** Images [n, features] (pixels in [0, 1]) and their labels 0..classes-1. */
  images: Float32Array;
  labels: Uint8Array;
  features: number;
  classes?: number;
  /** Hidden layer sizes (default [20]: the paper's MNIST net) and their activation (default sigmoid). */
  hidden?: number[];
  activation?: 'sigmoid' | 'relu' | 'tanh';
  /** Examples per step, drawn at random each step (default 128). */
  batch?: number;
}

export type MLPParams = { layers: nn.LinearParams[] };

/**
 * An MLP classifier as an optimizee: weights and biases drawn N(0, 0.01²) (the reference code's
 * start), mean cross-entropy on a fresh random batch at every step (the same batch for a given step t,
 * so f(θ, t) is a function of θ).
 */
export function mlpClassifier(o: MLPOptimizeeOptions): Optimizee<MLPParams> {
  const classes = o.classes ?? 10, sizes = [o.features, ...(o.hidden ?? [20]), classes];
  const n = o.labels.length;
  if (o.images.length !== n * o.features) throw new Error(`mlpClassifier: ${o.images.length} pixel values for ${n} labels of ${o.features} features`);
  const act = o.activation ?? 'sigmoid';
  const init0 = sizes.slice(1).map((out, l) => ({ w: keep(o.rng.normal([sizes[l], out], { std: 0.01 })), b: keep(o.rng.normal([out], { std: 0.01 })) }));
  const batches = stepBatches(o, [o.features], classes);
  return {
    init: () => ({ layers: init0.map((l) => ({ w: ops.add(l.w, 0), b: ops.add(l.b, 0) })) }),
    loss: (theta, t) => {
      const { x, y } = batches.at(t);
      let h = x;
      theta.layers.forEach((l, i) => {
        h = nn.linear(l, h);
        if (i < theta.layers.length - 1) h = act === 'relu' ? ops.relu(h) : act === 'tanh' ? ops.tanh(h) : ops.sigmoid(h);
      });
      return ops.crossEntropy(h, y);
    },
    dispose: () => {
      init0.forEach((l) => { l.w.dispose(); l.b.dispose(); });
      batches.dispose();
    },
  };
}

export type CNNParams = { conv: nn.Conv2dParams[]; fc: nn.LinearParams[] };

/**
 * A small CNN classifier as an optimizee, the stand-in for the paper's CIFAR-10 network on MNIST-sized
 * images: `channels` 3x3 convolutions of stride 2 (padding 1) with ReLU, then a hidden fully
 * connected layer of `hidden` ReLU units and the output layer; the library's Xavier initialisation,
 * mean cross-entropy on a fresh random batch each step. Parameter paths start with `conv` or `fc`,
 * so `optim.grouped` can give each part its own optimiser.
 */
export function cnnClassifier(o: MLPOptimizeeOptions & { side: number; channels?: number[] }): Optimizee<CNNParams> {
  const classes = o.classes ?? 10, channels = o.channels ?? [8, 8], hiddenSize = o.hidden?.[0] ?? 32, batch = o.batch ?? 128;
  const n = o.labels.length;
  if (o.images.length !== n * o.side * o.side) throw new Error(`cnnClassifier: ${o.images.length} pixel values for ${n} labels of ${o.side} x ${o.side}`);
  let size = o.side;
  const conv = channels.map((c, l) => { size = Math.floor((size + 1) / 2); return keep(nn.initConv2d(o.rng, l === 0 ? 1 : channels[l - 1], c, 3)); });
  const flat = channels[channels.length - 1] * size * size;
  const fc = [keep(nn.initLinear(o.rng, flat, hiddenSize)), keep(nn.initLinear(o.rng, hiddenSize, classes))];
  const batches = stepBatches(o, [1, o.side, o.side], classes);
  const copy = <T extends Record<string, Tensor>>(p: T): T => treeMap((x: Tensor) => ops.add(x, 0), p);
  return {
    init: () => ({ conv: conv.map(copy), fc: fc.map(copy) }),
    loss: (theta, t) => {
      const { x, y } = batches.at(t);
      let h = x;
      for (const c of theta.conv) h = ops.relu(nn.conv2dLayer(c, h, { stride: 2, padding: 1 }));
      h = ops.relu(nn.linear(theta.fc[0], ops.reshape(h, [batch, -1])));
      return ops.crossEntropy(nn.linear(theta.fc[1], h), y);
    },
    dispose: () => {
      [...conv, ...fc].forEach((p) => { p.w.dispose(); p.b.dispose(); });
      batches.dispose();
    },
  };
}

/**
 * The minibatch of each step t: `batch` examples drawn at random from `rng` the first time step t is
 * asked for, then kept for the optimizee's lifetime (a trajectory and its evaluation revisit step t),
 * as x [batch, ...shape] and one-hot labels.
 */
function stepBatches(o: MLPOptimizeeOptions, shape: number[], classes: number) {
  const batch = o.batch ?? 128, n = o.labels.length, size = shape.reduce((a, b) => a * b, 1);
  const kept = new Map<number, { x: Tensor; y: Tensor }>();
  return {
    at(t: number) {
      let bt = kept.get(t);
      if (!bt) {
        const idx = Array.from({ length: batch }, () => Math.floor(o.rng.next() * n));
        const x = new Float32Array(batch * size);
        idx.forEach((i, k) => x.set(o.images.subarray(i * size, (i + 1) * size), k * size));
        bt = keep({ x: ops.tensor(x, [batch, ...shape]), y: ops.oneHot(idx.map((i) => o.labels[i]), classes) });
        kept.set(t, bt);
      }
      return bt;
    },
    dispose() {
      for (const b of kept.values()) { b.x.dispose(); b.y.dispose(); }
      kept.clear();
    },
  };
}
