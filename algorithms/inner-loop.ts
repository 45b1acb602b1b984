// The inner loop that MAML, its variants and Reptile share: a pure function from parameters and a
// task's data to fast weights, plain gradient steps p <- p - lr * g, differentiable end to end (so a
// meta-gradient can flow through it) unless firstOrder makes the inner gradients constants.

import { valueAndGrad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { treeLeaves, treeUnflatten } from '../engine/pytree.js';
import { stopGradient } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { Loss, Model, Target } from './task.js';

/** What every learner built on the inner loop is given (MAML, Reptile, iMAML); each sets its own defaults. */
export interface InnerLoopLearnerOptions<P> {
  model: Model<P>;
  loss: Loss;
  /** Initial parameters; the learner takes ownership (they are disposed as they are updated). */
  params: P;
  /** Step size of the inner steps. */
  innerLr?: number;
  /** Inner steps in training. */
  innerSteps?: number;
  /** Inner steps at evaluation. */
  testInnerSteps?: number;
}

export interface InnerLoopOptions<P> {
  model: Model<P>;
  loss: Loss;
  steps: number;
  /** Step size: a number, or per parameter leaf and step (learned rates, differentiable). */
  lr: number | ((leaf: number, step: number) => Tensor | number);
  /** Which leaves (in treeLeaves order) adapt; default all. ANIL adapts the head only. */
  adapted?: readonly boolean[];
  /** The inner gradients are constants to any enclosing derivative. */
  firstOrder?: boolean;
  /** Passed to the model's context (batch-norm statistics). Default true. */
  training?: boolean;
  /** Step s trains on these examples instead of (x, y) (Reptile's inner batches). */
  data?: (step: number) => [Tensor, Target];
  /** Multiplies the loss (vectorized tasks: the task count, so each task's gradient is its own). */
  lossScale?: number;
  /** Sees the weights after each step (the MAML++ multi-step loss). */
  onStep?: (step: number, fast: P) => void;
}

/** `steps` gradient steps on (x, y) from `params`; returns the fast weights. */
export function innerLoop<P>(params: P, x: Tensor, y: Target, o: InnerLoopOptions<P>): P {
  let fast = params;
  const training = o.training ?? true;
  for (let s = 0; s < o.steps; s++) {
    const leaves = treeLeaves(fast);
    const idx = leaves.map((_, i) => i).filter((i) => !o.adapted || o.adapted[i]);
    const [xb, yb] = o.data ? o.data(s) : [x, y];
    // Gradients with respect to the adapted leaves only.
    const [, g] = valueAndGrad((sub: Tensor[]) => {
      const all = leaves.map((l, i) => { const k = idx.indexOf(i); return k < 0 ? l : sub[k]; });
      const l = o.loss(o.model(treeUnflatten(fast, all), xb, { step: s, training }), yb);
      return o.lossScale !== undefined && o.lossScale !== 1 ? ops.mul(l, o.lossScale) : l;
    })(idx.map((i) => leaves[i]));
    const next = leaves.map((p, i) => {
      const k = idx.indexOf(i);
      if (k < 0) return p;
      const gi = o.firstOrder ? stopGradient(g[k]) : g[k];
      return ops.sub(p, ops.mul(gi, typeof o.lr === 'number' ? o.lr : o.lr(i, s)));
    });
    fast = treeUnflatten(fast, next);
    o.onStep?.(s, fast);
  }
  return fast;
}
