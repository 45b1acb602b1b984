// The finite-difference check the learner tests share: the analytic gradient of a scalar function of
// a parameter tree against float64 central differences.

import * as mg from '../../index.js';
import type { Tensor } from '../../index.js';

/**
 * Max relative difference between the analytic gradient of f at tree p and central differences,
 * over at most `perLeaf` entries of each leaf (spread over the leaf). p's leaves must be float64.
 */
export function fdMismatch(f: (p: any) => Tensor, p: any, o: { perLeaf?: number; h?: number } = {}): number {
  const perLeaf = o.perLeaf ?? Infinity, h = o.h ?? 1e-6;
  const leaves = mg.treeLeaves(p);
  const analytic = mg.tidy(() => mg.treeLeaves(mg.grad(f)(p)).map((g) => Float64Array.from(g.dataSync())));
  let worst = 0;
  leaves.forEach((leaf, li) => {
    const base = Float64Array.from(leaf.dataSync());
    const stride = Math.max(1, Math.floor(base.length / perLeaf));
    for (let j = 0; j < base.length; j += stride) {
      const at = (d: number) => mg.tidy(() => {
        const v = Float64Array.from(base); v[j] += d;
        const moved = leaves.map((l, k) => (k === li ? mg.tensor(v, [...l.shape], { dtype: 'float64' }) : l));
        return f(mg.treeUnflatten(p, moved)).dataSync()[0];
      });
      const fd = (at(h) - at(-h)) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - analytic[li][j]) / (1 + Math.abs(fd)));
    }
  });
  return worst;
}
