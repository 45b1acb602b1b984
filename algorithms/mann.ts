// Memory-augmented neural network with least-recently-used access (Santoro et al. 2016, "One-shot
// learning with memory-augmented neural networks", section 3.2): an LSTM controller emits a read
// key and an add vector per head; reads are by content; writes go to the rows just read or to the
// least-used rows, mixed by a learned gate; usage decays and accumulates reads and writes.

import * as ops from '../engine/ops.js';
import * as nn from '../engine/nn.js';
import * as mem from '../engine/memory-addressing.js';
import type { DType } from '../kernels/backend.js';
import type { Random } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';

export interface MANNConfig {
  /** Per-step input size (pixels + ways for the label-delay episodes). */
  inputSize: number;
  /** Classes to predict. */
  ways: number;
  /** LSTM controller units (200 in the paper). */
  hidden?: number;
  /** Memory rows N and width W (128 x 40 in the paper). */
  rows?: number;
  width?: number;
  /** Read heads, each with its own write (4 in the paper). */
  heads?: number;
  /** Usage decay gamma (0.95 here). */
  decay?: number;
  /**
   * The initial value of a learned key strength beta (softplus) per read head, which multiplies the
   * cosine similarity before the softmax, as in the NTM (default 5). Santoro et al.'s equation has none
   * (beta = 1), and with cosines in [-1, 1] a softmax over 128 rows can barely focus; false gives
   * that literal model.
   */
  keyStrength?: number | false;
  /**
   * Whether each head writes its read key k_t (Santoro et al.'s equation, M_t = M_{t-1} + w_w k_t^T)
   * instead of a separate add vector a_t = tanh(W_a h_t), the NTM's add vector. Default false: with
   * one vector, what a step writes (the label just given, into the previous image's rows) is also
   * its query for the current image, and trained that way here the model stayed far longer on the
   * plateau where it only guesses labels not yet used (bench/REPRODUCTIONS.md).
   */
  writeKey?: boolean;
}

export interface MANNParams {
  [k: string]: any;
  controller: nn.LSTMParams;
  /** Emits, per head: key (width), write gate alpha (1), key strength (1, unless off), add vector (width, unless writeKey). */
  heads: nn.LinearParams;
  output: nn.LinearParams;
}

/** The key strength's initial value unless configured: sharp enough to focus reads from the start. */
export const DEFAULT_KEY_STRENGTH = 5;

const sizes = (c: MANNConfig) => ({ hidden: c.hidden ?? 200, rows: c.rows ?? 128, width: c.width ?? 40, heads: c.heads ?? 4 });

export function initMANN(rng: Random, c: MANNConfig, o: { dtype?: DType } = {}): MANNParams {
  const { hidden, width, heads } = sizes(c);
  const strength = c.keyStrength ?? DEFAULT_KEY_STRENGTH;
  const per = width + 1 + (strength === false ? 0 : 1) + (c.writeKey ? 0 : width);
  // The heads are drawn first: the order the reported runs used.
  const headsLinear = nn.initLinear(rng, hidden, heads * per, { init: 'xavierUniform', ...o });
  const params = {
    controller: nn.initLSTM(rng, c.inputSize + heads * width, hidden, o),
    heads: headsLinear,
    output: nn.initLinear(rng, hidden + heads * width, c.ways, { init: 'xavierUniform', ...o }),
  };
  if (strength !== false) {
    // Biases start at zero, but each head's key-strength output at softplus^-1(strength).
    if (!(strength > 0)) throw new Error(`initMANN: keyStrength must be a positive number or false, got ${strength}`);
    const b = new Float64Array(heads * per);
    for (let h = 0; h < heads; h++) b[h * per + width + 1] = Math.log(Math.expm1(strength));
    params.heads.b.dispose();
    params.heads.b = ops.tensor(b, [heads * per], { dtype: o.dtype ?? 'float32' });
  }
  return params;
}

