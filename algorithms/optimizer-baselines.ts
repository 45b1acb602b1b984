// The hand-designed optimisers a learned one is compared with (Andrychowicz et al. 2016, section 3):
// SGD, Nesterov's accelerated gradient, RMSprop and Adam, each with its learning rate chosen on a
// log grid on training optimizees and its other settings at common defaults, as the paper did.

import * as optim from '../engine/optim.js';
import type { Optimizer } from '../engine/optim.js';
import { type Optimizee, runOptimizer } from './l2l.js';

/** Each baseline as a function of its learning rate (NAG: momentum 0.9; RMSprop decay 0.99; Adam 0.9 / 0.999). */
export const BASELINES: Record<string, (lr: number) => Optimizer> = {
  sgd: (lr) => optim.sgd({ lr }),
  nag: (lr) => optim.sgd({ lr, momentum: 0.9, nesterov: true }),
  rmsprop: (lr) => optim.rmsprop({ lr }),
  adam: (lr) => optim.adam({ lr }),
};

/** Learning rates tried: 1e-4 to 10 in half-decades (x ~3.16). */
export const LR_GRID = Array.from({ length: 11 }, (_, k) => +(10 ** (-4 + k / 2)).toPrecision(3));

/**
 * The learning rate of `make` with the lowest mean loss over `steps` steps (all of f(θ_0..θ_steps),
 * averaged over `problems`, the area under the curve); a diverging rate (NaN or Inf) scores Infinity.
 * Each problem is disposed after use.
 */
export async function tuneLearningRate(make: (lr: number) => Optimizer, problems: () => Optimizee[], steps: number,
  grid: readonly number[] = LR_GRID): Promise<{ lr: number; score: number; scores: Record<string, number> }> {
  let best = { lr: grid[0], score: Infinity };
  const scores: Record<string, number> = {};
  for (const lr of grid) {
    let sum = 0, n = 0;
    for (const p of problems()) {
      try {
        const fs = await runOptimizer(make(lr), p, steps);
        sum += fs.reduce((a, b) => a + b, 0) / fs.length;
        n++;
      } finally {
        p.dispose?.();
      }
    }
    const score = Number.isFinite(sum) ? sum / n : Infinity;
    scores[String(lr)] = score;
    if (score < best.score) best = { lr, score };
  }
  return { ...best, scores };
}
