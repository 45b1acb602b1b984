// Functional neural-network layers. A layer is a function of (params, input); params are plain
// objects of tensors made by the matching init function from a seeded generator. Fast weights in a
// meta-learning inner loop are just another such object.

import type { DType } from '../kernels/backend.js';
import * as ops from './ops.js';
import { composite, keep, noGrad } from './runtime.js';
import type { Random } from './random.js';
import type { Tensor } from './tensor.js';

export type Params = { [name: string]: Tensor | Params | Params[] };
export type Init = 'kaimingNormal' | 'kaimingUniform' | 'xavierNormal' | 'xavierUniform';
export interface InitOptions { init?: Init; dtype?: DType }

/** Weights for a layer with the given fan-in and fan-out (He et al. 2015; Glorot & Bengio 2010). */
export function initWeight(rng: Random, shape: readonly number[], fanIn: number, fanOut: number, o: InitOptions = {}): Tensor {
  const dtype = o.dtype ?? 'float32';
  switch (o.init ?? 'kaimingNormal') {
    case 'kaimingNormal': return rng.normal(shape, { std: Math.sqrt(2 / fanIn), dtype });
    case 'kaimingUniform': { const a = Math.sqrt(6 / fanIn); return rng.uniform(shape, { low: -a, high: a, dtype }); }
    case 'xavierNormal': return rng.normal(shape, { std: Math.sqrt(2 / (fanIn + fanOut)), dtype });
    case 'xavierUniform': { const a = Math.sqrt(6 / (fanIn + fanOut)); return rng.uniform(shape, { low: -a, high: a, dtype }); }
  }
}

// ---------- linear ----------

export interface LinearParams { [k: string]: Tensor; w: Tensor; b: Tensor }
export const initLinear = (rng: Random, inFeatures: number, outFeatures: number, o: InitOptions = {}): LinearParams => ({
  w: initWeight(rng, [inFeatures, outFeatures], inFeatures, outFeatures, o),
  b: ops.zeros([outFeatures], { dtype: o.dtype }),
});
/**
 * x [batch, in] -> [batch, out]. Also task-batched: x [tasks, batch, in] with w [tasks, in, out] and
 * b [tasks, out] (per-task fast weights), since the bias is broadcast over the batch axis.
 */
export const linear = (p: LinearParams, x: Tensor): Tensor => composite('linear', () => ops.add(ops.matmul(x, p.w), ops.expandDims(p.b, -2)));

// ---------- binary classification loss ----------

/**
 * Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1] (same shape), computed from
 * the logits as softplus(z) - t z, which never takes the log of a sigmoid that rounded to 0 or 1.
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, targets: Tensor): Tensor {
  if (logits.shape.join() !== targets.shape.join()) {
    throw new Error(`binaryCrossEntropyWithLogits: logits ${JSON.stringify(logits.shape)} and targets ${JSON.stringify(targets.shape)} differ in shape`);
  }
  return composite('binaryCrossEntropyWithLogits', () => ops.mean(ops.sub(ops.softplus(logits), ops.mul(targets, logits))));
}

// ---------- convolution ----------

export interface Conv2dParams { [k: string]: Tensor; w: Tensor; b: Tensor }
export const initConv2d = (rng: Random, inChannels: number, outChannels: number, kernel: number, o: InitOptions = {}): Conv2dParams => ({
  w: initWeight(rng, [outChannels, inChannels, kernel, kernel], inChannels * kernel * kernel, outChannels * kernel * kernel, o),
  b: ops.zeros([outChannels], { dtype: o.dtype }),
});
/** x [N, C, H, W] -> [N, O, H', W'], with a per-channel bias. */
export const conv2dLayer = (p: Conv2dParams, x: Tensor, opts: ops.Conv2dOptions = {}): Tensor =>
  composite('conv2dLayer', () => ops.add(ops.conv2d(x, p.w, opts), ops.reshape(p.b, [1, -1, 1, 1])));

