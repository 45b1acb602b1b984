// The MAML family as one learner (Finn et al. 2017 and its successors): an inner loop of gradient
// steps on the support set, the query loss at the adapted weights, and a meta-update through it.
// The variants are the options that distinguish them in their papers:
//   MAML            defaults (second order)
//   first-order     firstOrder: true
//   Meta-SGD        learnedLr: 'per-parameter' (Li et al. 2017)
//   learned rates   learnedLr: 'per-layer-per-step' (one rate per parameter tensor and inner step)
//   MAML++          learnedLr: 'per-layer-per-step', multiStepLoss, secondOrderFrom, and a model
//                   with per-step batch-norm statistics (Antoniou et al. 2019)
//   ANIL            adapt: (path) => path.startsWith('head') (Raghu et al. 2020)

import { valueAndGrad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { Optimizer, OptimizerState, adam } from '../engine/optim.js';
import { treeLeaves, treeMap, treePaths, treeUnflatten } from '../engine/pytree.js';
import { keep, stopGradient, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { Loss, Model, Target, Task, evaluateTasks } from './task.js';

export interface MAMLOptions<P> {
  model: Model<P>;
  loss: Loss;
  /** Initial parameters; the learner takes ownership (they are disposed as they are updated). */
  params: P;
  innerLr?: number;
  innerSteps?: number;
  /** Inner steps at evaluation (MAML used 10 at test for sine, 1 in training). */
  testInnerSteps?: number;
  /** Drop second-order terms: the meta-gradient treats inner gradients as constants. */
  firstOrder?: boolean;
  learnedLr?: 'none' | 'per-parameter' | 'per-layer-per-step';
  /**
   * MAML++ multi-step loss: the meta-loss weighs the query loss after every inner step, with the
   * weights of the intermediate steps annealed from uniform to a floor over this many meta-steps.
   */
  multiStepLoss?: number;
  /** MAML++ derivative-order annealing: first order before this meta-step, second order after. */
  secondOrderFrom?: number;
  /** Which parameters the inner loop adapts, by dotted path (all by default). */
  adapt?: (path: string) => boolean;
  metaOptimizer?: Optimizer;
  /**
   * Tasks arrive stacked on a leading axis (one Task whose tensors are [tasks, ...]) and the model
   * accepts per-task weights with that leading axis; the inner loop then runs for all tasks at once.
   */
  vectorized?: boolean;
}

/** The meta-parameters: the initialisation and, for learned-rate variants, the inner rates. */
export interface MetaParams<P> { params: P; lrs?: Tensor[] }

export class MAML<P> {
  meta: MetaParams<P>;
  /** Meta-steps taken so far. */
  iteration = 0;
  private optState: OptimizerState;
  private readonly opt: Optimizer;
  private readonly adapted: boolean[];
  readonly o: Required<Omit<MAMLOptions<P>, 'params' | 'adapt' | 'metaOptimizer' | 'multiStepLoss' | 'secondOrderFrom'>> & Pick<MAMLOptions<P>, 'multiStepLoss' | 'secondOrderFrom'>;

  constructor(opts: MAMLOptions<P>) {
    const innerSteps = opts.innerSteps ?? 1;
    this.o = {
      model: opts.model, loss: opts.loss, innerLr: opts.innerLr ?? 0.01, innerSteps,
      testInnerSteps: opts.testInnerSteps ?? innerSteps, firstOrder: opts.firstOrder ?? false,
      learnedLr: opts.learnedLr ?? 'none', vectorized: opts.vectorized ?? false,
      multiStepLoss: opts.multiStepLoss, secondOrderFrom: opts.secondOrderFrom,
    };
    const paths = treePaths(opts.params);
    this.adapted = paths.map((p) => (opts.adapt ? opts.adapt(p) : true));
    if (!this.adapted.some(Boolean)) throw new Error('MAML: the adapt filter selects no parameter');
    const leaves = treeLeaves(opts.params);
    const lr = this.o.innerLr;
    let lrs: Tensor[] | undefined;
    if (this.o.learnedLr === 'per-parameter') lrs = leaves.map((p) => ops.full(p.shape, lr, { dtype: p.dtype }));
    if (this.o.learnedLr === 'per-layer-per-step') lrs = [ops.full([Math.max(innerSteps, this.o.testInnerSteps), leaves.length], lr, { dtype: leaves[0].dtype })];
    this.meta = keep({ params: opts.params, lrs });
    this.opt = opts.metaOptimizer ?? adam({ lr: 1e-3 });
    this.optState = keep(this.opt.init(this.meta));
  }

  /**
   * The inner loop: `steps` gradient steps on (x, y) from `params`. With `firstOrder` the inner
   * gradients are constants to any enclosing derivative. `onStep(s, fast)` sees the weights after
   * each step (the multi-step loss uses it).
   */
  adapt(meta: MetaParams<P>, x: Tensor, y: Target, steps: number, firstOrder: boolean, training: boolean,
    onStep?: (s: number, fast: P) => void): P {
    const tasks = this.o.vectorized ? x.shape[0] : 1;
    // Vectorized: one copy of each adapted parameter per task, so each task gets its own fast weights.
    let fast = this.o.vectorized
      ? treeUnflatten(meta.params, treeLeaves(meta.params).map((p, i) => (this.adapted[i] ? ops.broadcastTo(ops.expandDims(p, 0), [tasks, ...p.shape]) : p)))
      : meta.params;
    for (let s = 0; s < steps; s++) {
      const leaves = treeLeaves(fast);
      // Gradients with respect to the adapted parameters only (ANIL adapts the head alone).
      const idx = leaves.map((_, i) => i).filter((i) => this.adapted[i]);
      const [, g] = valueAndGrad((sub: Tensor[]) => {
        const all = leaves.map((l, i) => (this.adapted[i] ? sub[idx.indexOf(i)] : l));
        // Vectorized: the mean over tasks times the task count makes each task's gradient its own.
        return ops.mul(this.o.loss(this.o.model(treeUnflatten(fast, all), x, { step: s, training }), y), tasks);
      })(idx.map((i) => leaves[i]));
      const next = leaves.map((p, i) => {
        if (!this.adapted[i]) return p;
        const gi = firstOrder ? stopGradient(g[idx.indexOf(i)]) : g[idx.indexOf(i)];
        return ops.sub(p, ops.mul(gi, this.rate(meta, i, s)));
      });
      fast = treeUnflatten(fast, next);
      onStep?.(s, fast);
    }
    return fast;
  }

  private rate(meta: MetaParams<P>, leaf: number, step: number): Tensor | number {
    if (this.o.learnedLr === 'per-parameter') return meta.lrs![leaf];
    if (this.o.learnedLr === 'per-layer-per-step') return ops.reshape(ops.slice(meta.lrs![0], [step, leaf], [1, 1]), []);
    return this.o.innerLr;
  }

  /** Weights of the query losses after each inner step (MAML++ multi-step loss), else only the last. */
  stepWeights(): number[] {
    const S = this.o.innerSteps;
    const w = new Array(S).fill(0);
    if (!this.o.multiStepLoss) { w[S - 1] = 1; return w; }
    const progress = Math.min(1, this.iteration / this.o.multiStepLoss);
    const floor = 0.03 / S;
    for (let s = 0; s < S - 1; s++) w[s] = Math.max((1 / S) * (1 - progress), floor);
    w[S - 1] = 1 - w.slice(0, S - 1).reduce((a, b) => a + b, 0);
    return w;
  }

  /** The meta-loss over a batch of tasks: mean over tasks of the (weighted) query losses. */
  metaLoss(meta: MetaParams<P>, tasks: readonly Task[]): Tensor {
    const firstOrder = this.o.firstOrder || (this.o.secondOrderFrom !== undefined && this.iteration < this.o.secondOrderFrom);
    const weights = this.stepWeights();
    const perTask = tasks.map((t) => {
      const terms: Tensor[] = [];
      this.adapt(meta, t.xs, t.ys, this.o.innerSteps, firstOrder, true, (s, fast) => {
        if (weights[s] > 0) terms.push(ops.mul(this.o.loss(this.o.model(fast, t.xq, { step: s + 1, training: true }), t.yq), weights[s]));
      });
      return terms.reduce((a, b) => ops.add(a, b));
    });
    return ops.div(perTask.reduce((a, b) => ops.add(a, b)), perTask.length);
  }

  /**
   * One meta-update on a batch of tasks; returns the meta-loss before the update. The meta-gradient
   * is accumulated task by task, so only one task's second-order graph is alive at a time (32
   * Omniglot tasks at once would not fit in WebAssembly's 4 GiB).
   */
  async step(tasks: readonly Task[]): Promise<number> {
    const loss = tidy(() => {
      let value: Tensor | null = null;
      let sum: MetaParams<P> | null = null;
      for (const t of tasks) {
        const [v, g] = tidy(() => valueAndGrad((m: MetaParams<P>) => this.metaLoss(m, [t]))(this.meta));
        if (value === null || sum === null) { value = v; sum = g; continue; }
        const [nv, ng]: [Tensor, MetaParams<P>] = [ops.add(value, v), treeMap(ops.add, sum, g)];
        for (const x of [value, v, ...treeLeaves(sum), ...treeLeaves(g)]) x.dispose();
        value = nv; sum = ng;
      }
      value = ops.div(value!, tasks.length);
      const g = treeMap((x) => ops.div(x, tasks.length), sum!);
      const { params: next, state } = this.opt.update(this.meta, g, this.optState);
      for (const t of [...treeLeaves(this.meta), ...treeLeaves(this.optState.slots)]) t.dispose();
      this.meta = keep(next);
      this.optState = keep(state);
      return value;
    });
    this.iteration++;
    const v = (await loss.data())[0];
    loss.dispose();
    return v;
  }

  /** Adapts to each task with `steps` inner steps and scores its query set (see evaluateTasks). */
  evaluate(tasks: Iterable<Task>, steps = this.o.testInnerSteps) {
    return evaluateTasks(this.o.vectorized ? [...tasks].map(withTaskAxis) : tasks,
      (t) => this.adapt(this.meta, t.xs, t.ys, steps, true, false), this.o.model, this.o.loss, steps);
  }

  dispose(): void {
    for (const t of [...treeLeaves(this.meta), ...treeLeaves(this.optState.slots)]) t.dispose();
  }
}

/** A single task as a stack of one, for vectorized learners. */
export function withTaskAxis(t: Task): Task {
  const lift = <T extends Target>(v: T): T => (v instanceof Int32Array ? v : ops.expandDims(v, 0)) as T;
  return { xs: lift(t.xs), ys: lift(t.ys), xq: lift(t.xq), yq: lift(t.yq) };
}
