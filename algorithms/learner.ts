// The one contract every learner implements, and the base that writes the shared parts once: the
// optimiser update with the disposal of the old parameters and slots, the learner's state as named
// tensors and numbers (for checkpoints and exact resume), and disposal.
//
//   step(batch)          one training update; the loss before it
//   evaluate(tasks, o)   mean and 95% CI over tasks drawn one at a time (bounded memory)
//   state() / load(s)    everything needed to continue training bit for bit
//   dispose()            frees every tensor the learner owns

import { valueAndGrad } from '../engine/autodiff.js';
import type { Optimizer, OptimizerState } from '../engine/optim.js';
import { treeLeaves, treePaths, treeUnflatten } from '../engine/pytree.js';
import type { RandomState } from '../engine/random.js';
import { keep, stopGradient, tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { Summary, Task } from './task.js';

export interface EvaluateOptions {
  /** Inner-loop steps at test time (gradient-based learners; the others ignore it). */
  steps?: number;
}

/** Query loss and, for classification, accuracy: mean ± 95% CI over tasks (trials: over queries pooled). */
export interface Evaluation { loss: Summary; accuracy?: Summary; trials?: Summary }

/**
 * A learner's whole state. Tensors are named by dotted paths: `params.<path>` for the model,
 * `lrs.<i>` for learned inner rates, `optimizer.<slot>.<name>` for optimiser slots, `buffers.<path>`
 * for running statistics. `info` holds the counters and random-stream states.
 */
export interface LearnerState {
  tensors: Record<string, Tensor>;
  info: { iteration: number; optimizerStep?: number; rng?: RandomState; [k: string]: unknown };
}

/** `Batch`: what one training step takes; `Item`: what evaluate scores (tasks, or held-out batches). */
export interface Learner<Batch = readonly Task[], Item = Task> {
  readonly name: string;
  /** Training steps taken so far. */
  readonly iteration: number;
  step(batch: Batch): Promise<number>;
  evaluate(items: Iterable<Item>, options?: EvaluateOptions): Promise<Evaluation>;
  state(): LearnerState;
  /** Replaces this learner's state with `state` (copied: the caller keeps its tensors). */
  load(state: LearnerState): void;
  /** Figures of the last step worth a learning curve (e.g. Meta-PCGrad's conflicts), if any. */
  metrics?(): Record<string, number>;
  dispose(): void;
}

/**
 * Tensors a model keeps beside its parameters and updates outside the optimiser (running batch-norm
 * statistics): saved and restored with the learner.
 */
export interface Buffers {
  /** A tree of the current tensors. */
  tensors(): unknown;
  /** Takes ownership of `tree` (same structure as tensors()) and frees the tensors it replaces. */
  replace(tree: unknown): void;
  dispose(): void;
}

/**
 * What every learner shares. `learned` is the tree the optimiser trains, its top-level keys naming
 * the groups in the state (`params`, `lrs`); learners without an optimiser replace it themselves
 * with `commit`.
 */
export abstract class LearnerBase<T extends Record<string, unknown>, Batch = readonly Task[], Item = Task> implements Learner<Batch, Item> {
  learned: T;
  iteration = 0;
  protected optState: OptimizerState | null;

  constructor(readonly name: string, learned: T, protected readonly optimizer: Optimizer | null, protected readonly buffers?: Buffers) {
    this.learned = keep(learned);
    this.optState = optimizer ? keep(optimizer.init(learned)) : null;
  }

  abstract step(batch: Batch): Promise<number>;
  abstract evaluate(items: Iterable<Item>, options?: EvaluateOptions): Promise<Evaluation>;

  /**
   * One optimiser step on `loss(learned)`, or on the loss and gradients that `lossAndGrads` computes
   * (accumulated task by task, clipped, ...). Returns the loss before the step.
   */
  protected async optimizerStep(loss: ((learned: T) => Tensor) | { lossAndGrads: (learned: T) => [Tensor, T] }): Promise<number> {
    const opt = this.optimizer;
    if (!opt || !this.optState) throw new Error(`${this.name}: no optimiser`);
    const value = tidy(() => {
      const [v, g] = typeof loss === 'function' ? valueAndGrad(loss)(this.learned) : loss.lossAndGrads(this.learned);
      const { params, state } = opt.update(this.learned, g, this.optState!);
      this.commit(params, state);
      return v;
    });
    return this.readLoss(value);
  }

  /** Replaces the learned tree (and the optimiser state), freeing the old ones; counts the step. */
  protected commit(next: T, optState?: OptimizerState): void {
    for (const t of treeLeaves(this.learned)) t.dispose();
    this.learned = keep(next);
    if (optState) {
      for (const t of this.optState!.slots.flat()) t.dispose();
      this.optState = keep(optState);
    }
    this.iteration++;
  }

  /** Reads a scalar loss back and frees it. */
  protected async readLoss(value: Tensor): Promise<number> {
    const v = (await value.data())[0];
    value.dispose();
    return v;
  }

  /** Numbers a subclass needs to continue exactly (random streams, ...), beyond the counters. */
  protected extraInfo(): Record<string, unknown> { return {}; }
  protected loadExtraInfo(_info: Record<string, unknown>): void {}

  state(): LearnerState {
    const tensors: Record<string, Tensor> = {};
    name(tensors, '', this.learned);
    if (this.optState) {
      const names = this.optimizer!.slotNames ?? [];
      this.optState.slots[0]?.forEach((_, k) => name(tensors, `optimizer.${names[k] ?? k}.`, treeUnflatten(this.learned, this.optState!.slots.map((s) => s[k]))));
    }
    if (this.buffers) name(tensors, 'buffers.', this.buffers.tensors());
    return { tensors, info: { iteration: this.iteration, optimizerStep: this.optState?.step, ...this.extraInfo() } };
  }

  load(s: LearnerState): void {
    if (!Number.isInteger(s.info?.iteration) || s.info.iteration < 0) throw new Error(`${this.name}.load: the state has no iteration count`);
    const learned = copyTree(this.learned, s.tensors, '', this.name);
    let optState: OptimizerState | null = null;
    if (this.optState) {
      const names = this.optimizer!.slotNames ?? [];
      const perSlot = this.optState.slots[0]?.map((_, k) => treeLeaves(copyTree(this.learned, s.tensors, `optimizer.${names[k] ?? k}.`, this.name))) ?? [];
      const step = s.info.optimizerStep;
      if (typeof step !== 'number') throw new Error(`${this.name}.load: the state has no optimiser step count`);
      optState = { step, slots: treeLeaves(this.learned).map((_, i) => perSlot.map((leaves) => leaves[i])) };
    }
    const buffers = this.buffers ? copyTree(this.buffers.tensors(), s.tensors, 'buffers.', this.name) : null;
    // Everything is copied and checked before anything is replaced: a bad state changes nothing.
    for (const t of treeLeaves(this.learned)) t.dispose();
    this.learned = keep(learned);
    if (optState) {
      for (const t of this.optState!.slots.flat()) t.dispose();
      this.optState = keep(optState);
    }
    if (buffers) this.buffers!.replace(keep(buffers));
    this.iteration = s.info.iteration;
    this.loadExtraInfo(s.info);
  }

  dispose(): void {
    for (const t of treeLeaves(this.learned)) t.dispose();
    this.optState?.slots.flat().forEach((t) => t.dispose());
    this.buffers?.dispose();
  }
}

/** Adds the leaves of `tree` to `out` under `prefix` + their dotted paths. */
function name(out: Record<string, Tensor>, prefix: string, tree: unknown): void {
  const paths = treePaths(tree);
  treeLeaves(tree).forEach((t, i) => { out[prefix + paths[i]] = t; });
}

/** A copy of `like` with each leaf taken from `tensors[prefix + path]`, checked for presence, shape and dtype. */
function copyTree<T>(like: T, tensors: Record<string, Tensor>, prefix: string, who: string): T {
  const paths = treePaths(like);
  const leaves = treeLeaves(like).map((l, i) => {
    const key = prefix + paths[i], t = tensors[key];
    if (!t) throw new Error(`${who}.load: the state has no tensor '${key}'`);
    if (t.shape.join() !== l.shape.join() || t.dtype !== l.dtype) {
      throw new Error(`${who}.load: '${key}' is ${t.dtype} [${t.shape}], the learner has ${l.dtype} [${l.shape}]`);
    }
    return stopGradient(t);   // tensors are immutable: a new handle on the same storage is a copy
  });
  return treeUnflatten(like, leaves);
}