export interface ConvBlockParams { [k: string]: Params; conv: Conv2dParams; bn: BatchNormParams }
export const initConvBlock = (rng: Random, inChannels: number, outChannels: number, o: InitOptions = {}): ConvBlockParams =>
  ({ conv: initConv2d(rng, inChannels, outChannels, 3, o), bn: initBatchNorm(outChannels, o) });
/**
 * One block of the few-shot backbones: 3x3 conv, batch norm (batch statistics), ReLU, and a 2x2
 * max-pool unless `pool` is false; `padding` 1 keeps the size, 0 trims a pixel each side.
 */
export function convBlock(p: ConvBlockParams, x: Tensor, o: { padding?: number; pool?: boolean } = {}): Tensor {
  return composite('convBlock', () => convBlockTail(p, conv2dLayer(p.conv, x, { padding: o.padding ?? 1 }), o));
}
/** What follows a conv block's convolution, for callers that compute the convolution their own way. */
export function convBlockTail(p: ConvBlockParams, convolved: Tensor, o: { pool?: boolean } = {}): Tensor {
  return composite('convBlockTail', () => {
    const h = ops.relu(batchNorm(p.bn, convolved, { stats: 'batch' }).y);
    return o.pool === false ? h : ops.maxPool2d(h, 2);
  });
}

// ---------- batch normalisation ----------

export interface BatchNormParams { [k: string]: Tensor; scale: Tensor; shift: Tensor }
export const initBatchNorm = (channels: number, o: { dtype?: DType } = {}): BatchNormParams => ({
  scale: ops.ones([channels], o), shift: ops.zeros([channels], o),
});
/** Running statistics for one batch-norm layer (one per inner step under MAML++). */
export interface RunningStats { mean: Tensor; variance: Tensor }
export const initRunningStats = (channels: number, o: { dtype?: DType } = {}): RunningStats => ({
  mean: ops.zeros([channels], o), variance: ops.ones([channels], o),
});

/**
 * How batch norm gets its statistics — an explicit switch because the two meta-learning references
 * differ and silently mixing them changes results:
 * - `{ stats: 'batch' }`: always the current batch's statistics, in training and at test time (the
 *   MAML reference implementation; transductive: a test task's query set is normalised with itself).
 * - `{ stats: 'running', running, training }`: batch statistics while training, which also update
 *   `running` (returned as `running` in the result, never differentiated); at test time
 *   (`training: false`) the running statistics alone (MAML++ keeps one set per inner step).
 */
export type BatchNormMode =
  | { stats: 'batch' }
  | { stats: 'running'; running: RunningStats; training: boolean; momentum?: number };

/** Normalises x over every axis but the channel axis 1 ([N, C] or [N, C, H, W]). */
export function batchNorm(p: BatchNormParams, x: Tensor, mode: Extract<BatchNormMode, { stats: 'running' }>, eps?: number): { y: Tensor; running: RunningStats };
export function batchNorm(p: BatchNormParams, x: Tensor, mode: BatchNormMode, eps?: number): { y: Tensor; running?: RunningStats };
export function batchNorm(p: BatchNormParams, x: Tensor, mode: BatchNormMode, eps = 1e-5): { y: Tensor; running?: RunningStats } {
  return composite('batchNorm', () => batchNormIn(p, x, mode, eps));
}
function batchNormIn(p: BatchNormParams, x: Tensor, mode: BatchNormMode, eps: number): { y: Tensor; running?: RunningStats } {
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  const bshape = x.shape.map((d, i) => (i === 1 ? d : 1));
  if (mode.stats === 'running' && !mode.training) {
    const xhat = ops.div(ops.sub(x, ops.reshape(mode.running.mean, bshape)), ops.sqrt(ops.add(ops.reshape(mode.running.variance, bshape), eps)));
    return { y: ops.add(ops.mul(xhat, ops.reshape(p.scale, bshape)), ops.reshape(p.shift, bshape)), running: mode.running };
  }
  const mean = ops.mean(x, axes, true);
  // The variance from the same centred x that is normalised (ops.variance would centre it again),
  // and (x - mean) * (scale / sqrt(variance + eps)) + shift with the scale folded into the
  // per-channel factor: training passes (differentiated, in MAML twice) make one full-size multiply
  // rather than a divide and a multiply, and their backward passes fewer full-size tensors.
  const d = ops.sub(x, mean);
  const variance = ops.mean(ops.mul(d, d), axes, true);
  const y = ops.add(ops.mul(d, ops.div(ops.reshape(p.scale, bshape), ops.sqrt(ops.add(variance, eps)))), ops.reshape(p.shift, bshape));
  if (mode.stats === 'batch') return { y };
  const m = mode.momentum ?? 0.1;
  const running = noGrad(() => ({
    mean: ops.add(ops.mul(mode.running.mean, 1 - m), ops.mul(ops.reshape(mean, [-1]), m)),
    variance: ops.add(ops.mul(mode.running.variance, 1 - m), ops.mul(ops.reshape(variance, [-1]), m)),
  }));
  return { y, running };
}

