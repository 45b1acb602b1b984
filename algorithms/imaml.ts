// Implicit MAML (Rajeswaran, Finn, Kakade & Levine, "Meta-Learning with Implicit Gradients",
// NeurIPS 2019). The inner problem is regularised towards the initialisation θ,
//
//   φ*(θ) = argmin_φ  L_support(φ) + λ/2 ||φ − θ||²                                (paper eq. 3)
//
// and at its minimum ∇L_support(φ*) + λ(φ* − θ) = 0, so by the implicit function theorem
//
//   dφ*/dθ = (I + H/λ)^{-1},   H = ∇²L_support(φ*)                                   (paper Lemma 1)
//
// The task meta-gradient (dφ*/dθ)ᵀ ∇L_query(φ*) = (I + H/λ)^{-1} ∇L_query(φ*) (the matrix is
// symmetric) needs only φ*, never the path the inner solver took to it: it is solved for by
// conjugate gradient with Hessian-vector products (paper Algorithm 2), so memory does not grow with
// the number of inner steps, unlike MAML's unrolled second-order graph. The (I + H/λ) operator is the
// Hessian of the whole proximal objective, H + λI, divided by λ: the proximal term is accounted for
// there, and H itself is the support loss's alone.

import { valueAndGrad } from '../engine/autodiff.js';
import { axpy, cg, hvpOperator, scale, sub } from '../engine/linalg.js';
import * as ops from '../engine/ops.js';
import { Optimizer, adam } from '../engine/optim.js';
import { treeLeaves, treeMap } from '../engine/pytree.js';
import { stopGradient, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { show } from '../engine/validate.js';
import { InnerLoopLearnerOptions, innerLoop } from './inner-loop.js';
import { PCGradOptions, conflictStats, metaBatchGradient } from './pcgrad.js';
import { EvaluateOptions, LearnerBase } from './learner.js';
import { Loss, Model, Target, Task, evaluateTasks } from './task.js';

/**
 * Defaults: innerLr 0.01 (with 'gd' keep it below 2 / (L + λ), L the support loss's curvature),
 * innerSteps 16 (the reference code's n_steps; gradient steps with 'gd', Newton-CG steps with
 * 'hessian-free'), testInnerSteps innerSteps.
 */
export interface IMAMLOptions<P> extends InnerLoopLearnerOptions<P> {
  /** Default Adam, lr 1e-3. */
  metaOptimizer?: Optimizer;
  /** λ, the strength of the proximal term (default 2). Large λ keeps φ* near θ (λ → ∞: the query gradient at θ). */
  lam?: number;
  /** CG iterations for the meta-gradient, and per Newton step of the 'hessian-free' inner solver (default 5). */
  cgSteps?: number;
  /** d in the meta-gradient operator (1 + d) v + H v / λ (default 0; 1 with variant 'reference', the reference script's --cg_damping). */
  cgDamping?: number;
  /** 'reference' only: λ_d in (1 + d) v + H v / (λ + λ_d) (default 10, the reference code's lam_damping). */
  lamDamping?: number;
  /**
   * 'gd' (default): `innerSteps` gradient steps on the inner objective. 'hessian-free': `innerSteps`
   * Newton steps, each solving (H + λI) d = −∇ by `cgSteps` CG iterations on Hessian-vector
   * products (the paper's Hessian-free / Newton-CG inner solver, §4), step size 1.
   */
  innerSolver?: 'gd' | 'hessian-free';
  /**
   * 'paper' (default): the algorithm as the paper writes it (see IMAML). 'reference': as the authors'
   * code does it (aravindr93/imaml_dev, examples/omniglot_implicit_maml.py): plain SGD on the
   * support loss, then one proximal pull-back step, and the damped operator.
   */
  variant?: 'paper' | 'reference';
  /** Meta-PCGrad between groups of each meta-batch's tasks (see MAMLOptions.pcgrad). */
  pcgrad?: PCGradOptions;
}

/** One task's implicit meta-gradient. */
export interface ImplicitGradient<P> {
  /** L_query(φ*). */
  loss: Tensor;
  /** The task's meta-gradient with respect to θ. */
  grad: P;
  /** φ*, the adapted parameters (constants: no graph). */
  adapted: P;
  /** How the CG solve went (iterations, residual, negativeCurvature; see linalg.cg). */
  cg: { iterations: number; residual: number; negativeCurvature?: boolean; stats?: { iterations: Tensor; residual: Tensor; negativeCurvature: Tensor } };
}

/** A context for the model: iMAML's inner problem has no per-step state, so every inner evaluation is step 0. */
const ctx = (training: boolean) => ({ step: 0, training });

/**
 * One gradient step of size lr on the proximal objective L(φ) + λ/2 ||φ − θ||² from φ, written as the
 * shared inner loop's plain step on L followed by the proximal term's part:
 *   φ − lr (∇L(φ) + λ(φ − θ)) = innerLoop(φ, one step of lr) − lr λ (φ − θ).
 * Differentiable in φ and θ (unroll it to get MAML through proximal steps).
 */
export function proximalStep<P>(phi: P, theta: P, x: Tensor, y: Target, o: { model: Model<P>; loss: Loss; lr: number; lam: number; training?: boolean }): P {
  const plain = innerLoop(phi, x, y, { model: o.model, loss: o.loss, steps: 1, lr: o.lr, training: o.training });
  return axpy(-o.lr * o.lam, sub(phi, theta), plain);
}

/**
 * Implicit MAML. `step(tasks)` averages the tasks' implicit meta-gradients and takes one meta-optimiser
 * step; the returned loss is the mean query loss at φ*.
 *
 * variant 'paper' (Rajeswaran et al. 2019, Algorithms 1 and 2):
 *   inner ('gd'):            φ₀ = θ,  φ_{k+1} = φ_k − α (∇L_s(φ_k) + λ(φ_k − θ)),  k < innerSteps
 *   inner ('hessian-free'):  φ_{k+1} = φ_k + d_k,  (H(φ_k) + λI) d_k = −(∇L_s(φ_k) + λ(φ_k − θ))
 *                            by cgSteps CG iterations (a gradient step −α∇ if CG meets negative
 *                            curvature at once: truncated Newton, Nocedal & Wright Alg. 7.1)
 *   meta-gradient:           g = A^{-1} ∇L_q(φ*),  A v = (1 + d) v + H v / λ,  by cgSteps CG
 *                            iterations from 0 (stopping early at ||r|| <= 1e-10 ||b||);
 *                            d = cgDamping (default 0: exactly (I + H/λ)^{-1})
 *
 * variant 'reference' (aravindr93/imaml_dev: omniglot_implicit_maml.py, learner_model.py, utils.py):
 *   inner ('gd'):            innerSteps SGD steps on L_s alone, φ_{k+1} = φ_k − α ∇L_s(φ_k), then one
 *                            SGD step on the regulariser λ/2||φ − θ||² ("pull back for regularization"):
 *                            φ* = φ_K − α λ (φ_K − θ)
 *   inner ('hessian-free'):  as 'paper' (the reference code supports only the gradient solver)
 *   meta-gradient:           g = A^{-1} ∇L_q(φ*),  A v = (1 + d) v + H v / (λ + λ_d)  (matrix_evaluator),
 *                            d = cgDamping (default 1.0, --cg_damping), λ_d = lamDamping (default 10);
 *                            CG from 0 for cgSteps iterations, stopping once r·r < 1e-10 (cg_solve);
 *                            cgSteps <= 1 gives g = ∇L_q(φ*) itself, as the script does.
 *
 * The inner loop is never differentiated: θ enters it as a constant, each inner step runs in a scope
 * of its own and keeps no graph, so memory is flat in innerSteps. H is the support loss's Hessian at
 * φ*, its gradient graph recorded once and reused by every CG product.
 * @example
 * const learner = new IMAML({ model: (p, x) => nn.sineMLP(p, x), loss: regressionLoss, params, lam: 2, innerSteps: 16 });
 * await learner.step(tasks);
 */
export class IMAML<P> extends LearnerBase<{ params: P }> {
  readonly o: Required<Omit<IMAMLOptions<P>, 'params' | 'metaOptimizer' | 'pcgrad'>>;
  private readonly pcgrad?: PCGradOptions;
  private pcgradStats: Record<string, number> | null = null;

  constructor(opts: IMAMLOptions<P>) {
    const variant = opts.variant ?? 'paper';
    const innerSteps = opts.innerSteps ?? 16;
    const o = {
      model: opts.model, loss: opts.loss, innerLr: opts.innerLr ?? 0.01, innerSteps, testInnerSteps: opts.testInnerSteps ?? innerSteps,
      lam: opts.lam ?? 2, cgSteps: opts.cgSteps ?? 5, cgDamping: opts.cgDamping ?? (variant === 'reference' ? 1 : 0),
      lamDamping: opts.lamDamping ?? 10, innerSolver: opts.innerSolver ?? 'gd', variant,
    };
    checkOptions(o);
    super('IMAML', { params: opts.params }, opts.metaOptimizer ?? adam({ lr: 1e-3 }));
    this.o = o;
    if (opts.pcgrad && (!Number.isInteger(opts.pcgrad.groups) || opts.pcgrad.groups < 1)) throw new RangeError(`IMAML: pcgrad.groups must be a whole number >= 1, got ${show(opts.pcgrad.groups)}`);
    this.pcgrad = opts.pcgrad;
  }

  /** The meta-parameters θ (the initialisation). */
  get params(): P { return this.learned.params; }

  /**
   * φ*(params): the inner solve on (x, y) from `params`, `steps` steps (default innerSteps) of the
   * inner solver. The result is a constant (no graph); every inner step's temporaries are freed as
   * it ends.
   */
  adapt(params: P, x: Tensor, y: Target, o: { steps?: number; training?: boolean } = {}): P {
    const steps = o.steps ?? this.o.innerSteps, training = o.training ?? true;
    const { model, loss, innerLr: lr, lam } = this.o;
    const theta = treeMap(stopGradient, params);   // θ as a constant: nothing below is differentiated
    const reference = this.o.variant === 'reference' && this.o.innerSolver === 'gd';
    const oneStep = (fast: P): P => {
      if (this.o.innerSolver === 'hessian-free') return this.newtonStep(fast, theta, x, y, training);
      if (reference) return innerLoop(fast, x, y, { model, loss, steps: 1, lr, training });
      return proximalStep(fast, theta, x, y, { model, loss, lr, lam, training });
    };
    let fast = theta;
    const advance = (step: (p: P) => P) => {
      const next = tidy(() => treeMap(stopGradient, step(fast)));
      if (fast !== theta) for (const t of treeLeaves(fast)) t.dispose();
      fast = next;
    };
    for (let s = 0; s < steps; s++) advance(oneStep);
    // The reference code's pull-back: one SGD step on λ/2 ||φ − θ||² alone.
    if (reference) advance((p) => axpy(-lr * lam, sub(p, theta), p));
    if (fast !== theta) for (const t of treeLeaves(theta)) t.dispose();
    return fast;
  }

  /** One Newton-CG step on L_s(φ) + λ/2 ||φ − θ||². */
  private newtonStep(phi: P, theta: P, x: Tensor, y: Target, training: boolean): P {
    const { model, loss, lam, cgSteps, innerLr } = this.o;
    const f = (p: P) => loss(model(p, x, ctx(training)), y);
    const [, gs] = valueAndGrad(f)(phi);
    const g = axpy(lam, sub(phi, theta), gs);
    const H = hvpOperator(f, phi);
    const res = cg((v: P) => axpy(lam, v, H(v)), scale(-1, g), { maxIter: cgSteps, tol: 1e-10 });
    // Negative curvature on the first CG direction leaves x = 0: take a gradient step instead.
    const fallback: number | Tensor = res.stats
      ? ops.mul(res.stats.negativeCurvature, ops.equal(res.stats.iterations, 0))
      : res.negativeCurvature && res.iterations === 0 ? 1 : 0;
    const d = fallback === 0 ? res.x : axpy(typeof fallback === 'number' ? -innerLr : ops.mul(fallback, -innerLr), g, res.x);
    return axpy(1, d, phi);
  }

  /**
   * One task's implicit meta-gradient at `params` (θ): φ* by the inner solver, then
   * g = A^{-1} ∇L_query(φ*) by CG (A as the variant defines it), with L_query(φ*) and φ*.
   */
  metaGradient(params: P, task: Task, o: { steps?: number } = {}): ImplicitGradient<P> {
    const steps = o.steps ?? this.o.innerSteps;
    const { model, loss, lam, cgSteps, cgDamping, lamDamping, variant } = this.o;
    return tidy(() => {
      const adapted = this.adapt(params, task.xs, task.ys, { steps });
      const [value, gq] = valueAndGrad((p: P) => loss(model(p, task.xq, { step: steps, training: true }), task.yq))(adapted);
      if (variant === 'reference' && cgSteps <= 1) return { loss: value, grad: gq, adapted, cg: { iterations: 0, residual: NaN } };
      const H = hvpOperator((p: P) => loss(model(p, task.xs, ctx(true)), task.ys), adapted);
      const lamEff = variant === 'reference' ? lam + lamDamping : lam;
      const res = cg((v: P) => axpy(1 / lamEff, H(v), scale(1 + cgDamping, v)), gq,
        variant === 'reference' ? { maxIter: cgSteps, atol: 1e-5 } : { maxIter: cgSteps, tol: 1e-10 });
      const { x, ...info } = res;
      return { loss: value, grad: x, adapted, cg: info };
    });
  }

  /**
   * One meta-update on a batch of tasks; returns the mean query loss at the adapted parameters.
   * Task by task, so one task's inner solve and CG are alive at a time.
   */
  async step(tasks: readonly Task[]): Promise<number> {
    if (tasks.length === 0) throw new Error('IMAML.step: no tasks');
    let cosines: Tensor | null = null;
    const loss = await this.optimizerStep({
      lossAndGrads: (learned) => {
        const r = metaBatchGradient(tasks, (t) => tidy(() => { const g = this.metaGradient(learned.params, t); return [g.loss, g.grad] as [Tensor, P]; }), this.pcgrad);
        cosines = r.cosines;
        return [r.loss, { params: r.grad }];
      },
    });
    if (cosines) this.pcgradStats = await conflictStats(cosines);
    return loss;
  }

  /** Meta-PCGrad's statistics of the last step (see MAML.metrics). */
  metrics(): Record<string, number> { return this.pcgradStats ?? {}; }

  protected override extraInfo() { return this.pcgrad ? { rng: this.pcgrad.rng.state() } : {}; }
  protected override loadExtraInfo(info: Record<string, unknown>) {
    if (!this.pcgrad) return;
    if (!info.rng) throw new Error('IMAML.load: the state has no random-stream position for PCGrad');
    this.pcgrad.rng.setState(info.rng as any);
  }

  /** Adapts to each task by the inner solver with `steps` steps (default testInnerSteps) and scores its query set. */
  evaluate(tasks: Iterable<Task>, o: EvaluateOptions = {}) {
    const steps = o.steps ?? this.o.testInnerSteps;
    return evaluateTasks(tasks, (t) => this.adapt(this.learned.params, t.xs, t.ys, { steps, training: false }), this.o.model, this.o.loss, steps);
  }
}

function checkOptions(o: Required<Omit<IMAMLOptions<any>, 'params' | 'metaOptimizer' | 'pcgrad'>>): void {
  const bad = (what: string, v: unknown) => { throw new RangeError(`IMAML: ${what}, got ${show(v)}`); };
  if (typeof o.model !== 'function') throw new TypeError(`IMAML: model must be a function, got ${show(o.model)}`);
  if (typeof o.loss !== 'function') throw new TypeError(`IMAML: loss must be a function, got ${show(o.loss)}`);
  for (const k of ['innerSteps', 'testInnerSteps'] as const) if (!Number.isSafeInteger(o[k]) || o[k] < 0) bad(`${k} must be a whole number >= 0`, o[k]);
  if (!Number.isSafeInteger(o.cgSteps) || o.cgSteps < 1) bad('cgSteps must be a whole number >= 1', o.cgSteps);
  if (!(o.lam > 0) || !Number.isFinite(o.lam)) bad('lam must be a finite number > 0', o.lam);
  if (!(o.innerLr > 0) || !Number.isFinite(o.innerLr)) bad('innerLr must be a finite number > 0', o.innerLr);
  if (!(o.cgDamping >= 0) || !Number.isFinite(o.cgDamping)) bad('cgDamping must be a finite number >= 0', o.cgDamping);
  if (!(o.lamDamping >= 0) || !Number.isFinite(o.lamDamping)) bad('lamDamping must be a finite number >= 0', o.lamDamping);
  if (o.innerSolver !== 'gd' && o.innerSolver !== 'hessian-free') throw new TypeError(`IMAML: innerSolver must be 'gd' or 'hessian-free', got ${show(o.innerSolver)}`);
  if (o.variant !== 'paper' && o.variant !== 'reference') throw new TypeError(`IMAML: variant must be 'paper' or 'reference', got ${show(o.variant)}`);
}
