// Prototypical networks (Snell, Swersky & Zemel 2017): embed the images, take each class's mean
// support embedding as its prototype, and classify a query by softmax over negative squared
// Euclidean distances to the prototypes. Training episodes may have more classes than test ones
// (the paper trains 60-way for 5- and 20-way testing); nothing in the model depends on the way count.

import * as ops from '../engine/ops.js';
import { squaredDistances } from '../engine/nn.js';
import type { Optimizer } from '../engine/optim.js';
import type { Tensor } from '../engine/tensor.js';
import { Embedding, MetricLearner, embedTogether, labelMatrix, supportWays } from './metric.js';

export interface ProtoNetOptions<P> {
  /** E.g. `(p, x) => nn.conv4Features(p, x)` (64-d on 28x28 Omniglot). */
  embed: Embedding<P>;
  /** The embedding's parameters; the learner takes ownership. */
  params: P;
  /** Default Adam with rate 1e-3, as the paper. */
  optimizer?: Optimizer;
}

/** Class means of embeddings [n, d] with labels 0..ways-1 -> [ways, d]. */
export function prototypes(embeddings: Tensor, ys: Int32Array, ways: number): Tensor {
  if (embeddings.rank !== 2 || embeddings.shape[0] !== ys.length) {
    throw new Error(`prototypes: embeddings [${embeddings.shape}] do not match ${ys.length} labels`);
  }
  const counts = new Float64Array(ways);
  ys.forEach((y) => counts[y]++);
  const sums = ops.matmul(labelMatrix(ys, ways, embeddings), embeddings, { transA: true });
  return ops.div(sums, ops.tensor(counts, [ways, 1], { dtype: embeddings.dtype }));
}

export class ProtoNet<P> extends MetricLearner<P> {
  constructor(readonly o: ProtoNetOptions<P>) { super('ProtoNet', o.params, o.optimizer); }

  /** Logits [queries, ways] = -squared distance from each query embedding to each prototype. */
  scores(params: P, xs: Tensor, ys: Int32Array, xq: Tensor, training: boolean): Tensor {
    const ways = supportWays('ProtoNet', ys);
    const [es, eq] = embedTogether(this.o.embed, params, xs, xq, training);
    return ops.neg(squaredDistances(eq, prototypes(es, ys, ways)));
  }

  lossFromScores(logits: Tensor, yq: Int32Array): Tensor { return ops.crossEntropy(logits, yq); }
}
