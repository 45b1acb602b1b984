// Relation networks (Sung et al. 2018): an embedding module keeps spatial feature maps; each query's
// maps are concatenated in depth with each class's (the sum of its support maps for K shots) and a
// learned relation module scores the pair in [0, 1]. Trained by mean squared error to the one-hot
// match (1 for the query's class, 0 otherwise), as in the paper.
//
// The relation module's first convolution is linear in its concatenated input, so it is computed
// as a convolution of the class maps and one of the query maps, added for every pair: ways + queries
// convolutions instead of ways x queries (4000 at 20-way 1-shot with 10 queries), the same values
// up to rounding. Everything after it (batch norm over the pairs, ReLU, ...) runs per pair.

import * as ops from '../engine/ops.js';
import { ConvBlockParams, LinearParams, Params, conv2dLayer, convBlock, convBlockTail, initConvBlock, linear } from '../engine/nn.js';
import type { InitOptions } from '../engine/nn.js';
import type { Optimizer } from '../engine/optim.js';
import type { Random } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import { Embedding, MetricLearner, embedTogether, labelMatrix, supportWays } from './metric.js';

export interface RelationNetParams { [k: string]: Params; embed: Params; relation: Params }

/**
 * The linear layers as the paper's code initialises them: weights N(0, 0.01), biases 1. With He
 * initialisation the sigmoid starts saturated and training stays at chance for hundreds of episodes.
 */
function paperLinear(rng: Random, inFeatures: number, outFeatures: number, o: InitOptions): LinearParams {
  return { w: rng.normal([inFeatures, outFeatures], { std: 0.01, dtype: o.dtype ?? 'float32' }), b: ops.ones([outFeatures], { dtype: o.dtype }) };
}

/**
 * The paper's Omniglot networks. Embedding: 4 x [3x3 conv (64), BN, ReLU], the first two unpadded
 * and max-pooled, the last two padded and unpooled: 28x28 -> 64 maps of 5x5. Relation module: 2 x
 * [3x3 conv (64, padded), BN, ReLU, 2x2 max-pool] on the 128 concatenated maps (5 -> 2 -> 1), then
 * linear 64 -> 8, ReLU, linear 8 -> 1, sigmoid.
 */
export function initRelationNet(rng: Random, o: InitOptions & { filters?: number; inChannels?: number; imageSize?: number; hidden?: number } = {}): RelationNetParams {
  const f = o.filters ?? 64, c = o.inChannels ?? 1, hidden = o.hidden ?? 8;
  let s = o.imageSize ?? 28;
  s = Math.floor((s - 2) / 2); s = Math.floor((s - 2) / 2);   // the embedding's two unpadded, pooled blocks
  const r = Math.floor(Math.floor(s / 2) / 2);                  // the relation module's two pooled blocks
  if (r < 1) throw new Error(`initRelationNet: ${o.imageSize}x${o.imageSize} images leave no feature map for the relation module (need at least 28x28)`);
  return {
    embed: { blocks: [initConvBlock(rng, c, f, o), initConvBlock(rng, f, f, o), initConvBlock(rng, f, f, o), initConvBlock(rng, f, f, o)] },
    relation: {
      blocks: [initConvBlock(rng, 2 * f, f, o), initConvBlock(rng, f, f, o)],
      fc1: paperLinear(rng, f * r * r, hidden, o), fc2: paperLinear(rng, hidden, 1, o),
    },
  };
}

/** The embedding module: images [N, C, H, W] -> feature maps [N, filters, h, w]. */
export function relationEmbedding(p: Params, x: Tensor): Tensor {
  const b = p.blocks as ConvBlockParams[];
  let h = convBlock(b[0], x, { padding: 0 });
  h = convBlock(b[1], h, { padding: 0 });
  h = convBlock(b[2], h, { padding: 1, pool: false });
  return convBlock(b[3], h, { padding: 1, pool: false });
}

/**
 * The relation module on every (query, class) pair: class maps [ways, C, h, w] and query maps
 * [q, C, h, w] -> scores [q, ways] in (0, 1); the pair's input is the class maps concatenated in
 * depth with the query's (2C channels), its first convolution split over the two halves.
 */
export function relationModule(p: Params, classes: Tensor, queries: Tensor): Tensor {
  const [b0, b1] = p.blocks as ConvBlockParams[];
  const [ways, c] = classes.shape, q = queries.shape[0];
  const w = b0.conv.w;
  if (w.shape[1] !== 2 * c || queries.shape[1] !== c) {
    throw new Error(`relationModule: class maps [${classes.shape}] and query maps [${queries.shape}] need C channels each for the first convolution's ${w.shape[1]} = 2C inputs`);
  }
  // The bias goes with the class half, on ways maps rather than on every pair.
  const fromClass = conv2dLayer({ w: ops.slice(w, [0, 0], [-1, c]), b: b0.conv.b }, classes, { padding: 1 });   // [ways, f, h, w]
  const fromQuery = ops.conv2d(queries, ops.slice(w, [0, c], [-1, c]), { padding: 1 });                       // [q, f, h, w]
  const [, f, h, wd] = fromClass.shape;
  const pairs = ops.reshape(ops.add(ops.expandDims(fromClass, 0), ops.expandDims(fromQuery, 1)), [q * ways, f, h, wd]);
  const flat = ops.flatten(convBlock(b1, convBlockTail(b0, pairs)));
  return ops.reshape(ops.sigmoid(linear(p.fc2 as LinearParams, ops.relu(linear(p.fc1 as LinearParams, flat)))), [q, ways]);
}

export interface RelationNetOptions<P> {
  /** Parameters { embed, relation } (e.g. initRelationNet); taken over. */
  params: { embed: P; relation: P };
  /** Default: relationEmbedding (feature maps, not flattened). */
  embed?: Embedding<P>;
  /** Class maps [ways, C, h, w] and query maps [q, C, h, w] -> scores [q, ways]. Default: relationModule. */
  relate?: (params: P, classes: Tensor, queries: Tensor) => Tensor;
  /** Default Adam with rate 1e-3, as the paper. */
  optimizer?: Optimizer;
}

export class RelationNet<P = Params> extends MetricLearner<{ embed: P; relation: P }> {
  private readonly embed: Embedding<P>;
  private readonly relate: (params: P, classes: Tensor, queries: Tensor) => Tensor;

  constructor(readonly o: RelationNetOptions<P>) {
    super('RelationNet', o.params, o.optimizer);
    this.embed = o.embed ?? ((p, x) => relationEmbedding(p as Params, x));
    this.relate = o.relate ?? ((p, classes, queries) => relationModule(p as Params, classes, queries));
  }

  /** Relation scores [queries, ways] in (0, 1). */
  scores(params: { embed: P; relation: P }, xs: Tensor, ys: Int32Array, xq: Tensor, training: boolean): Tensor {
    const ways = supportWays('RelationNet', ys);
    const [es, eq] = embedTogether(this.embed, params.embed, xs, xq, training);
    if (es.rank !== 4) throw new Error(`RelationNet: the embedding must give feature maps [N, C, H, W], got [${es.shape}]`);
    const [, c, h, w] = es.shape;
    // K shots: a class is the sum of its support feature maps.
    const classes = ops.reshape(ops.matmul(labelMatrix(ys, ways, es), ops.flatten(es), { transA: true }), [ways, c, h, w]);
    return this.relate(params.relation, classes, eq);
  }

  /** Mean squared error between the scores and the one-hot query labels. */
  lossFromScores(scores: Tensor, yq: Int32Array): Tensor { return ops.mse(scores, labelMatrix(yq, scores.shape[1], scores)); }
}
