// The LSTM meta-learner of Ravi & Larochelle 2017 ("Optimization as a Model for Few-Shot Learning"):
// the learner's parameters are the cell state of an LSTM whose input and forget gates act as a
// learned learning rate and decay, c_t = σ(f_t) ⊙ c_{t-1} − σ(i_t) ⊙ ∇_t, applied coordinatewise
// (one set of weights shared by every parameter). Its first layer is an ordinary LSTM (20 units)
// reading the preprocessed loss and gradient; the gates read that layer's output, the coordinate's
// current value c_{t-1} and the gate's own previous value: f_t = W_F·[h_t, c_{t-1}, f_{t-1}] + b_F,
// i_t = W_I·[h_t, c_{t-1}, i_{t-1}] + b_I (twitter/meta-learning-lstm, meta-learner-lstm.lua).
// c_0 is the learned initialisation. As in the paper, the learner's loss and gradients are inputs
// (the graph is cut there: no second derivatives); the meta-gradient flows through the cell-state
// chain and the gates. Adam with the gradient norm clipped (0.25 in the paper) trains it all.

import { valueAndGrad } from '../engine/autodiff.js';
import { preprocessGradient } from '../engine/learned-optim.js';
import { flatten, norm, unflatten } from '../engine/linalg.js';
import * as nn from '../engine/nn.js';
import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { treeLeaves, treeUnflatten } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { stopGradient } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { DType } from '../kernels/backend.js';
import { EvaluateOptions, LearnerBase } from './learner.js';
import { Loss, Model, Task, evaluateTasks } from './task.js';

/** The meta-learner's own weights: the first LSTM layer and the two gates (W over [h, c, gate], b). */
export interface MetaLearnerLSTMParams { [k: string]: unknown; lstm: nn.LSTMParams; wF: Tensor; bF: Tensor; wI: Tensor; bI: Tensor }

/**
 * The paper's initialisation: weights U(-0.01, 0.01); b_F ~ U(4, 5) and b_I ~ U(-5, -4), so that the
 * model starts as gradient descent with a small rate and almost no decay.
 */
export function initMetaLearnerLSTM(rng: Random, o: { hidden?: number; dtype?: DType } = {}): MetaLearnerLSTMParams {
  const hidden = o.hidden ?? 20, dtype = o.dtype ?? 'float32';
  const u = (shape: number[], low: number, high: number) => rng.uniform(shape, { low, high, dtype });
  return {
    lstm: { wx: u([4, 4 * hidden], -0.01, 0.01), wh: u([hidden, 4 * hidden], -0.01, 0.01), b: u([4 * hidden], -0.01, 0.01) },
    wF: u([hidden + 2, 1], -0.01, 0.01), bF: u([1], 4, 5),
    wI: u([hidden + 2, 1], -0.01, 0.01), bI: u([1], -5, -4),
  };
}

/** Per coordinate: the first layer's h and c [n, hidden], and the previous gate pre-activations f, i [n, 1]. */
export interface MetaLearnerState { h: Tensor; cell: Tensor; f: Tensor; i: Tensor }

export function metaLearnerState(n: number, hidden: number, dtype: DType = 'float32'): MetaLearnerState {
  const z = (k: number) => ops.zeros([n, k], { dtype });
  return { h: z(hidden), cell: z(hidden), f: z(1), i: z(1) };
}

/**
 * One update of the learner's parameters c [n] from its loss (a scalar) and gradient [n]: the
 * first layer reads (preprocess(loss), preprocess(∇)) for each coordinate, then
 * c' = σ(f) ⊙ c − σ(i) ⊙ ∇. Coordinatewise: every coordinate is an independent row.
 */
export function metaLearnerStep(m: MetaLearnerLSTMParams, c: Tensor, g: Tensor, loss: Tensor, s: MetaLearnerState, p = 10)
  : { c: Tensor; state: MetaLearnerState } {
  const n = c.size;
  const x = ops.concat([preprocessGradient(ops.mul(ops.ones([n], { dtype: c.dtype }), ops.reshape(loss, [])), p), preprocessGradient(g, p)], 1);
  const s1 = nn.lstmCell(m.lstm, x, { h: s.h, c: s.cell });
  const col = ops.reshape(c, [n, 1]);
  const f = ops.add(ops.matmul(ops.concat([s1.h, col, s.f], 1), m.wF), m.bF);
  const i = ops.add(ops.matmul(ops.concat([s1.h, col, s.i], 1), m.wI), m.bI);
  const next = ops.sub(ops.mul(ops.sigmoid(f), col), ops.mul(ops.sigmoid(i), ops.reshape(g, [n, 1])));
  return { c: ops.reshape(next, [n]), state: { h: s1.h, cell: s1.c, f, i } };
}

