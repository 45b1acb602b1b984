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

import { hvp, valueAndGrad } from '../engine/autodiff.js';
import { hutchinsonFrobenius } from '../engine/linalg.js';
import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { treeLeaves, treePaths, treeUnflatten } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { keep, stopGradient, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { InnerLoopLearnerOptions, innerLoop } from './inner-loop.js';
import { PCGradOptions, conflictStats, metaBatchGradient } from './pcgrad.js';
import { Buffers, EvaluateOptions, LearnerBase } from './learner.js';
import { Loss, Model, Target, Task, evaluateTasks, mapIterable } from './task.js';

/** Defaults: innerLr 0.01, innerSteps 1, testInnerSteps innerSteps (MAML used 10 at test for sine, 1 in training). */
export interface MAMLOptions<P> extends InnerLoopLearnerOptions<P> {
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
  /** The model's running statistics (MAML++ per-step batch norm), saved with the learner; taken over. */
  buffers?: Buffers;
  /**
   * Meta-PCGrad: the meta-batch split into `groups` sets (in order), one meta-gradient each, and
   * PCGrad between them (Yu et al. 2020) in orders drawn from `rng` (owned: saved in state()).
   */
  pcgrad?: PCGradOptions;
  /**
   * Hessian regularisation: coef times a Hutchinson estimate (`probes` probes from `rng`, owned) of
   * the squared Frobenius norm of each task's support-loss Hessian at its adapted weights, added to
   * the meta-loss, so that the tasks' second-order updates agree (McKeehan, "Meta-Learning that
   * Memorizes"). Check it against `linalg.hessianFrobenius` on small models.
   */
  hessianReg?: { coef: number; probes: number; rng: Random };
  /**
   * Tasks arrive stacked on a leading axis (one Task whose tensors are [tasks, ...]) and the model
   * accepts per-task weights with that leading axis; the inner loop then runs for all tasks at once.
   */
  vectorized?: boolean;
}

/** The meta-parameters: the initialisation and, for learned-rate variants, the inner rates. */
export interface MetaParams<P> { [k: string]: unknown; params: P; lrs?: Tensor[] }

export class MAML<P> extends LearnerBase<MetaParams<P>> {
  private readonly adapted: boolean[];
  private readonly pcgrad?: PCGradOptions;
  private readonly hessianReg?: { coef: number; probes: number; rng: Random };
  private pcgradStats: Record<string, number> | null = null;
  private hessianStats: Record<string, number> | null = null;
  /** The sum over the current step's tasks of their ||H||_F² estimates (values only). */
  private penalty: Tensor | null = null;
  readonly o: Required<Omit<MAMLOptions<P>, 'params' | 'adapt' | 'metaOptimizer' | 'multiStepLoss' | 'secondOrderFrom' | 'buffers' | 'pcgrad' | 'hessianReg'>> & Pick<MAMLOptions<P>, 'multiStepLoss' | 'secondOrderFrom'>;

  constructor(opts: MAMLOptions<P>) {
    const innerSteps = opts.innerSteps ?? 1;
    const o = {
      model: opts.model, loss: opts.loss, innerLr: opts.innerLr ?? 0.01, innerSteps,
      testInnerSteps: opts.testInnerSteps ?? innerSteps, firstOrder: opts.firstOrder ?? false,
      learnedLr: opts.learnedLr ?? 'none', vectorized: opts.vectorized ?? false,
      multiStepLoss: opts.multiStepLoss, secondOrderFrom: opts.secondOrderFrom,
    };
    const adapted = treePaths(opts.params).map((p) => (opts.adapt ? opts.adapt(p) : true));
    if (!adapted.some(Boolean)) throw new Error('MAML: the adapt filter selects no parameter');
    const leaves = treeLeaves(opts.params);
    let lrs: Tensor[] | undefined;
    if (o.learnedLr === 'per-parameter') lrs = leaves.map((p) => ops.full(p.shape, o.innerLr, { dtype: p.dtype }));
    if (o.learnedLr === 'per-layer-per-step') lrs = [ops.full([Math.max(innerSteps, o.testInnerSteps), leaves.length], o.innerLr, { dtype: leaves[0].dtype })];
    super('MAML', { params: opts.params, lrs }, opts.metaOptimizer ?? adam({ lr: 1e-3 }), opts.buffers);
    this.o = o;
    this.adapted = adapted;
    if (opts.pcgrad) {
      if (!Number.isInteger(opts.pcgrad.groups) || opts.pcgrad.groups < 1) throw new RangeError(`MAML: pcgrad.groups must be a whole number >= 1, got ${opts.pcgrad.groups}`);
      this.pcgrad = opts.pcgrad;
    }
    if (opts.hessianReg) {
      const { coef, probes } = opts.hessianReg;
      if (!(coef >= 0) || !Number.isInteger(probes) || probes < 1) throw new RangeError(`MAML: hessianReg needs coef >= 0 and probes a whole number >= 1, got ${coef} and ${probes}`);
      this.hessianReg = opts.hessianReg;
    }
  }

  /** The meta-parameters (initialisation and learned rates). */
  get meta(): MetaParams<P> { return this.learned; }

  /**
   * The inner loop from `meta`: `steps` gradient steps on (x, y). With `firstOrder` the inner
   * gradients are constants to any enclosing derivative. `onStep(s, fast)` sees the weights after
   * each step (the multi-step loss uses it).
   */
  adapt(meta: MetaParams<P>, x: Tensor, y: Target, o: { steps: number; firstOrder?: boolean; training?: boolean; onStep?: (s: number, fast: P) => void }): P {
    const tasks = this.o.vectorized ? x.shape[0] : 1;
    // Vectorized: one copy of each adapted parameter per task, so each task gets its own fast weights.
    const start = this.o.vectorized
      ? treeUnflatten(meta.params, treeLeaves(meta.params).map((p, i) => (this.adapted[i] ? ops.broadcastTo(ops.expandDims(p, 0), [tasks, ...p.shape]) : p)))
      : meta.params;
    return innerLoop(start, x, y, {
      model: this.o.model, loss: this.o.loss, steps: o.steps, adapted: this.adapted, firstOrder: o.firstOrder,
      training: o.training, onStep: o.onStep, lossScale: this.o.vectorized ? tasks : undefined, lr: this.rate(meta),
    });
  }

  private rate(meta: MetaParams<P>): InnerLoopRate {
    if (this.o.learnedLr === 'per-parameter') return (leaf) => meta.lrs![leaf];
    if (this.o.learnedLr === 'per-layer-per-step') return (leaf, step) => ops.reshape(ops.slice(meta.lrs![0], [step, leaf], [1, 1]), []);
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
      const fast = this.adapt(meta, t.xs, t.ys, {
        steps: this.o.innerSteps, firstOrder, training: true,
        onStep: (s, fast) => {
          if (weights[s] > 0) terms.push(ops.mul(this.o.loss(this.o.model(fast, t.xq, { step: s + 1, training: true }), t.yq), weights[s]));
        },
      });
      const hr = this.hessianReg;
      if (hr && hr.coef > 0) {
        // ||H||_F² of the support loss at the adapted weights (Hutchinson); its meta-gradient is a
        // third derivative, through the Hessian-vector products and the inner loop.
        const support = (p: P) => this.o.loss(this.o.model(p, t.xs, { step: this.o.innerSteps, training: true }), t.ys);
        const estimate = hutchinsonFrobenius((v: P) => hvp(support, fast, v), fast, { probes: hr.probes, rng: hr.rng });
        this.notePenalty(estimate);
        terms.push(ops.mul(estimate, hr.coef));
      }
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
    if (tasks.length === 0) throw new Error('MAML.step: no tasks');
    this.penalty?.dispose();   // what calls of metaLoss outside a step left
    this.penalty = null;
    let cosines: Tensor | null = null;
    const loss = await this.optimizerStep({
      lossAndGrads: (meta) => {
        const r = metaBatchGradient(tasks, (t) => tidy(() => valueAndGrad((m: MetaParams<P>) => this.metaLoss(m, [t]))(meta)), this.pcgrad);
        cosines = r.cosines;
        return [r.loss, r.grad];
      },
    });
    if (cosines) this.pcgradStats = await conflictStats(cosines);
    const penalty = this.penalty as Tensor | null;   // summed by metaLoss during the step
    if (penalty) {
      this.penalty = null;
      this.hessianStats = { hessianFrobenius: (await penalty.data())[0] / tasks.length };
      penalty.dispose();
    }
    return loss;
  }

  override dispose(): void {
    super.dispose();
    this.penalty?.dispose();
    this.penalty = null;
  }

  /** Adds a task's Hessian estimate (its value only) to the step's sum, for metrics(). */
  private notePenalty(estimate: Tensor): void {
    const v = keep(stopGradient(estimate));
    if (!this.penalty) { this.penalty = v; return; }
    const sum = keep(ops.add(this.penalty, v));
    this.penalty.dispose();
    v.dispose();
    this.penalty = sum;
  }

  /**
   * Statistics of the last step: Meta-PCGrad's fraction of group pairs in conflict and their mean
   * cosine; with hessianReg, the mean over tasks of the estimate of ||H||_F² (before the coefficient).
   */
  metrics(): Record<string, number> { return { ...this.pcgradStats, ...this.hessianStats }; }

  protected override extraInfo() {
    return { ...(this.pcgrad ? { rng: this.pcgrad.rng.state() } : {}), ...(this.hessianReg ? { hessianRng: this.hessianReg.rng.state() } : {}) };
  }
  protected override loadExtraInfo(info: Record<string, unknown>) {
    if (this.pcgrad) {
      if (!info.rng) throw new Error('MAML.load: the state has no random-stream position for PCGrad');
      this.pcgrad.rng.setState(info.rng as any);
    }
    if (this.hessianReg) {
      if (!info.hessianRng) throw new Error('MAML.load: the state has no random-stream position for the Hessian regulariser');
      this.hessianReg.rng.setState(info.hessianRng as any);
    }
  }

  /** Adapts to each task with `steps` inner steps (default testInnerSteps) and scores its query set. */
  evaluate(tasks: Iterable<Task>, o: EvaluateOptions = {}) {
    const steps = o.steps ?? this.o.testInnerSteps;
    return evaluateTasks(this.o.vectorized ? mapIterable(tasks, withTaskAxis) : tasks,
      (t) => this.adapt(this.learned, t.xs, t.ys, { steps, firstOrder: true, training: false }), this.o.model, this.o.loss, steps);
  }
}

type InnerLoopRate = number | ((leaf: number, step: number) => Tensor | number);

/** A single task as a stack of one, for vectorized learners. */
export function withTaskAxis(t: Task): Task {
  const lift = <T extends Target>(v: T): T => (v instanceof Int32Array ? v : ops.expandDims(v, 0)) as T;
  return { xs: lift(t.xs), ys: lift(t.ys), xq: lift(t.xq), yq: lift(t.yq) };
}
