// What the metric-based meta-learners (Prototypical, Matching and Relation networks) share: no
// inner loop; a task is solved by comparing query embeddings with the support set. Each learner
// says how it scores a query set against a support set and what loss it trains; training is Adam
// on the mean query loss over a batch of tasks, and evaluation scores each task's query set.

import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { noGrad } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { Evaluation, LearnerBase } from './learner.js';
import { Model, Task, accuracy, forEachTask, summarize } from './task.js';

/** An embedding network, a model like any other: images [N, ...] -> features [N, d] (or feature maps [N, C, H, W]). */
export type Embedding<P> = Model<P>;

/**
 * Support and query go through the embedding in one batch, as in the Prototypical networks code, so
 * with batch statistics the query is normalised together with the support (transductive, like the
 * MAML reference's batch norm).
 */
export function embedTogether<P>(embed: Embedding<P>, params: P, xs: Tensor, xq: Tensor, training: boolean): [Tensor, Tensor] {
  const both = embed(params, ops.concat([xs, xq], 0), { step: 0, training });
  const [es, eq] = ops.split(both, [xs.shape[0], xq.shape[0]], 0);
  return [es, eq];
}

/** Classes in a support set labelled 0..ways-1, each present; throws naming the learner otherwise. */
export function supportWays(who: string, ys: Int32Array): number {
  const ways = Math.max(...ys) + 1;
  const seen = new Set(ys);
  if (ys.length === 0 || seen.size !== ways || Math.min(...ys) < 0) {
    throw new Error(`${who}: support labels must cover 0..ways-1, got [${[...seen].sort((a, b) => a - b)}]`);
  }
  return ways;
}

/** [n, ways] matrix with row i one-hot at label i, in the dtype of `like`. */
export const labelMatrix = (ys: Int32Array, ways: number, like: Tensor): Tensor => ops.oneHot(ys, ways, { dtype: like.dtype });

function classLabels(who: string, t: Task): { ys: Int32Array; yq: Int32Array } {
  if (!(t.ys instanceof Int32Array) || !(t.yq instanceof Int32Array)) throw new Error(`${who}: tasks need class labels (Int32Array) for support and query`);
  return { ys: t.ys, yq: t.yq };
}

export abstract class MetricLearner<P> extends LearnerBase<{ params: P }> {
  constructor(name: string, params: P, optimizer?: Optimizer) {
    super(name, { params }, optimizer ?? adam({ lr: 1e-3 }));
  }

  get params(): P { return this.learned.params; }

  /**
   * Scores of each query against each class, [queries, ways]: larger is more likely (logits,
   * log-probabilities or relation scores). `training` is passed on to the embedding.
   */
  abstract scores(params: P, xs: Tensor, ys: Int32Array, xq: Tensor, training: boolean): Tensor;
  /** The training loss from the scores and the query labels. */
  abstract lossFromScores(scores: Tensor, yq: Int32Array): Tensor;

  /** The loss of one task at `params` (differentiable in params). */
  loss(params: P, t: Task, training = true): Tensor {
    const { ys, yq } = classLabels(this.name, t);
    return this.lossFromScores(this.scores(params, t.xs, ys, t.xq, training), yq);
  }

  /** One Adam step on the mean query loss over `tasks`; returns that loss (before the step). */
  step(tasks: readonly Task[]): Promise<number> {
    if (tasks.length === 0) throw new Error(`${this.name}.step: no tasks`);
    return this.optimizerStep(({ params }) => ops.div(tasks.map((t) => this.loss(params, t)).reduce((a, b) => ops.add(a, b)), tasks.length));
  }

  /** Query loss and accuracy per task, each as mean ± 95% CI over the tasks. */
  async evaluate(tasks: Iterable<Task>): Promise<Evaluation & { accuracy: Evaluation['loss'] }> {
    const losses: number[] = [], accs: number[] = [];
    await forEachTask(tasks, async (t) => {
      const { ys, yq } = classLabels(this.name, t);
      const s = noGrad(() => this.scores(this.params, t.xs, ys, t.xq, false));
      losses.push((await this.lossFromScores(s, yq).data())[0]);
      accs.push(await accuracy(s, yq));
    });
    return { loss: summarize(losses), accuracy: summarize(accs) };
  }
}
