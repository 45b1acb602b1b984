// Matching networks (Vinyals et al. 2016): a query's label distribution is an attention-weighted
// mixture of the support labels, the attention a softmax over cosine similarities between the
// query's and the support's embeddings; training maximises the log-probability of the true label.
// With full-context embeddings (`fce`, the paper's appendix) the support embeddings are re-read by
// a bidirectional LSTM over the support set (g), and each query embedding is refined by an LSTM
// that attends over them for K processing steps (f).
// An optional learned scale multiplies the cosines before the softmax (the metric scaling of
// Oreshkin et al. 2018): cosines lie in [-1, 1], so without it the attention over a support set
// can never be sharp, and on Omniglot the training loss stalls early.

import * as ops from '../engine/ops.js';
import { BiLSTMParams, LSTMParams, attention, biLSTM, cosineSimilarity, initBiLSTM, initLSTM, initWeight, lstmCell } from '../engine/nn.js';
import type { Optimizer } from '../engine/optim.js';
import type { Random } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import type { DType } from '../kernels/backend.js';
import { Embedding, MetricLearner, embedTogether, labelMatrix, supportWays } from './metric.js';

/** Full-context embedding weights for d-dimensional embeddings. */
export interface FullContextParams { [k: string]: BiLSTMParams | LSTMParams; g: BiLSTMParams; f: LSTMParams }

/**
 * g: a bidirectional LSTM with hidden size d; f: an LSTM with input f'(x) [d] whose recurrent state
 * is the concatenation [h, r] (2d), hidden size d.
 */
export function initFullContext(rng: Random, d: number, o: { dtype?: DType } = {}): FullContextParams {
  const f = initLSTM(rng, d, d, o);
  f.wh.dispose();
  f.wh = initWeight(rng, [2 * d, 4 * d], 2 * d, d, { init: 'xavierUniform', ...o });
  return { g: initBiLSTM(rng, d, d, o), f };
}

/** g(x_i, S) = h_forward_i + h_backward_i + g'(x_i) over the support embeddings gs [m, d]. */
export function fullContextSupport(p: FullContextParams, gs: Tensor): Tensor {
  const { forward, backward } = biLSTM(p.g, ops.expandDims(gs, 1));
  return ops.add(ops.reshape(ops.add(forward, backward), gs.shape), gs);
}

/**
 * f(x, S) for query embeddings fq [n, d] against full-context support embeddings g [m, d], K steps:
 *   r_{k-1} = softmax(h_{k-1} g^T) g;   (h^_k, c_k) = LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1});
 *   h_k = h^_k + f'(x);   f(x, S) = h_K   (from h_0 = c_0 = 0).
 */
export function fullContextQuery(p: FullContextParams, fq: Tensor, g: Tensor, steps: number): Tensor {
  let h = ops.zerosLike(fq), c = ops.zerosLike(fq);
  for (let k = 0; k < steps; k++) {
    const r = attention(ops.matmul(h, g, { transB: true }), g).output;
    const next = lstmCell(p.f, fq, { h: ops.concat([h, r], 1), c });
    h = ops.add(next.h, fq);
    c = next.c;
  }
  return h;
}

export interface MatchingParams<P> {
  embed: P;
  fce?: FullContextParams;
  /** log of the scale on the cosines, a scalar (e.g. `ops.scalar(Math.log(10))`); omit for the paper's plain cosines. */
  logScale?: Tensor;
}

export interface MatchingOptions<P> {
  /** f' = g', shared by support and query, e.g. `(p, x) => nn.conv4Features(p, x)`. */
  embed: Embedding<P>;
  /** Embedding parameters, plus `fce` weights (initFullContext) for full-context embeddings; taken over. */
  params: MatchingParams<P>;
  /** Attention LSTM steps K of the query's full-context embedding (default 5). */
  processingSteps?: number;
  optimizer?: Optimizer;
}

export class MatchingNet<P> extends MetricLearner<MatchingParams<P>> {
  readonly processingSteps: number;

  constructor(readonly o: MatchingOptions<P>) {
    super('MatchingNet', o.params, o.optimizer);
    this.processingSteps = o.processingSteps ?? 5;
  }

  /** Log-probabilities [queries, ways]: log of the attention-weighted mixture of one-hot support labels. */
  scores(params: MatchingParams<P>, xs: Tensor, ys: Int32Array, xq: Tensor, training: boolean): Tensor {
    const ways = supportWays('MatchingNet', ys);
    let [es, eq] = embedTogether(this.o.embed, params.embed, xs, xq, training);
    if (params.fce) {
      es = fullContextSupport(params.fce, es);
      eq = fullContextQuery(params.fce, eq, es, this.processingSteps);
    }
    let sim = cosineSimilarity(eq, es);
    if (params.logScale) sim = ops.mul(sim, ops.exp(params.logScale));
    const mixture = attention(sim, labelMatrix(ys, ways, es)).output;
    return ops.log(mixture);
  }

  /** Mean negative log-probability of the true labels. */
  lossFromScores(logp: Tensor, yq: Int32Array): Tensor {
    return ops.neg(ops.mean(ops.sum(ops.mul(labelMatrix(yq, logp.shape[1], logp), logp), 1)));
  }
}
