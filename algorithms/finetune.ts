// The fine-tuning baseline (as in Chen et al. 2019, "A Closer Look at Few-shot Classification"):
// pretrain a backbone with an ordinary classifier over all training classes, then for each test
// task train a fresh linear head on the support set with the backbone frozen, and score the query.

import { grad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { noGrad, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { LearnerBase } from './learner.js';
import { Model, Summary, Task, accuracy, forEachTask, summarize } from './task.js';

export interface FineTuneOptions<P> {
  /** The backbone: images -> features [N, featureDim]. */
  features: Model<P>;
  featureDim: number;
  /** Backbone parameters plus a pretraining head { w: [featureDim, classes], b: [classes] }; taken over. */
  params: P & { head: { w: Tensor; b: Tensor } };
  optimizer?: Optimizer;
  /** Fine-tuning of the new head at test time. */
  headSteps?: number;
  headLr?: number;
}

type WithHead<P> = P & { head: { w: Tensor; b: Tensor } };

/** A batch of the pretraining classifier: images and their training-class indices. */
export interface LabelledBatch { x: Tensor; labels: Int32Array }

export class FineTuneBaseline<P> extends LearnerBase<{ params: WithHead<P> }, LabelledBatch> {
  constructor(readonly o: FineTuneOptions<P>) {
    super('FineTuneBaseline', { params: o.params }, o.optimizer ?? adam({ lr: 1e-3 }));
  }

  get params(): WithHead<P> { return this.learned.params; }

  private logits(p: WithHead<P>, x: Tensor): Tensor {
    return ops.add(ops.matmul(this.o.features(p, x, { step: 0, training: true }), p.head.w), p.head.b);
  }

  /** One supervised pretraining step on a batch labelled with training-class indices; returns the loss. */
  step(b: LabelledBatch): Promise<number> {
    return this.optimizerStep(({ params }) => ops.crossEntropy(this.logits(params, b.x), b.labels));
  }

  /** For each task: a zero-initialised head trained on frozen support features, then query accuracy. */
  async evaluate(tasks: Iterable<Task>): Promise<{ loss: Summary; accuracy: Summary }> {
    const losses: number[] = [], accs: number[] = [];
    const steps = this.o.headSteps ?? 100, lr = this.o.headLr ?? 0.1;
    await forEachTask(tasks, async (t) => {
      if (!(t.ys instanceof Int32Array) || !(t.yq instanceof Int32Array)) throw new Error('FineTuneBaseline.evaluate: tasks need class labels (Int32Array)');
      const ways = Math.max(...t.ys) + 1;
      const ctx = { step: 0, training: false };
      const fs = noGrad(() => this.o.features(this.params, t.xs, ctx)), fq = noGrad(() => this.o.features(this.params, t.xq, ctx));
      let head = { w: ops.zeros([this.o.featureDim, ways], { dtype: fs.dtype }), b: ops.zeros([ways], { dtype: fs.dtype }) };
      for (let s = 0; s < steps; s++) {
        const next = tidy(() => {
          const g = grad((h: typeof head) => ops.crossEntropy(ops.add(ops.matmul(fs, h.w), h.b), t.ys as Int32Array))(head);
          return { w: ops.sub(head.w, ops.mul(g.w, lr)), b: ops.sub(head.b, ops.mul(g.b, lr)) };
        });
        head.w.dispose(); head.b.dispose();
        head = next;
      }
      const out = ops.add(ops.matmul(fq, head.w), head.b);
      losses.push((await ops.crossEntropy(out, t.yq as Int32Array).data())[0]);
      accs.push(await accuracy(out, t.yq as Int32Array));
    });
    return { loss: summarize(losses), accuracy: summarize(accs) };
  }
}