// ---------- dropout ----------

/**
 * Inverted dropout (Srivastava et al. 2014): in training, each unit of x is zeroed with probability
 * `rate` and the others scaled by 1 / (1 - rate), with the mask drawn from `rng` (a stream of the
 * caller's, so a run can save and resume it); at inference x itself. The mask is a constant, so the
 * gradient flows through the kept units only.
 */
export function dropout(x: Tensor, rate: number, rng: Random, training: boolean): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout: rate must be in [0, 1), got ${rate}`);
  if (!training || rate === 0) return x;
  return composite('dropout', () => {
    const keepMask = ops.greaterEqual(rng.uniform(x.shape, { dtype: x.dtype }), rate);
    return ops.mul(x, ops.mul(keepMask, 1 / (1 - rate)));
  });
}

// ---------- recurrent ----------

export interface LSTMParams { [k: string]: Tensor; wx: Tensor; wh: Tensor; b: Tensor }
/** Forget-gate bias starts at 1, a common choice that helps early training. */
export function initLSTM(rng: Random, inputSize: number, hiddenSize: number, o: InitOptions = {}): LSTMParams {
  const b = new Float64Array(4 * hiddenSize);
  b.fill(1, hiddenSize, 2 * hiddenSize);
  return {
    wx: initWeight(rng, [inputSize, 4 * hiddenSize], inputSize, hiddenSize, { init: 'xavierUniform', ...o }),
    wh: initWeight(rng, [hiddenSize, 4 * hiddenSize], hiddenSize, hiddenSize, { init: 'xavierUniform', ...o }),
    b: ops.tensor(b, [4 * hiddenSize], { dtype: o.dtype ?? 'float32' }),
  };
}
export interface LSTMState { h: Tensor; c: Tensor }
/** One LSTM step (gates in order input, forget, cell, output): x [batch, in] -> new {h, c}. */
export function lstmCell(p: LSTMParams, x: Tensor, s: LSTMState): LSTMState {
  return composite('lstmCell', () => {
    const z = ops.add(ops.add(ops.matmul(x, p.wx), ops.matmul(s.h, p.wh)), p.b);
    const [i, f, g, o] = ops.split(z, 4, 1);
    const c = ops.add(ops.mul(ops.sigmoid(f), s.c), ops.mul(ops.sigmoid(i), ops.tanh(g)));
    return { h: ops.mul(ops.sigmoid(o), ops.tanh(c)), c };
  });
}

export interface BiLSTMParams { [k: string]: LSTMParams; forward: LSTMParams; backward: LSTMParams }
export const initBiLSTM = (rng: Random, inputSize: number, hiddenSize: number, o: InitOptions = {}): BiLSTMParams =>
  ({ forward: initLSTM(rng, inputSize, hiddenSize, o), backward: initLSTM(rng, inputSize, hiddenSize, o) });
/**
 * A bidirectional LSTM over a sequence xs [steps, batch, in], from zero states: one lstmCell run
 * first to last and one last to first. Returns each direction's hidden states [steps, batch, hidden],
 * aligned with the input positions (backward[t] has seen xs[t..end]).
 */
export function biLSTM(p: BiLSTMParams, xs: Tensor): { forward: Tensor; backward: Tensor } {
  if (xs.rank !== 3) throw new Error(`biLSTM: the sequence must be [steps, batch, features], got [${xs.shape}]`);
  const [steps, batch, features] = xs.shape, hidden = p.forward.wh.shape[0];
  if (p.forward.wx.shape[0] !== features) throw new Error(`biLSTM: the input has ${features} features but the cell expects ${p.forward.wx.shape[0]}`);
  return composite('biLSTM', () => {
    const at = ops.split(xs, steps, 0).map((x) => ops.reshape(x, [batch, features]));
    const run = (cell: LSTMParams, order: number[]): Tensor[] => {
      const hs: Tensor[] = new Array(steps);
      let s: LSTMState = { h: ops.zeros([batch, hidden], { dtype: xs.dtype }), c: ops.zeros([batch, hidden], { dtype: xs.dtype }) };
      for (const t of order) { s = lstmCell(cell, at[t], s); hs[t] = s.h; }
      return hs;
    };
    const ahead = [...Array(steps).keys()];
    return { forward: ops.stack(run(p.forward, ahead)), backward: ops.stack(run(p.backward, ahead.reverse())) };
  });
}

// ---------- distances and attention (metric-based meta-learners, memory addressing) ----------

function checkPairs(op: string, a: Tensor, b: Tensor): void {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[1]) {
    throw new Error(`${op}: expects embeddings a [n, d] and b [m, d] with the same d, got [${a.shape}] and [${b.shape}]`);
  }
}

/**
 * Squared Euclidean distances between the rows of a [n, d] and b [m, d] -> [n, m], as
 * |a|^2 + |b|^2 - 2 a.b (one matmul instead of an [n, m, d] difference tensor). Rounding can make
 * that slightly negative for near-equal rows, so it is clamped at 0.
 */
export function squaredDistances(a: Tensor, b: Tensor): Tensor {
  checkPairs('squaredDistances', a, b);
  return composite('squaredDistances', () => {
    const aa = ops.sum(ops.mul(a, a), 1, true), bb = ops.reshape(ops.sum(ops.mul(b, b), 1), [1, -1]);
    return ops.relu(ops.sub(ops.add(aa, bb), ops.mul(ops.matmul(a, b, { transB: true }), 2)));
  });
}

/**
 * Rows scaled to unit length, x / max(|x|, eps) (as PyTorch's F.normalize): a zero row stays zero,
 * and the gradient is finite there because the sqrt is never taken at 0.
 */
export function l2Normalize(x: Tensor, eps = 1e-8, axis = -1): Tensor {
  return composite('l2Normalize', () => ops.div(x, ops.sqrt(ops.maximum(ops.sum(ops.mul(x, x), axis, true), eps * eps))));
}

/** Cosine similarities between the rows of a [n, d] and b [m, d] -> [n, m]; 0 against a zero row. */
export function cosineSimilarity(a: Tensor, b: Tensor, eps = 1e-8): Tensor {
  checkPairs('cosineSimilarity', a, b);
  return composite('cosineSimilarity', () => ops.matmul(l2Normalize(a, eps), l2Normalize(b, eps), { transB: true }));
}

/**
 * Soft attention: weights = softmax(scores) over the last axis ([n, m]: n queries over m items),
 * output = weights @ values ([m, k] -> [n, k]), the weighted sum of the values.
 */
export function attention(scores: Tensor, values: Tensor): { weights: Tensor; output: Tensor } {
  if (scores.rank !== 2 || values.rank !== 2 || scores.shape[1] !== values.shape[0]) {
    throw new Error(`attention: scores [n, m] need values [m, k], got [${scores.shape}] and [${values.shape}]`);
  }
  return composite('attention', () => {
    const weights = ops.softmax(scores, -1);
    return { weights, output: ops.matmul(weights, values) };
  });
}

// ---------- the backbones of the MAML paper ----------

/**
 * The sine-regression MLP 1-40-40-1 with ReLU (Finn et al. 2017). Xavier init by default: with inputs
 * up to ±5, He init on the 1-input layer makes the first inner steps overshoot.
 */
export function initSineMLP(rng: Random, o: InitOptions & { hidden?: number } = {}): Params {
  const h = o.hidden ?? 40, oi = { init: 'xavierUniform' as Init, ...o };
  return { l1: initLinear(rng, 1, h, oi), l2: initLinear(rng, h, h, oi), l3: initLinear(rng, h, 1, oi) };
}
export function sineMLP(p: Params, x: Tensor): Tensor {
  const l = p as { l1: LinearParams; l2: LinearParams; l3: LinearParams };
  return composite('sineMLP', () => linear(l.l3, ops.relu(linear(l.l2, ops.relu(linear(l.l1, x))))));
}

export interface Conv4Options extends InitOptions {
  inChannels?: number;
  /** 64 for 28x28 Omniglot, 32 for 84x84 MiniImageNet. */
  filters?: number;
  imageSize?: number;
  ways: number;
  /**
   * MAML++ "BNWB" (Antoniou et al. 2019): one batch-norm scale and shift per inner step, shape
   * [bnSteps, filters] instead of [filters]; select a step's row with `conv4AtStep`.
   */
  bnSteps?: number;
  /**
   * 'maxpool' (default): each block ends in a 2x2 max-pool, and the head sees the flattened maps.
   * 'stride': the convolutions take stride 2 ('same' padding) and there is no pooling, the head
   * seeing the maps' spatial mean, as the MAML reference network for Omniglot (3.7x fewer
   * multiply-adds). Pass the same `downsample` to conv4 / conv4Features.
   */
  downsample?: Downsample;
}
export type Downsample = 'maxpool' | 'stride';

/** How conv4 runs: batch-norm modes per block, where updated running statistics go, and the downsampling. */
export interface Conv4RunOptions {
  bn?: (block: number) => BatchNormMode;
  onRunning?: (block: number, stats: RunningStats) => void;
  downsample?: Downsample;
}
const runOptions = (bn: ((block: number) => BatchNormMode) | Conv4RunOptions | undefined, onRunning?: Conv4RunOptions['onRunning']): Conv4RunOptions =>
  (typeof bn === 'function' || bn === undefined ? { bn, onRunning } : { ...bn, onRunning: bn.onRunning ?? onRunning });
/**
 * Conv4: 4 x [3x3 conv, batch norm, ReLU, 2x2 max-pool], then a linear classifier. Xavier init by
 * default, as the MAML reference (He init makes the 0.4-rate inner step overshoot at the start).
 */
export function initConv4(rng: Random, opts: Conv4Options): Params {
  const o = { init: 'xavierUniform' as Init, ...opts };
  const f = o.filters ?? 64, c = o.inChannels ?? 1;
  let size = o.imageSize ?? 28;
  const blocks: Params[] = [];
  if (o.downsample !== undefined && o.downsample !== 'maxpool' && o.downsample !== 'stride') throw new TypeError(`initConv4: downsample must be 'maxpool' or 'stride', got '${o.downsample}'`);
  for (let i = 0; i < 4; i++) {
    const bn = o.bnSteps ? { scale: ops.ones([o.bnSteps, f], o), shift: ops.zeros([o.bnSteps, f], o) } : initBatchNorm(f, o);
    blocks.push({ conv: initConv2d(rng, i === 0 ? c : f, f, 3, o), bn });
    size = Math.floor(size / 2);
  }
  return { blocks, head: initLinear(rng, o.downsample === 'stride' ? f : f * size * size, o.ways, o) };
}
/**
 * Conv4 forward. `bn(i)` gives block i's batch-norm mode (default: batch statistics); with running
 * statistics, `onRunning(i, stats)` receives block i's updated statistics.
 */
export function conv4(p: Params, x: Tensor, bn?: ((block: number) => BatchNormMode) | Conv4RunOptions,
  onRunning?: (block: number, stats: RunningStats) => void): Tensor {
  return composite('conv4', () => linear(p.head as LinearParams, conv4Features(p, x, runOptions(bn, onRunning))));
}

/**
 * Conv4 parameters as seen at inner step `step`: with per-step batch-norm weights ([steps, filters],
 * see `bnSteps`) each block gets that step's row (the last row for later steps); otherwise `p` itself.
 * Slicing is differentiable, so every step's row gets its own meta-gradient.
 */
export function conv4AtStep(p: Params, step: number): Params {
  const blocks = p.blocks as Params[];
  if ((blocks[0].bn as BatchNormParams).scale.rank === 1) return p;
  return composite('conv4AtStep', () => ({
    ...p,
    blocks: blocks.map((b) => {
      const bn = b.bn as BatchNormParams;
      const [steps, f] = bn.scale.shape, row = Math.min(step, steps - 1);
      const pick = (t: Tensor) => ops.reshape(ops.slice(t, [row, 0], [1, f]), [f]);
      return { ...b, bn: { scale: pick(bn.scale), shift: pick(bn.shift) } };
    }),
  }));
}

/** Conv4 without its head: the flattened features [N, filters * s * s]. */
export function conv4Features(p: Params, x: Tensor, bn?: ((block: number) => BatchNormMode) | Conv4RunOptions,
  onRunning?: (block: number, stats: RunningStats) => void): Tensor {
  const o = runOptions(bn, onRunning), mode = o.bn ?? (() => ({ stats: 'batch' as const }));
  const stride = o.downsample === 'stride';
  return composite('conv4Features', () => {
    let h = x;
    (p.blocks as Params[]).forEach((b, i) => {
      const c = conv2dLayer(b.conv as Conv2dParams, h, stride ? { stride: 2, padding: 'same' } : { padding: 1 });
      const { y, running } = batchNorm(b.bn as BatchNormParams, c, mode(i));
      if (running && o.onRunning) o.onRunning(i, running);
      h = stride ? ops.relu(y) : ops.maxPool2d(ops.relu(y), 2);
    });
    return stride ? ops.mean(h, [2, 3]) : ops.flatten(h);
  });
}

/**
 * Running batch-norm statistics kept separately for every inner-loop step (MAML++'s "BNRS",
 * Antoniou et al. 2019): step s of adaptation normalises with, and updates, its own statistics;
 * at test time each step uses the statistics it accumulated. Owns its tensors: call dispose().
 */
export class PerStepBatchNormStats {
  private readonly stats: RunningStats[][];

  constructor(steps: number, blocks: number, channels: number, private readonly momentum = 0.1, o: { dtype?: DType } = {}) {
    this.stats = Array.from({ length: steps }, () => Array.from({ length: blocks }, () => keep(initRunningStats(channels, o))));
  }

  /** Batch-norm modes for forward passes at inner step `step` (clamped to the last one kept). */
  mode(step: number, training: boolean): (block: number) => BatchNormMode {
    const s = this.stats[Math.min(step, this.stats.length - 1)];
    return (block) => ({ stats: 'running', running: s[block], training, momentum: this.momentum });
  }

  /** Receives updated statistics (conv4's onRunning) and keeps them in place of the old ones. */
  update(step: number): (block: number, stats: RunningStats) => void {
    return (block, next) => {
      const row = this.stats[Math.min(step, this.stats.length - 1)];
      if (row[block] === next) return;
      row[block].mean.dispose();
      row[block].variance.dispose();
      row[block] = keep(next);
    };
  }

  /** The statistics of one step and block (for inspection). */
  at(step: number, block: number): RunningStats { return this.stats[step][block]; }

  /** Every step's statistics as a tree [step][block] { mean, variance } (for checkpoints). */
  tensors(): RunningStats[][] { return this.stats; }

  /** Takes over statistics of the same structure as tensors(), freeing the ones they replace. */
  replace(tree: unknown): void {
    const next = tree as RunningStats[][];
    if (next.length !== this.stats.length || next.some((row, s) => row.length !== this.stats[s].length)) {
      throw new Error(`PerStepBatchNormStats.replace: expected ${this.stats.length} steps x ${this.stats[0].length} blocks`);
    }
    this.dispose();
    next.forEach((row, s) => { this.stats[s] = row.map((r) => keep(r)); });
  }

  dispose(): void { this.stats.flat().forEach((r) => { r.mean.dispose(); r.variance.dispose(); }); }
}
