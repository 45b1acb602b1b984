// TensorFlow.js, the peer: tfjs-core with its WASM backend (XNNPACK) and its plain-JS CPU backend,
// loaded into this same process, plus the same Conv4 as bench/conv4.ts written with tfjs ops (NHWC,
// tfjs's native layout) on the same numbers.

import { register } from 'node:module';
import type * as TF from '@tensorflow/tfjs-core';
import { CONV4, type Conv4Host } from './conv4.js';
import { oihwToHwio } from './data.js';

export type Tf = typeof TF;

export interface Tfjs {
  tf: Tf;
  /** Threads XNNPACK actually uses in tfjs-wasm, as tfjs reports it. */
  wasmThreads: number;
  wasmSimd: boolean;
  versions: Record<string, string>;
}

export async function loadTfjs(): Promise<Tfjs> {
  // Gradients live in a file only tfjs-core's ES-module build has: see tfjs-hooks.ts.
  register('./tfjs-hooks.js', import.meta.url);
  const tf = await import('@tensorflow/tfjs-core');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const cpu = await import('@tensorflow/tfjs-backend-cpu');
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  // Production mode only silences tfjs's console warnings (the "install tfjs-node" banner).
  tf.enableProdMode();
  // Must come before the backend starts; one thread so both engines use one core.
  wasm.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend failed to initialise');
  return {
    tf,
    wasmThreads: wasm.getThreadsCount(),
    wasmSimd: !!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
    versions: { '@tensorflow/tfjs-core': tf.version_core, '@tensorflow/tfjs-backend-wasm': wasm.version_wasm, '@tensorflow/tfjs-backend-cpu': cpu.version_cpu },
  };
}

/** Switches tfjs's global backend; tensors must be made after this to live on it. */
export async function useTfBackend(tf: Tf, name: 'wasm' | 'cpu'): Promise<void> {
  if (tf.getBackend() !== name && !(await tf.setBackend(name))) throw new Error(`tfjs: backend '${name}' failed to initialise`);
}

export interface TfConv4 {
  /** Same order as flatParams in conv4.ts: per block filter (HWIO), gamma, beta; then fc w, b. */
  params: TF.Tensor[];
  x: TF.Tensor4D;
  y: TF.Tensor2D;
  loss: (params: TF.Tensor[]) => TF.Scalar;
  dispose: () => void;
}

/** Uploads the host data to tfjs's current backend. */
export function tfConv4(tf: Tf, h: Conv4Host): TfConv4 {
  const { filters: f, classes, size, eps } = CONV4;
  const params: TF.Tensor[] = [];
  h.convW.forEach((w, l) => {
    const cin = l === 0 ? 1 : f;
    params.push(tf.tensor4d(oihwToHwio(w, f, cin, 3, 3), [3, 3, cin, f]), tf.tensor1d(h.gamma[l]), tf.tensor1d(h.beta[l]));
  });
  params.push(tf.tensor2d(h.fcW, [f, classes]), tf.tensor1d(h.fcB));
  // With one input channel, NCHW and NHWC hold the same bytes.
  const x = tf.tensor4d(h.x, [h.batch, size, size, 1]);
  const y = tf.tensor2d(h.oneHot, [h.batch, classes]);
  const loss = (p: TF.Tensor[]): TF.Scalar => {
    let a: TF.Tensor4D = x;
    for (let l = 0; l < CONV4.blocks; l++) {
      const [w, g, b] = p.slice(3 * l, 3 * l + 3) as [TF.Tensor4D, TF.Tensor1D, TF.Tensor1D];
      const c = tf.conv2d(a, w, 1, 1);
      // tfjs's own idiom for training-mode batch norm: moments, then the fused batchNorm op (whose
      // gradient wants the statistics with the rank of scale and shift, hence no keepDims).
      const m = tf.moments(c, [0, 1, 2]);
      a = tf.maxPool(tf.relu(tf.batchNorm(c, m.mean, m.variance, b, g, eps)) as TF.Tensor4D, 2, 2, 'valid');
    }
    const logits = tf.add(tf.matMul(tf.reshape(a, [h.batch, f]), p[p.length - 2] as TF.Tensor2D), p[p.length - 1]);
    return tf.losses.softmaxCrossEntropy(y, logits) as TF.Scalar;
  };
  return { params, x, y, loss, dispose: () => tf.dispose([...params, x, y]) };
}
