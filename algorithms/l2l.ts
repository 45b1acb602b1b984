// Training a learned optimiser (Andrychowicz et al. 2016): φ is trained by gradient descent on the
// optimizee's losses along the trajectory the optimiser produces, L(φ) = Σ_t f(θ_t), through the
// unrolled optimisation. A trajectory of `steps` steps is cut into unrolls of `unroll` steps
// (truncated back-propagation through time): each unroll is one update of φ, and θ and the LSTM
// states are carried into the next as constants. As in the paper, the optimizee's gradients are
// inputs (∇_φ∇_θ f = 0) unless `secondDerivatives` is set.

import { valueAndGrad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { Optimizer, OptimizerState, adam } from '../engine/optim.js';
import { treeLeaves, treeUnflatten } from '../engine/pytree.js';
import { keep, noGrad, stopGradient, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { EvaluateOptions, Evaluation, LearnerBase } from './learner.js';
import { summarize } from './task.js';

/** One optimizee: a function to minimise, with its own start and (for minibatch problems) data. */
export interface Optimizee<P = any> {
  /** The starting parameters θ_0 (a fresh tree each call). */
  init(): P;
  /** f at θ on the data of step t (the same at every t for a fixed function; a minibatch per step for MNIST). */
  loss(theta: P, t: number): Tensor;
  /** Frees what the optimizee holds (its data), if anything. */
  dispose?(): void;
}

/** A learned optimiser's architecture: the Optimizer that meta-parameters φ define (coordinatewiseLSTM(...) is one). */
export interface LearnedOptimizer<Phi> { optimizer(phi: Phi): Optimizer }

export interface LearnedOptimizerTrainerOptions<Phi = any> {
  /**
   * The optimiser's architecture and its starting φ: coordinatewiseLSTM(...) and its init(rng), or
   * several LSTMs for groups of parameters ({ optimizer: (φ) => optim.grouped([...]) }).
   */
  learned: LearnedOptimizer<Phi>;
  phi: Phi;
  /** Steps of a training trajectory (default 100) and of each unroll (default 20). */
  steps?: number;
  unroll?: number;
  /** Keep ∇_φ∇_θ f (differentiate through the optimizee's gradients); default false, as the paper. */
  secondDerivatives?: boolean;
  /** Count f(θ) at the start of each unroll in its loss (default true, as the reference code: unroll + 1 terms). */
  includeStart?: boolean;
  /** Trains φ (default Adam 1e-3, as the paper). */
  metaOptimizer?: Optimizer;
}

/** The carried trajectory: θ_t and the optimiser's state, constants with respect to φ. */
interface Carry<P> { theta: P; state: OptimizerState }

export class LearnedOptimizerTrainer<P = any, Phi = any> extends LearnerBase<{ params: Phi }, Optimizee<P>, Optimizee<P>> {
  readonly o: Required<Omit<LearnedOptimizerTrainerOptions<Phi>, 'phi' | 'metaOptimizer'>>;

  constructor(opts: LearnedOptimizerTrainerOptions<Phi>) {
    super('LearnedOptimizerTrainer', { params: opts.phi }, opts.metaOptimizer ?? adam({ lr: 1e-3 }));
    this.o = {
      learned: opts.learned, steps: opts.steps ?? 100, unroll: opts.unroll ?? 20,
      secondDerivatives: opts.secondDerivatives ?? false, includeStart: opts.includeStart ?? true,
    };
    const { steps, unroll } = this.o;
    if (!Number.isInteger(unroll) || unroll < 1 || !Number.isInteger(steps) || steps < unroll || steps % unroll !== 0) {
      throw new RangeError(`LearnedOptimizerTrainer: steps must be a whole multiple of unroll (>= 1), got steps ${steps} and unroll ${unroll}`);
    }
  }

  /** φ, the trained optimiser's meta-parameters. */
  get phi(): Phi { return this.learned.params; }

  /**
   * The loss of one unroll as a function of φ, from the carried θ and state (constants): the sum of
   * f over the unroll's steps (and its start, with includeStart). Also returns where it ended.
   */
  unrollLoss(phi: Phi, problem: Optimizee<P>, from: Carry<P>, t0: number): { loss: Tensor; end: Carry<P> } {
    const opt = this.o.learned.optimizer(phi);
    let theta = from.theta, state = from.state;
    const terms: Tensor[] = [];
    for (let k = 0; k < this.o.unroll; k++) {
      const [f, g] = valueAndGrad((th: P) => problem.loss(th, t0 + k))(theta);
      if (k > 0 || this.o.includeStart) terms.push(f);
      const r = opt.update(theta, this.o.secondDerivatives ? g : treeUnflatten(g, treeLeaves(g).map(stopGradient)), state);
      theta = r.params;
      state = r.state;
    }
    terms.push(problem.loss(theta, t0 + this.o.unroll));
    return { loss: terms.reduce((a, b) => ops.add(a, b)), end: { theta, state } };
  }

  /** The optimiser's state at θ_0 (zero LSTM states). */
  startState(problem: Optimizee<P>): Carry<P> {
    return noGrad(() => {
      const theta = problem.init();
      return { theta, state: this.o.learned.optimizer(this.phi).init(theta) };
    });
  }

  /**
   * One training trajectory on `problem`: steps / unroll updates of φ (each counts as an iteration).
   * Returns the mean of f over the trajectory's evaluations.
   */
  async step(problem: Optimizee<P>): Promise<number> {
    let carry: Carry<P> = keep(this.startState(problem));
    let total = 0;
    const units = this.o.steps / this.o.unroll;
    try {
      for (let u = 0; u < units; u++) {
        let end: Carry<P> | null = null;
        total += await this.optimizerStep({
          lossAndGrads: (learned) => {
            const [loss, grads] = valueAndGrad((l: { params: Phi }) => {
              const r = this.unrollLoss(l.params, problem, carry, u * this.o.unroll);
              // Carried on as constants: the next unroll does not differentiate into this one.
              end = keep(treeUnflatten(r.end, treeLeaves(r.end).map(stopGradient)));
              return r.loss;
            })(learned);
            return [loss, grads];
          },
        });
        disposeCarry(carry);
        carry = end!;
      }
    } finally {
      disposeCarry(carry);
    }
    return total / (units * (this.o.unroll + (this.o.includeStart ? 1 : 0)));
  }

  /**
   * Runs the trained optimiser on each problem for `steps` steps (default the training length) and
   * scores f at the end; `curve[t]` is the mean over problems of f(θ_t), t = 0..steps.
   */
  async evaluate(problems: Iterable<Optimizee<P>>, options: EvaluateOptions = {}): Promise<Evaluation & { curve: number[] }> {
    const steps = options.steps ?? this.o.steps;
    const finals: number[] = [];
    let sums: number[] | null = null;
    for (const problem of problems) {
      const fs = await this.trajectory(problem, steps);
      sums = sums ? sums.map((s, t) => s + fs[t]) : fs;
      finals.push(fs[steps]);
    }
    if (!sums) throw new Error('LearnedOptimizerTrainer.evaluate: no problems');
    return { loss: summarize(finals), curve: sums.map((s) => s / finals.length) };
  }

  /** f(θ_t) for t = 0..steps along the trained optimiser's trajectory on `problem`. */
  async trajectory(problem: Optimizee<P>, steps: number): Promise<number[]> {
    return runOptimizer(this.o.learned.optimizer(this.phi), problem, steps);
  }
}

/** f(θ_t), t = 0..steps, along any optimiser's trajectory on `problem` (the baselines use this too). */
export async function runOptimizer<P>(opt: Optimizer, problem: Optimizee<P>, steps: number): Promise<number[]> {
  let carry: Carry<P> = keep(noGrad(() => { const theta = problem.init(); return { theta, state: opt.init(theta) }; }));
  const values: Tensor[] = [];
  try {
    for (let t = 0; t < steps; t++) {
      const next = tidy(() => {
        const [f, g] = valueAndGrad((th: P) => problem.loss(th, t))(carry.theta);
        values.push(keep(f));
        const r = opt.update(carry.theta, g, carry.state);
        return { theta: r.params, state: r.state };
      });
      disposeCarry(carry);
      carry = keep(next);
    }
    values.push(keep(tidy(() => problem.loss(carry.theta, steps))));
    const out: number[] = [];
    for (const v of values) out.push((await v.data())[0]);
    return out;
  } finally {
    disposeCarry(carry);
    values.forEach((v) => v.dispose());
  }
}

function disposeCarry<P>(c: Carry<P>): void {
  for (const t of treeLeaves(c.theta)) t.dispose();
  c.state.slots.flat().forEach((t) => t.dispose());
}
