// Elastic weight consolidation (Kirkpatrick et al. 2017): after each task, the diagonal of the
// Fisher information F at the task's solution θ* says how much each parameter mattered to it, and
// training on the next tasks adds λ/2 Σ_i F_i (θ_i − θ*_i)² for every earlier task, so that the
// important weights stay close. The Fisher diagonal is computed one of three ways, each named:
// 'exact' (the expectation over the model's own predictive distribution), 'sampled' (one label drawn
// from it per example) or 'empirical' (the true labels; a different quantity, often used).
//
// The penalties of all earlier tasks are kept as three sums per parameter, A = Σ_t F_t,
// B = Σ_t F_t θ*_t and C = Σ_t F_t θ*_t², since Σ_t F_t (θ − θ*_t)² = A θ² − 2 B θ + C: the state
// has the same shape however many tasks were consolidated, and the penalty's gradient λ (A θ − B) is
// exact. The online variant (Schwarz et al. 2018) instead decays the old Fisher, F ← γ F + F_new,
// and anchors at the latest solution only.

import { grad } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { Optimizer, sgd } from '../engine/optim.js';
import { treeLeaves, treeMap } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { keep, noGrad, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { Buffers, Evaluation, LearnerBase } from './learner.js';
import { accuracy, summarize } from './task.js';

export type FisherKind = 'exact' | 'sampled' | 'empirical';

/** Class scores [n, classes] of the model for inputs x (training: dropout and the like on). */
export type Classifier<P> = (params: P, x: Tensor, ctx: { training: boolean }) => Tensor;

/** A labelled batch: inputs [n, ...] and their classes. */
export interface ClassBatch { x: Tensor; labels: Int32Array }

/**
 * The diagonal of the Fisher information of `model` at `params` over the examples x, averaged
 * over them: the mean of (∇ log p(y | x))² with y from the model's distribution ('exact': all
 * classes weighted by their probabilities; 'sampled': one draw from `rng` per example) or the true
 * labels ('empirical'). One backward pass per example (and class, for 'exact').
 */
export function fisherDiagonal<P>(model: Classifier<P>, params: P, data: ClassBatch, o: { kind: FisherKind; rng?: Random }): P {
  if (o.kind === 'sampled' && !o.rng) throw new Error("fisherDiagonal: kind 'sampled' needs rng");
  const n = data.x.shape[0];
  if (data.labels.length !== n) throw new RangeError(`fisherDiagonal: ${n} examples but ${data.labels.length} labels`);
  let sum = treeMap((p: Tensor) => ops.zerosLike(p), params);
  for (let i = 0; i < n; i++) {
    const next = tidy(() => {
      const xi = ops.slice(data.x, [i, ...data.x.shape.slice(1).map(() => 0)], [1, ...data.x.shape.slice(1)]);
      const logp = (q: P) => ops.logSoftmax(model(q, xi, { training: false }), 1);
      const gradOf = (k: number) => grad((q: P) => ops.reshape(ops.slice(logp(q), [0, k], [1, 1]), []))(params);
      let acc = sum;
      const add = (g: P, w: number) => { acc = treeMap((a: Tensor, gi: Tensor) => ops.add(a, ops.mul(ops.mul(gi, gi), w)), acc, g); };
      if (o.kind === 'empirical') add(gradOf(data.labels[i]), 1);
      else {
        const probs = Array.from(ops.exp(noGrad(() => logp(params))).dataSync());
        if (o.kind === 'sampled') {
          let u = o.rng!.next(), k = 0;
          while (k < probs.length - 1 && u >= probs[k]) { u -= probs[k]; k++; }
          add(gradOf(k), 1);
        } else {
          probs.forEach((pk, k) => { if (pk > 0) add(gradOf(k), pk); });
        }
      }
      return acc;
    });
    treeLeaves(sum).forEach((t) => t.dispose());
    sum = next;
  }
  const mean = treeMap((s: Tensor) => ops.div(s, n), sum);
  treeLeaves(sum).forEach((t) => t.dispose());
  return mean;
}

export interface EWCOptions<P> {
  model: Classifier<P>;
  params: P;
  /** Strength λ of the penalty (0: plain training). */
  lambda: number;
  /** How the Fisher diagonal is computed at each consolidation (default 'exact'). */
  fisher?: FisherKind;
  /** The L2 baseline: every parameter's importance 1 instead of its Fisher information. */
  l2?: boolean;
  /** Online EWC: decay the earlier Fisher by gamma and anchor at the latest solution only (default: one penalty per task). */
  online?: { gamma: number };
  /** Draws the 'sampled' Fisher's labels (owned: saved in state()). */
  rng?: Random;
  optimizer?: Optimizer;
}

/** The penalty's sums A, B (per parameter) and C (per parameter, summed when used); zeros before any task. */
type Anchors<P> = { fisher: P; anchor: P; constant: P };

export class EWC<P> extends LearnerBase<{ params: P }, ClassBatch, ClassBatch> {
  readonly o: EWCOptions<P>;
  /** Tasks consolidated so far. */
  tasks = 0;
  private readonly anchors: AnchorBuffers<P>;

  constructor(o: EWCOptions<P>) {
    const anchors = new AnchorBuffers(o.params);
    super('EWC', { params: o.params }, o.optimizer ?? sgd({ lr: 0.1 }), anchors);
    if (!(o.lambda >= 0)) throw new RangeError(`EWC: lambda must be >= 0, got ${o.lambda}`);
    if (o.online && !(o.online.gamma >= 0 && o.online.gamma <= 1)) throw new RangeError(`EWC: online.gamma must be in [0, 1], got ${o.online.gamma}`);
    if (o.fisher === 'sampled' && !o.rng) throw new Error("EWC: fisher 'sampled' needs rng");
    this.o = o;
    this.anchors = anchors;
  }

  get params(): P { return this.learned.params; }

  /** λ/2 Σ_t Σ_i F_t,i (θ_i − θ*_t,i)², from the kept sums. */
  penalty(params: P): Tensor {
    const a = this.anchors.tree;
    const terms = treeLeaves(params).map((p, i) => {
      const A = treeLeaves(a.fisher)[i], B = treeLeaves(a.anchor)[i], C = treeLeaves(a.constant)[i];
      return ops.sum(ops.add(ops.sub(ops.mul(A, ops.mul(p, p)), ops.mul(ops.mul(B, p), 2)), C));
    });
    return ops.mul(terms.reduce((x, y) => ops.add(x, y)), this.o.lambda / 2);
  }

  /** The training loss on a batch: mean cross-entropy plus the penalty. */
  loss(params: P, batch: ClassBatch): Tensor {
    const ce = ops.crossEntropy(this.o.model(params, batch.x, { training: true }), batch.labels);
    return this.tasks > 0 && this.o.lambda > 0 ? ops.add(ce, this.penalty(params)) : ce;
  }

  async step(batch: ClassBatch): Promise<number> {
    return this.optimizerStep((l) => this.loss(l.params, batch));
  }

  /**
   * Ends a task: the Fisher diagonal at the current parameters over `data` (a sample of the task's
   * training examples) joins the penalty, anchored at the current parameters.
   */
  consolidate(data: ClassBatch): void {
    const F = this.o.l2 ? treeMap((p: Tensor) => ops.onesLike(p), this.params)
      : fisherDiagonal(this.o.model, this.params, data, { kind: this.o.fisher ?? 'exact', rng: this.o.rng });
    const next = tidy(() => {
      const a = this.anchors.tree;
      const decay = this.o.online ? this.o.online.gamma : 1;
      const fisher = treeMap((A: Tensor, f: Tensor) => ops.add(ops.mul(A, decay), f), a.fisher, F);
      // Online: one anchor, the latest solution, weighted by the decayed Fisher sum.
      const anchor = this.o.online
        ? treeMap((f: Tensor, p: Tensor) => ops.mul(f, p), fisher, this.params)
        : treeMap((B: Tensor, f: Tensor, p: Tensor) => ops.add(B, ops.mul(f, p)), a.anchor, F, this.params);
      const constant = this.o.online
        ? treeMap((f: Tensor, p: Tensor) => ops.mul(f, ops.mul(p, p)), fisher, this.params)
        : treeMap((C: Tensor, f: Tensor, p: Tensor) => ops.add(C, ops.mul(f, ops.mul(p, p))), a.constant, F, this.params);
      return { fisher, anchor, constant };
    });
    treeLeaves(F).forEach((t) => t.dispose());
    this.anchors.replace(next);
    this.tasks++;
  }

  /** Accuracy and loss over the batches (mean ± 95% CI over batches). */
  async evaluate(batches: Iterable<ClassBatch>): Promise<Evaluation> {
    const losses: number[] = [], accs: number[] = [];
    for (const b of batches) {
      const [l, a] = await tidy(async () => {
        const logits = this.o.model(this.params, b.x, { training: false });
        return [(await ops.crossEntropy(logits, b.labels).data())[0], await accuracy(logits, b.labels)];
      });
      losses.push(l);
      accs.push(a);
    }
    return { loss: summarize(losses), accuracy: summarize(accs) };
  }

  protected override extraInfo() {
    return { tasks: this.tasks, ...(this.o.rng ? { fisherRng: this.o.rng.state() } : {}) };
  }
  protected override loadExtraInfo(info: Record<string, unknown>) {
    this.tasks = Number(info.tasks ?? 0);
    if (this.o.rng && info.fisherRng) this.o.rng.setState(info.fisherRng as any);
  }
}

/** The penalty's sums as the learner's buffers (saved in state() as buffers.fisher.*, ...). */
class AnchorBuffers<P> implements Buffers {
  tree: Anchors<P>;
  constructor(like: P) {
    const zeros = () => treeMap((p: Tensor) => ops.zerosLike(p), like);
    this.tree = keep({ fisher: zeros(), anchor: zeros(), constant: zeros() });
  }
  tensors() { return this.tree; }
  replace(tree: unknown) {
    const old = this.tree;
    this.tree = keep(tree as Anchors<P>);
    treeLeaves(old).forEach((t) => t.dispose());
  }
  dispose() { treeLeaves(this.tree).forEach((t) => t.dispose()); }
}