/**
 * Runs the MANN over a time-major input [steps, batch, inputSize] and returns class logits
 * [steps, batch, ways]. Per step t (Santoro et al., eqs. 6-8 and section 3.2):
 *   w_lu(t-1) from the previous usage: head h writes to the h-th least-used row (together the paper's
 *     n = heads least-used rows), and the single least-used row is zeroed before writing;
 *   w_w = sigmoid(alpha) w_r(t-1) + (1 - sigmoid(alpha)) w_lu(t-1);  M_t = M_{t-1} + sum_h w_w^h a_h^T
 *     (the add vector a_h, or the key k_h with writeKey);
 *   w_r = softmax(beta cos(k, M_t));  r = w_r^T M_t;  w_u = gamma w_u + sum_h (w_r^h + w_w^h);
 *   logits = W [h_t; r_t] + b.
 */
export function mann(p: MANNParams, input: Tensor, c: MANNConfig): Tensor {
  const { rows, width, heads: H } = sizes(c);
  const gamma = c.decay ?? 0.95, beta = c.keyStrength !== false, add = !c.writeKey;
  const [steps, B, inSize] = input.shape;
  if (input.rank !== 3 || inSize !== c.inputSize) throw new Error(`mann: input [${input.shape}] must be [steps, batch, ${c.inputSize}]`);
  const dtype = input.dtype, hidden = p.controller.wh.shape[0];
  let s: nn.LSTMState = { h: ops.zeros([B, hidden], { dtype }), c: ops.zeros([B, hidden], { dtype }) };
  // Memory starts at a small constant (not zero, so that cosines are defined without the eps alone).
  let M = ops.full([B, rows, width], 1e-6, { dtype });
  let r = ops.zeros([B, H * width], { dtype });
  let wr = ops.zeros([B, H, rows], { dtype });
  let wu = ops.zeros([B, rows], { dtype });
  const outs: Tensor[] = [];
  for (let t = 0; t < steps; t++) {
    const x = ops.reshape(ops.slice(input, [t, 0, 0], [1, B, inSize]), [B, inSize]);
    s = nn.lstmCell(p.controller, ops.concat([x, r], 1), s);
    const raw = ops.reshape(nn.linear(p.heads, s.h), [B, H, -1]);
    const parts = ops.split(raw, [width, 1, ...(beta ? [1] : []), ...(add ? [width] : [])], 2);
    const key = ops.tanh(parts[0]), alpha = ops.sigmoid(parts[1]);                        // [B, H, W], [B, H, 1]
    const written = add ? ops.tanh(parts[parts.length - 1]) : key;                         // [B, H, W]
    const rank = mem.usageRank(wu);                                                        // [B, N]
    const wlu = ops.stack(Array.from({ length: H }, (_, h) => ops.equal(rank, h)), 1);   // [B, H, N]
    const ww = ops.add(ops.mul(alpha, wr), ops.mul(ops.sub(1, alpha), wlu));
    M = ops.mul(M, ops.expandDims(ops.sub(1, ops.equal(rank, 0)), 2));                   // zero the least-used row
    M = ops.add(M, ops.matmul(ww, written, { transA: true }));                             // sum_h w_w^h a_h^T
    wr = mem.contentAddressing(M, key, beta ? ops.softplus(parts[2]) : undefined);
    r = ops.reshape(mem.read(M, wr), [B, H * width]);
    wu = ops.add(ops.mul(wu, gamma), ops.sum(ops.add(wr, ww), 1));
    outs.push(nn.linear(p.output, ops.concat([s.h, r], 1)));
  }
  return ops.stack(outs, 0);
}

/** Mean cross-entropy over every step of every episode; labels [steps * batch] (time-major). */
export function mannLoss(p: MANNParams, input: Tensor, labels: ArrayLike<number>, c: MANNConfig): Tensor {
  const logits = mann(p, input, c);
  return ops.crossEntropy(ops.reshape(logits, [-1, c.ways]), labels);
}

/**
 * Accuracy by instance number: entry i is the fraction of correct predictions at the (i+1)-th
 * appearance of a class in its episode, with the count behind it.
 */
export function accuracyByInstance(predicted: ArrayLike<number>, labels: ArrayLike<number>, instance: ArrayLike<number>, instances: number): { correct: number[]; total: number[] } {
  const correct = new Array(instances).fill(0), total = new Array(instances).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const k = instance[i] - 1;
    if (k < 0 || k >= instances) continue;
    total[k]++;
    if (predicted[i] === labels[i]) correct[k]++;
  }
  return { correct, total };
}
