// Reptile (Nichol, Achiam & Schulman 2018): train on each task with plain SGD for k steps, then
// move the initialisation towards the adapted weights. No second derivatives at all.

import * as ops from '../engine/ops.js';
import { treeMap } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { InnerLoopLearnerOptions, innerLoop } from './inner-loop.js';
import { EvaluateOptions, LearnerBase } from './learner.js';
import { Loss, Model, Target, Task, evaluateTasks } from './task.js';

/** Defaults: innerLr 0.01, innerSteps 5, testInnerSteps innerSteps. */
export interface ReptileOptions<P> extends InnerLoopLearnerOptions<P> {
  /** Outer step size epsilon, linearly annealed to 0 over `metaSteps` when that is given. */
  metaLr?: number;
  metaSteps?: number;
  /**
   * Examples per inner step in meta-training: each step takes the next `innerBatch` of the task's
   * examples in a shuffled order, reshuffled when used up (Nichol et al.'s inner batches; 10 on
   * 5-way Omniglot). Default: every example at every step. Needs `rng`.
   */
  innerBatch?: number;
  /** Shuffles the examples for `innerBatch`; the learner owns it (its position is in state()). */
  rng?: Random;
}

/** Reptile's outer update is its own (a step towards the adapted weights), not an optimiser's. */
export class Reptile<P> extends LearnerBase<{ params: P }> {
  readonly o: Required<Omit<ReptileOptions<P>, 'params' | 'metaSteps' | 'innerBatch' | 'rng'>> & Pick<ReptileOptions<P>, 'metaSteps' | 'innerBatch' | 'rng'>;

  constructor(opts: ReptileOptions<P>) {
    const innerSteps = opts.innerSteps ?? 5;
    if (opts.innerBatch !== undefined && (!Number.isInteger(opts.innerBatch) || opts.innerBatch < 1 || !opts.rng)) {
      throw new Error(`Reptile: innerBatch must be a whole number >= 1 and needs rng, got ${opts.innerBatch}${opts.rng ? '' : ' without rng'}`);
    }
    super('Reptile', { params: opts.params }, null);
    this.o = { model: opts.model, loss: opts.loss, innerLr: opts.innerLr ?? 0.01, innerSteps,
      testInnerSteps: opts.testInnerSteps ?? innerSteps, metaLr: opts.metaLr ?? 1, metaSteps: opts.metaSteps,
      innerBatch: opts.innerBatch, rng: opts.rng };
  }

  get params(): P { return this.learned.params; }

  /** SGD on (x, y) from params; with `batches`, step s trains on the examples batches[s] only. */
  adapt(params: P, x: Tensor, y: Target, o: { steps: number; training?: boolean; batches?: number[][] }): P {
    const b = o.batches;
    return innerLoop(params, x, y, {
      model: this.o.model, loss: this.o.loss, steps: o.steps, lr: this.o.innerLr, training: o.training,
      data: b ? (s) => [takeRows(x, b[s]), takeTargets(y, b[s])] : undefined,
    });
  }

  /** The example indices of each inner step for a task of n examples (innerBatch), or undefined. */
  private innerBatches(n: number): number[][] | undefined {
    const b = this.o.innerBatch;
    if (b === undefined || b >= n) return undefined;
    const out: number[][] = [];
    let order: number[] = [];
    for (let s = 0; s < this.o.innerSteps; s++) {
      const batch: number[] = [];
      while (batch.length < b) {
        if (order.length === 0) order = this.o.rng!.shuffle(Array.from({ length: n }, (_, i) => i));
        batch.push(order.pop()!);
      }
      out.push(batch.sort((i, j) => i - j));
    }
    return out;
  }

  /**
   * One outer update from a batch of tasks. A training task has no held-out part in Reptile: the
   * inner SGD runs on its support and query examples together (Nichol et al. train on 10 shots per
   * class for 1-shot tests), and the returned loss is the adapted weights' loss on them.
   */
  async step(tasks: readonly Task[]): Promise<number> {
    if (tasks.length === 0) throw new Error('Reptile.step: no tasks');
    const eps = this.o.metaSteps ? this.o.metaLr * Math.max(0, 1 - this.iteration / this.o.metaSteps) : this.o.metaLr;
    const loss = tidy(() => {
      let delta: P | null = null;
      const losses: Tensor[] = [];
      const params = this.params;
      for (const t of tasks) {
        const x = ops.concat([t.xs, t.xq]), y = concatTargets(t.ys, t.yq);
        const fast = this.adapt(params, x, y, { steps: this.o.innerSteps, batches: this.innerBatches(x.shape[0]) });
        losses.push(this.o.loss(this.o.model(fast, x, { step: this.o.innerSteps, training: true }), y));
        const d = treeMap((f, p) => ops.sub(f, p), fast, params);
        delta = delta === null ? d : treeMap((a, b) => ops.add(a, b), delta, d);
      }
      const mean = ops.div(losses.reduce((a, b) => ops.add(a, b)), losses.length);
      this.commit({ params: treeMap((p, d) => ops.add(p, ops.mul(d, eps / tasks.length)), params, delta!) });
      return mean;
    });
    return this.readLoss(loss);
  }

  evaluate(tasks: Iterable<Task>, o: EvaluateOptions = {}) {
    const steps = o.steps ?? this.o.testInnerSteps;
    return evaluateTasks(tasks, (t) => this.adapt(this.params, t.xs, t.ys, { steps, training: false }), this.o.model, this.o.loss, steps);
  }

  protected override extraInfo() { return this.o.rng ? { rng: this.o.rng.state() } : {}; }
  protected override loadExtraInfo(info: Record<string, unknown>) {
    if (!this.o.rng) return;
    if (!info.rng) throw new Error('Reptile.load: the state has no random-stream position for the inner batches');
    this.o.rng.setState(info.rng as any);
  }
}

/** Rows `idx` (ascending) of x, as runs of consecutive rows. */
function takeRows(x: Tensor, idx: number[]): Tensor {
  const parts: Tensor[] = [];
  for (let i = 0; i < idx.length;) {
    let j = i + 1;
    while (j < idx.length && idx[j] === idx[j - 1] + 1) j++;
    parts.push(ops.slice(x, [idx[i], ...x.shape.slice(1).map(() => 0)], [j - i, ...x.shape.slice(1)]));
    i = j;
  }
  return parts.length === 1 ? parts[0] : ops.concat(parts);
}

function takeTargets(y: Target, idx: number[]): Target {
  return y instanceof Int32Array ? Int32Array.from(idx, (i) => y[i]) : takeRows(y, idx);
}

function concatTargets(a: Target, b: Target): Target {
  if (a instanceof Int32Array && b instanceof Int32Array) {
    const out = new Int32Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  }
  if (a instanceof Int32Array || b instanceof Int32Array) throw new Error('Reptile: a task\'s support and query targets must both be labels (Int32Array) or both tensors');
  return ops.concat([a, b]);
}
