// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") over the meta-gradients of
// groups of tasks (Meta-PCGrad): each group's gradient, taking the other groups one at a time in a
// random order, loses its projection on any it conflicts with (negative inner product); the update
// is the sum. Written with tensor ops and no branch on values (the projection coefficient is
// min(g_i . g_j, 0) / |g_j|^2), so it runs on every backend and is differentiable.

import * as ops from '../engine/ops.js';
import { axpy, dot } from '../engine/linalg.js';
import type { Random } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';

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
