// Siamese networks for one-shot classification (Koch, Zemel & Salakhutdinov 2015): one embedding
// network applied to both images of a pair, the component-wise L1 distance of the two embeddings,
// and a linear layer + sigmoid giving the probability that the pair shows the same class; trained
// as a verification task with binary cross-entropy. An N-way one-shot task is then classified by
// giving each query the label of the support image it is most likely to match.
//
// Koch's convolutional net is built for 105x105 images; on 28x28 Omniglot the default embedding is
// the Conv4 feature extractor (4 x [3x3 conv, batch norm, ReLU, 2x2 max-pool], 64 features).

import * as nn from '../engine/nn.js';
import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { treeLeaves } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { noGrad, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { DType } from '../kernels/backend.js';
import { Buffers, LearnerBase } from './learner.js';
import { Model, Summary, Task, forEachTask, summarize } from './task.js';

/** An embedding network: images [N, ...] -> features [N, featureDim]. */
export interface SiameseEmbedding<P> {
  params: P;
  featureDim: number;
  /** The embedding model; `ctx.training` says whether batch statistics are used and running statistics updated. */
  embed: Model<P>;
  /** Running batch-norm statistics, saved with the learner (which takes them over). */
  buffers?: Buffers;
}

export interface Conv4EmbeddingOptions {
  filters?: number;
  imageSize?: number;
  inChannels?: number;
  dtype?: DType;
  /**
   * 'running' (default): batch statistics while training, running averages at test time, so a test
   * task's images are embedded independently of each other. 'batch': always the current batch's.
   */
  batchNorm?: 'running' | 'batch';
}

/** Conv4 features as a Siamese embedding, with its running statistics as buffers (the network takes them over). */
export function conv4Embedding(rng: Random, o: Conv4EmbeddingOptions = {}): SiameseEmbedding<nn.Params> {
  const filters = o.filters ?? 64;
  const { blocks, head } = nn.initConv4(rng, { ...o, ways: 1 }) as { blocks: nn.Params[]; head: nn.LinearParams };
  head.w.dispose(); head.b.dispose();
  let side = o.imageSize ?? 28;
  for (let i = 0; i < 4; i++) side = Math.floor(side / 2);
  const params = { blocks };
  if (o.batchNorm === 'batch') {
    return { params, featureDim: filters * side * side, embed: (p, x) => nn.conv4Features(p, x) };
  }
  const stats = new nn.PerStepBatchNormStats(1, 4, filters, 0.1, { dtype: o.dtype });
  return {
    params,
    featureDim: filters * side * side,
    embed: (p, x, { training }) => nn.conv4Features(p, x, stats.mode(0, training), training ? stats.update(0) : undefined),
    buffers: stats,
  };
}

export type SiameseParams<P> = { embed: P; head: nn.LinearParams };

export interface SiameseOptions<P> {
  embedding: SiameseEmbedding<P>;
  /** Initialises the head (a linear layer featureDim -> 1). */
  rng: Random;
  /** Default Adam with step size 1e-3. */
  optimizer?: Optimizer;
  /** The head's dtype; default that of the embedding's parameters (float32 if it has none). */
  dtype?: DType;
}

/** Pairs of images with same-class targets (see datasets' PairSampler). */
export interface Pairs { x1: Tensor; x2: Tensor; same: Tensor }

export class SiameseNetwork<P> extends LearnerBase<{ params: SiameseParams<P> }, Pairs> {
  readonly embedding: SiameseEmbedding<P>;

  /** Takes over the embedding's parameters and buffers (and disposes them in dispose()). */
  constructor(o: SiameseOptions<P>) {
    const dtype = o.dtype ?? treeLeaves(o.embedding.params)[0]?.dtype ?? 'float32';
    const params = { embed: o.embedding.params, head: nn.initLinear(o.rng, o.embedding.featureDim, 1, { dtype, init: 'xavierUniform' }) };
    super('SiameseNetwork', { params }, o.optimizer ?? adam({ lr: 1e-3 }), o.embedding.buffers);
    this.embedding = o.embedding;
  }

  get params(): SiameseParams<P> { return this.learned.params; }

  /** Similarity logits of a's rows against b's rows, pair by pair: features fa, fb [N, D] -> [N]. */
  private headLogits(p: SiameseParams<P>, fa: Tensor, fb: Tensor): Tensor {
    return ops.reshape(nn.linear(p.head, ops.abs(ops.sub(fa, fb))), [-1]);
  }

  /** Logits of "same class" for each pair [B]; both sides go through the embedding in one batch. */
  pairLogits(p: SiameseParams<P>, x1: Tensor, x2: Tensor, training = true): Tensor {
    if (x1.shape.join() !== x2.shape.join()) throw new Error(`SiameseNetwork: pair sides differ in shape: ${JSON.stringify(x1.shape)} and ${JSON.stringify(x2.shape)}`);
    const [f1, f2] = ops.split(this.embedding.embed(p.embed, ops.concat([x1, x2]), { step: 0, training }), 2, 0);
    return this.headLogits(p, f1, f2);
  }

  /** Mean binary cross-entropy of the verification task on a batch of pairs. */
  loss(p: SiameseParams<P>, pairs: Pairs, training = true): Tensor {
    return nn.binaryCrossEntropyWithLogits(this.pairLogits(p, pairs.x1, pairs.x2, training), pairs.same);
  }

  /** One optimiser step on a batch of pairs; returns the loss before the step. */
  step(pairs: Pairs): Promise<number> { return this.optimizerStep(({ params }) => this.loss(params, pairs)); }

  /** Same-class logits of every query against every support image: [queries, supports]. */
  scores(task: Task): Tensor {
    return noGrad(() => {
      const s = task.xs.shape[0], q = task.xq.shape[0];
      const [fs, fq] = ops.split(this.embedding.embed(this.params.embed, ops.concat([task.xs, task.xq]), { step: 0, training: false }), [s, q], 0);
      const d = fs.shape[1];
      const a = ops.reshape(ops.broadcastTo(ops.expandDims(fq, 1), [q, s, d]), [q * s, d]);
      const b = ops.reshape(ops.broadcastTo(ops.expandDims(fs, 0), [q, s, d]), [q * s, d]);
      return ops.reshape(this.headLogits(this.params, a, b), [q, s]);
    });
  }

  /** Each query's predicted label: the label of its most similar support image. */
  async classify(task: Task): Promise<Int32Array> {
    const ys = labelsOf(task.ys, 'support');
    return tidy(async () => (await ops.argMax(this.scores(task))).map((j) => ys[j]));
  }

  /**
   * Scores tasks by nearest support image. accuracy: per-task mean ± 95% CI; trials: over all
   * queries pooled (Lake's runs report accuracy over 400 trials); loss: the verification BCE of
   * every query-support pair.
   */
  async evaluate(tasks: Iterable<Task>): Promise<{ loss: Summary; accuracy: Summary; trials: Summary }> {
    const losses: number[] = [], accs: number[] = [], hits: number[] = [];
    await forEachTask(tasks, async (t) => {
      const ys = labelsOf(t.ys, 'support'), yq = labelsOf(t.yq, 'query');
      const sc = this.scores(t);
      const target = ops.tensor(Array.from(yq).flatMap((l) => Array.from(ys, (s) => (s === l ? 1 : 0))), sc.shape, { dtype: sc.dtype });
      losses.push((await nn.binaryCrossEntropyWithLogits(sc, target).data())[0]);
      const pred = await ops.argMax(sc);
      const h: number[] = Array.from(pred, (j, i) => (ys[j] === yq[i] ? 1 : 0));
      hits.push(...h);
      accs.push(h.reduce((x, y) => x + y, 0) / h.length);
    });
    return { loss: summarize(losses), accuracy: summarize(accs), trials: summarize(hits) };
  }

}

function labelsOf(y: Task['ys'], which: string): Int32Array {
  if (!(y instanceof Int32Array)) throw new Error(`SiameseNetwork: the ${which} labels must be class indices (Int32Array)`);
  return y;
}
