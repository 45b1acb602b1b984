// Conv4, the few-shot image model of the MAML paper, on our engine: 4 blocks of
// [3x3 conv, 64 filters, pad 1 -> batch norm over (N, H, W) with learnable scale and shift -> ReLU ->
// 2x2 max-pool] take 28x28 to 14, 7, 3, 1; then a linear layer 64 -> 5 and mean cross-entropy.
// The convolutions have no bias: batch norm subtracts the per-channel mean right after, so a bias
// would have an exactly zero gradient and only add work.

import {
  Tensor, add, conv2d, crossEntropy, div, flatten, matmul, maxPool2d, mean, mul, relu, sqrt, sub, tensor,
} from '../index.js';
import { HostRng } from './data.js';

export const CONV4 = { blocks: 4, filters: 64, classes: 5, size: 28, eps: 1e-5 };

/** Inputs and parameters as plain arrays, in our layout (NCHW, filters OIHW). */
export interface Conv4Host {
  batch: number;
  x: Float32Array;
  oneHot: Float32Array;
  convW: Float32Array[];
  gamma: Float32Array[];
  beta: Float32Array[];
  fcW: Float32Array;
  fcB: Float32Array;
}

export function makeConv4Host(batch: number, seed = 7): Conv4Host {
  const rng = new HostRng(seed);
  const { blocks, filters: f, classes, size } = CONV4;
  const oneHot = new Float32Array(batch * classes);
  for (let i = 0; i < batch; i++) oneHot[i * classes + (i % classes)] = 1;
  const convW: Float32Array[] = [], gamma: Float32Array[] = [], beta: Float32Array[] = [];
  for (let l = 0; l < blocks; l++) {
    const cin = l === 0 ? 1 : f;
    convW.push(rng.normals(f * cin * 9, Math.sqrt(2 / (cin * 9))));
    // Scale and shift away from 1 and 0 so their gradients are exercised by the cross-check.
    gamma.push(rng.normals(f, 0.1).map((v) => 1 + v));
    beta.push(rng.normals(f, 0.1));
  }
  return {
    batch, x: rng.uniforms(batch * size * size), oneHot, convW, gamma, beta,
    fcW: rng.normals(f * classes, Math.sqrt(1 / f)), fcB: rng.normals(classes, 0.01),
  };
}

export interface OursParams {
  convs: { w: Tensor; gamma: Tensor; beta: Tensor }[];
  fc: { w: Tensor; b: Tensor };
}

/** Batch norm in training mode, from our ops: statistics over axes (N, H, W) of an NCHW tensor. */
export function batchNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = CONV4.eps): Tensor {
  const axes = [0, 2, 3];
  const d = sub(x, mean(x, axes, true));
  const v = mean(mul(d, d), axes, true);
  // Fold the per-channel scale first so only one full-size multiply remains.
  return add(mul(d, div(gamma, sqrt(add(v, eps)))), beta);
}

export function conv4Loss(p: OursParams, x: Tensor, y: Tensor): Tensor {
  let h = x;
  for (const c of p.convs) h = maxPool2d(relu(batchNorm(conv2d(h, c.w, { padding: 1 }), c.gamma, c.beta)), 2);
  const logits = add(matmul(flatten(h), p.fc.w), p.fc.b);
  return crossEntropy(logits, y);
}

/** Uploads the host data to our active backend. The caller disposes the tensors. */
export function oursConv4(h: Conv4Host): { params: OursParams; x: Tensor; y: Tensor; all: Tensor[] } {
  const { filters: f, classes, size } = CONV4;
  const params: OursParams = {
    convs: h.convW.map((w, l) => ({
      w: tensor(w, [f, l === 0 ? 1 : f, 3, 3]),
      gamma: tensor(h.gamma[l], [1, f, 1, 1]),
      beta: tensor(h.beta[l], [1, f, 1, 1]),
    })),
    fc: { w: tensor(h.fcW, [f, classes]), b: tensor(h.fcB, [classes]) },
  };
  const x = tensor(h.x, [h.batch, 1, size, size]);
  const y = tensor(h.oneHot, [h.batch, classes]);
  return { params, x, y, all: [...flatParams(params), x, y] };
}

/** Parameters (or their gradients) in one fixed order: per block w, gamma, beta; then fc w, b. */
export const flatParams = (p: OursParams): Tensor[] => [...p.convs.flatMap((c) => [c.w, c.gamma, c.beta]), p.fc.w, p.fc.b];
