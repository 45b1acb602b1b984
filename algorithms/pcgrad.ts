// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") over the meta-gradients of
// groups of tasks (Meta-PCGrad): each group's gradient, taking the other groups one at a time in a
// random order, loses its projection on any it conflicts with (negative inner product); the update
// is the sum. Written with tensor ops and no branch on values (the projection coefficient is
// min(g_i . g_j, 0) / |g_j|^2), so it runs on every backend and is differentiable.

import * as ops from '../engine/ops.js';
import { axpy, dot } from '../engine/linalg.js';
import { treeLeaves, treeMap } from '../engine/pytree.js';
import type { Random } from '../engine/random.js';
import { keep } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import type { Task } from './task.js';

export interface PCGradResult<T> {
  /** The sum of the projected gradients. */
  sum: T;
  /** Cosines between the original gradients, one per unordered pair [G (G - 1) / 2]. */
  cosines: Tensor;
}

/** Applies PCGrad to `grads` (trees of the same structure); `rng` draws each gradient's order of the others. */
export function pcgrad<T>(grads: readonly T[], rng: Random): PCGradResult<T> {
  const G = grads.length;
  if (G === 0) throw new RangeError('pcgrad: needs at least one gradient');
  const dots = grads.map((a) => grads.map((b) => dot(a, b)));
  const projected = grads.map((g, i) => {
    let p = g;
    for (const j of rng.shuffle([...Array(G).keys()].filter((k) => k !== i))) {
      // The coefficient uses the current (already projected) g_i, as in the paper's algorithm.
      const c = ops.div(ops.minimum(dot(p, grads[j]), 0), ops.maximum(dots[j][j], 1e-30));
      p = axpy(ops.neg(c), grads[j], p);
    }
    return p;
  });
  const sum = projected.reduce((a, b) => axpy(1, b, a));
  const pairs: Tensor[] = [];
  for (let i = 0; i < G; i++) {
    for (let j = i + 1; j < G; j++) pairs.push(ops.div(dots[i][j], ops.sqrt(ops.maximum(ops.mul(dots[i][i], dots[j][j]), 1e-60))));
  }
  return { sum, cosines: pairs.length ? ops.stack(pairs) : ops.zeros([0], { dtype: dots[0][0].dtype }) };
}

/** Meta-PCGrad's settings: `groups` sets of tasks (in order), orders drawn from `rng` (the learner's own). */
export interface PCGradOptions { groups: number; rng: Random }

/** The summed losses and gradients of `tasks`, one task's graph alive at a time. */
export function sumOverTasks<G>(tasks: readonly Task[], perTask: (t: Task) => [Tensor, G]): [Tensor, G] {
  let value: Tensor | null = null;
  let sum: G | null = null;
  for (const t of tasks) {
    const [v, g] = perTask(t);
    if (value === null || sum === null) { value = v; sum = g; continue; }
    const [nv, ng]: [Tensor, G] = [ops.add(value, v), treeMap(ops.add, sum, g)];
    for (const x of [value, v, ...treeLeaves(sum), ...treeLeaves(g)]) x.dispose();
    value = nv; sum = ng;
  }
  return [value!, sum!];
}

/**
 * The mean loss and meta-gradient of a meta-batch: the plain mean, or with Meta-PCGrad one gradient
 * per group (its tasks' sum over all n, so that with no conflict the update is the plain mean) and
 * PCGrad between them. `cosines` (kept: the caller reads and frees it) is null without PCGrad.
 */
export function metaBatchGradient<G>(tasks: readonly Task[], perTask: (t: Task) => [Tensor, G], pc?: PCGradOptions): { loss: Tensor; grad: G; cosines: Tensor | null } {
  const n = tasks.length;
  if (!pc || pc.groups === 1) {
    const [value, sum] = sumOverTasks(tasks, perTask);
    return { loss: ops.div(value, n), grad: treeMap((x) => ops.div(x, n), sum), cosines: null };
  }
  if (pc.groups > n) throw new RangeError(`Meta-PCGrad: ${n} tasks cannot make ${pc.groups} groups`);
  const parts = Array.from({ length: pc.groups }, (_, k) => tasks.slice(Math.floor((k * n) / pc.groups), Math.floor(((k + 1) * n) / pc.groups)));
  const sums = parts.map((part) => sumOverTasks(part, perTask));
  const r = pcgrad(sums.map(([, g]) => treeMap((x) => ops.div(x, n), g)), pc.rng);
  return { loss: ops.div(sums.map(([v]) => v).reduce((a, b) => ops.add(a, b)), n), grad: r.sum, cosines: keep(r.cosines) };
}

/** The fraction of conflicting pairs and their mean cosine, read from `cosines` (then freed). */
export async function conflictStats(cosines: Tensor): Promise<{ pcgradConflicts: number; pcgradMeanCosine: number }> {
  const c = Array.from(await cosines.data());
  cosines.dispose();
  return { pcgradConflicts: c.filter((x) => x < 0).length / c.length, pcgradMeanCosine: c.reduce((a, b) => a + b, 0) / c.length };
}