export interface RaviLarochelleOptions<P> {
  model: Model<P>;
  loss: Loss;
  /** The learner's initial parameters (c_0, meta-learned). */
  params: P;
  /** The meta-learner's weights (initMetaLearnerLSTM). */
  metaLearner: MetaLearnerLSTMParams;
  /** Updates of the learner on the support set per episode (the paper: 12 at 1 shot, 8 at 5 shots), also at test. */
  updates: number;
  /** Gradient preprocessing exponent (default 10). */
  p?: number;
  /** Clip the meta-gradient's global norm (default 0.25, the paper's; 0 for none). */
  clip?: number;
  metaOptimizer?: Optimizer;
}

type Learned<P> = { params: P; metaLearner: MetaLearnerLSTMParams };

export class RaviLarochelle<P = any> extends LearnerBase<Learned<P>> {
  readonly o: Required<Omit<RaviLarochelleOptions<P>, 'params' | 'metaLearner' | 'metaOptimizer'>>;
  private readonly hidden: number;

  constructor(opts: RaviLarochelleOptions<P>) {
    super('RaviLarochelle', { params: opts.params, metaLearner: opts.metaLearner }, opts.metaOptimizer ?? adam({ lr: 1e-3 }));
    this.o = { model: opts.model, loss: opts.loss, updates: opts.updates, p: opts.p ?? 10, clip: opts.clip ?? 0.25 };
    if (!Number.isInteger(this.o.updates) || this.o.updates < 1) throw new RangeError(`RaviLarochelle: updates must be a whole number >= 1, got ${this.o.updates}`);
    if (!(this.o.clip >= 0)) throw new RangeError(`RaviLarochelle: clip must be >= 0, got ${this.o.clip}`);
    this.hidden = opts.metaLearner.lstm.wh.shape[0];
  }

  get params(): P { return this.learned.params; }

  /**
   * The learner's parameters after `updates` meta-learner steps on the support set (xs, ys), from
   * `learned.params`. The learner's loss and gradients enter as constants (the paper's cut).
   */
  adapt(learned: Learned<P>, xs: Tensor, ys: Task['ys'], o: { training: boolean }): P {
    let c = flatten(learned.params);
    let state = metaLearnerState(c.size, this.hidden, c.dtype);
    for (let t = 0; t < this.o.updates; t++) {
      const [l, g] = valueAndGrad((q: P) => this.o.loss(this.o.model(q, xs, { step: t, training: o.training }), ys))(unflatten(learned.params, stopGradient(c)));
      const r = metaLearnerStep(learned.metaLearner, c, stopGradient(flatten(g)), stopGradient(l), state, this.o.p);
      c = r.c;
      state = r.state;
    }
    return unflatten(learned.params, c);
  }

  /** The query loss after adaptation, averaged over tasks: what step() minimises. */
  metaLoss(learned: Learned<P>, tasks: readonly Task[]): Tensor {
    const losses = tasks.map((t) => this.o.loss(this.o.model(this.adapt(learned, t.xs, t.ys, { training: true }), t.xq, { step: this.o.updates, training: true }), t.yq));
    return ops.div(losses.reduce((a, b) => ops.add(a, b)), losses.length);
  }

  async step(tasks: readonly Task[]): Promise<number> {
    if (tasks.length === 0) throw new Error('RaviLarochelle.step: no tasks');
    return this.optimizerStep({
      lossAndGrads: (learned) => {
        const [loss, grads] = valueAndGrad((l: Learned<P>) => this.metaLoss(l, tasks))(learned);
        return [loss, this.o.clip > 0 ? clipByGlobalNorm(grads, this.o.clip) : grads];
      },
    });
  }

  evaluate(tasks: Iterable<Task>, _o: EvaluateOptions = {}) {
    return evaluateTasks(tasks, (t) => this.adapt(this.learned, t.xs, t.ys, { training: false }), this.o.model, this.o.loss, this.o.updates);
  }
}

/** The tree scaled so that its global L2 norm is at most maxNorm (unchanged when it already is). */
export function clipByGlobalNorm<T>(tree: T, maxNorm: number): T {
  const total = norm(tree);
  const factor = ops.div(maxNorm, ops.maximum(total, maxNorm));
  return treeUnflatten(tree, treeLeaves(tree).map((t) => ops.mul(t, factor)));
}
