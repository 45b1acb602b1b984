// What every meta-learner shares: tasks (support and query sets), models as functions of a
// parameter tree, losses, and evaluation statistics with confidence intervals.

import * as ops from '../engine/ops.js';
import { tidy } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';

/** Class labels (indices) or regression targets. */
export type Target = Tensor | Int32Array;

/** One task: adapt on (xs, ys), evaluate on (xq, yq). */
export interface Task { xs: Tensor; ys: Target; xq: Tensor; yq: Target }

/** Which inner step a forward pass belongs to (MAML++ keeps per-step batch-norm statistics). */
export interface ForwardContext { step: number; training: boolean }

export type Model<P = any> = (params: P, x: Tensor, ctx: ForwardContext) => Tensor;
export type Loss = (prediction: Tensor, target: Target) => Tensor;

export const classificationLoss: Loss = (logits, y) => ops.crossEntropy(logits, y as Int32Array | Tensor);
export const regressionLoss: Loss = (pred, y) => ops.mse(pred, y as Tensor);

/** Fraction of rows whose largest logit is at the label. */
export async function accuracy(logits: Tensor, labels: Int32Array): Promise<number> {
  const pred = await ops.argMax(logits);
  let hit = 0;
  pred.forEach((p, i) => { if (p === labels[i]) hit++; });
  return hit / labels.length;
}

/** Mean with a 95% confidence interval (normal approximation: 1.96 standard errors). */
export interface Summary { mean: number; ci95: number; n: number }
export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, ci95: (1.96 * sd) / Math.sqrt(n), n };
}
export const formatSummary = (s: Summary, scale = 1, digits = 2): string =>
  `${(s.mean * scale).toFixed(digits)} ± ${(s.ci95 * scale).toFixed(digits)} (n=${s.n})`;

/**
 * Adapts to each task with `adapt` and scores the query set: mean loss and, for classification
 * (labels as Int32Array), accuracy, each with a 95% confidence interval. Tasks are drawn one at a
 * time and freed after scoring, so the memory does not grow with their number.
 */
export async function evaluateTasks<P>(tasks: Iterable<Task>, adapt: (t: Task) => P, model: Model<P>, loss: Loss, step: number)
  : Promise<{ loss: Summary; accuracy?: Summary }> {
  const losses: number[] = [], accs: number[] = [];
  await forEachTask(tasks, async (t) => {
    const out = model(adapt(t), t.xq, { step, training: false });
    losses.push((await loss(out, t.yq).data())[0]);
    if (t.yq instanceof Int32Array) accs.push(await accuracy(out, t.yq));
  });
  return { loss: summarize(losses), accuracy: accs.length ? summarize(accs) : undefined };
}

/**
 * Runs `fn` on each task, drawing the task inside the task's scope: its tensors (and everything
 * computed from it) are freed before the next is drawn, so any number of tasks fits in the memory
 * of one.
 */
export async function forEachTask(tasks: Iterable<Task>, fn: (t: Task) => Promise<void>): Promise<void> {
  const it = tasks[Symbol.iterator]();
  let turn = performance.now();
  for (;;) {
    const done = await tidy(async () => {
      const r = it.next();
      if (r.done) return true;
      await fn(r.value);
      return false;
    });
    if (done) return;
    if (performance.now() - turn > 20) { await yieldToEventLoop(); turn = performance.now(); }
  }
}

/**
 * A macrotask turn now and then between tasks, so a long evaluation lets timers, signals and a page's
 * events in (promises alone never do); at most every 20 ms, as a browser's setTimeout costs 4 ms.
 */
const yieldToEventLoop = (): Promise<void> => new Promise((r) => (globalThis.setImmediate ?? setTimeout)(r));

/** n items of `draw()`, drawn lazily (a stream of test tasks). */
export function* take<T>(draw: () => T, n: number): Iterable<T> {
  for (let i = 0; i < n; i++) yield draw();
}

/** The items of `it` through f, lazily. */
export function* mapIterable<A, B>(it: Iterable<A>, f: (a: A) => B): Iterable<B> {
  for (const a of it) yield f(a);
}
