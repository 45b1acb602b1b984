// Reptile (Nichol, Achiam & Schulman 2018): train on each task with plain SGD for k steps, then
// move the initialisation towards the adapted weights. No second derivatives at all.

import { grad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { treeLeaves, treeMap } from '../engine/pytree.js';
import { keep, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { Loss, Model, Target, Task, evaluateTasks } from './task.js';

export interface ReptileOptions<P> {
  model: Model<P>;
  loss: Loss;
  params: P;
  innerLr?: number;
  innerSteps?: number;
  testInnerSteps?: number;
  /** Outer step size epsilon, linearly annealed to 0 over `metaSteps` when that is given. */
  metaLr?: number;
  metaSteps?: number;
}

export class Reptile<P> {
  params: P;
  iteration = 0;
  readonly o: Required<Omit<ReptileOptions<P>, 'params' | 'metaSteps'>> & { metaSteps?: number };

  constructor(opts: ReptileOptions<P>) {
    const innerSteps = opts.innerSteps ?? 5;
    this.o = { model: opts.model, loss: opts.loss, innerLr: opts.innerLr ?? 0.01, innerSteps,
      testInnerSteps: opts.testInnerSteps ?? innerSteps, metaLr: opts.metaLr ?? 1, metaSteps: opts.metaSteps };
    this.params = keep(opts.params);
  }

  /** SGD on (x, y) from params. */
  adapt(params: P, x: Tensor, y: Target, steps: number, training = true): P {
    let fast = params;
    for (let s = 0; s < steps; s++) {
      const g = grad((p: P) => this.o.loss(this.o.model(p, x, { step: s, training }), y))(fast);
      fast = treeMap((w, gw) => ops.sub(w, ops.mul(gw, this.o.innerLr)), fast, g);
    }
    return fast;
  }

  /**
   * One outer update from a batch of tasks. A training task has no held-out part in Reptile: the
   * inner SGD runs on its support and query examples together (Nichol et al. train on 10 shots per
   * class for 1-shot tests), and the returned loss is the adapted weights' loss on them.
   */
  async step(tasks: readonly Task[]): Promise<number> {
    const eps = this.o.metaSteps ? this.o.metaLr * Math.max(0, 1 - this.iteration / this.o.metaSteps) : this.o.metaLr;
    const [next, loss] = tidy(() => {
      let delta: P | null = null;
      const losses: Tensor[] = [];
      for (const t of tasks) {
        const x = ops.concat([t.xs, t.xq]), y = concatTargets(t.ys, t.yq);
        const fast = this.adapt(this.params, x, y, this.o.innerSteps);
        losses.push(this.o.loss(this.o.model(fast, x, { step: this.o.innerSteps, training: true }), y));
        const d = treeMap((f, p) => ops.sub(f, p), fast, this.params);
        delta = delta === null ? d : treeMap((a, b) => ops.add(a, b), delta, d);
      }
      const mean = ops.div(losses.reduce((a, b) => ops.add(a, b)), losses.length);
      return [treeMap((p, d) => ops.add(p, ops.mul(d, eps / tasks.length)), this.params, delta!), mean] as const;
    });
    for (const t of treeLeaves(this.params)) t.dispose();
    this.params = keep(next);
    this.iteration++;
    const v = (await loss.data())[0];
    loss.dispose();
    return v;
  }

  evaluate(tasks: Iterable<Task>, steps = this.o.testInnerSteps) {
    return evaluateTasks(tasks, (t) => this.adapt(this.params, t.xs, t.ys, steps, false), this.o.model, this.o.loss, steps);
  }

  dispose(): void { for (const t of treeLeaves(this.params)) t.dispose(); }
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
