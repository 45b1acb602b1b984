// Pure optimisers: update(params, grads, state) -> { params, state }, built from differentiable ops,
// so an inner loop can be differentiated through them (learned optimisers, meta-learned rates).
// Nothing is updated in place; the caller disposes old params and state (or lets a scope do it).

import * as ops from './ops.js';
import { treeLeaves, treeUnflatten } from './pytree.js';
import type { Tensor } from './tensor.js';

/** A learning rate: a constant, or a schedule of the (0-based) step. */
export type Rate = number | ((step: number) => number);
const rateAt = (r: Rate, step: number) => (typeof r === 'number' ? r : r(step));

export interface OptimizerState { step: number; slots: Tensor[][] }
export interface Optimizer {
  init<P>(params: P): OptimizerState;
  update<P>(params: P, grads: P, state: OptimizerState): { params: P; state: OptimizerState };
  /** Names of the per-parameter slots (Adam: m, v), for checkpoints. */
  readonly slotNames?: readonly string[];
}

/**
 * sqrt whose derivative at 0 is 0 instead of infinite, so differentiating through Adam or RMSprop
 * where a second moment is exactly zero gives finite meta-gradients (the NaN of higher#125).
 */
export function safeSqrt(x: Tensor): Tensor {
  const pos = ops.greater(x, 0);
  return ops.where(pos, ops.sqrt(ops.where(pos, x, 1)), 0);
}

function build(slotNames: string[], step: (p: Tensor, g: Tensor, slots: Tensor[], t: number) => [Tensor, Tensor[]]): Optimizer {
  return {
    slotNames,
    init: (params) => ({ step: 0, slots: treeLeaves(params).map((p) => slotNames.map(() => ops.zerosLike(p))) }),
    update(params, grads, state) {
      const ps = treeLeaves(params), gs = treeLeaves(grads);
      if (ps.length !== gs.length) throw new Error(`optimizer: ${ps.length} parameters but ${gs.length} gradients`);
      const out = ps.map((p, i) => step(p, gs[i], state.slots[i], state.step));
      return { params: treeUnflatten(params, out.map((o) => o[0])), state: { step: state.step + 1, slots: out.map((o) => o[1]) } };
    },
  };
}

/** Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay. */
export function sgd(o: { lr: Rate; momentum?: number; nesterov?: boolean; weightDecay?: number }): Optimizer {
  const mu = o.momentum ?? 0;
  return build(mu ? ['momentum'] : [], (p, g, [v], t) => {
    const gd = o.weightDecay ? ops.add(g, ops.mul(p, o.weightDecay)) : g;
    if (!mu) return [ops.sub(p, ops.mul(gd, rateAt(o.lr, t))), []];
    const v2 = ops.add(ops.mul(v, mu), gd);
    const d = o.nesterov ? ops.add(gd, ops.mul(v2, mu)) : v2;
    return [ops.sub(p, ops.mul(d, rateAt(o.lr, t))), [v2]];
  });
}

/** Adam (Kingma & Ba 2015) with bias correction. */
export function adam(o: { lr: Rate; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }): Optimizer {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8;
  return build(['m', 'v'], (p, g, [m, v], t) => {
    const gd = o.weightDecay ? ops.add(g, ops.mul(p, o.weightDecay)) : g;
    const m2 = ops.add(ops.mul(m, b1), ops.mul(gd, 1 - b1));
    const v2 = ops.add(ops.mul(v, b2), ops.mul(ops.mul(gd, gd), 1 - b2));
    const mhat = ops.div(m2, 1 - b1 ** (t + 1)), vhat = ops.div(v2, 1 - b2 ** (t + 1));
    return [ops.sub(p, ops.mul(ops.div(mhat, ops.add(safeSqrt(vhat), eps)), rateAt(o.lr, t))), [m2, v2]];
  });
}

/** RMSprop (Tieleman & Hinton 2012). */
export function rmsprop(o: { lr: Rate; decay?: number; eps?: number }): Optimizer {
  const rho = o.decay ?? 0.99, eps = o.eps ?? 1e-8;
  return build(['square'], (p, g, [s], t) => {
    const s2 = ops.add(ops.mul(s, rho), ops.mul(ops.mul(g, g), 1 - rho));
    return [ops.sub(p, ops.mul(ops.div(g, ops.add(safeSqrt(s2), eps)), rateAt(o.lr, t))), [s2]];
  });
}

// ---------- schedules ----------

export const schedules = {
  constant: (lr: number) => () => lr,
  /** lr * gamma^floor(step / every). */
  step: (lr: number, every: number, gamma = 0.5) => (t: number) => lr * gamma ** Math.floor(t / every),
  exponential: (lr: number, gamma: number) => (t: number) => lr * gamma ** t,
  /** Cosine decay from lr to min over `total` steps (Loshchilov & Hutter 2017, without restarts). */
  cosine: (lr: number, total: number, min = 0) => (t: number) => min + 0.5 * (lr - min) * (1 + Math.cos((Math.PI * Math.min(t, total)) / total)),
  /** Linear warm-up over `steps`, then the wrapped schedule. */
  warmup: (steps: number, then: (t: number) => number) => (t: number) => (t < steps ? (then(0) * (t + 1)) / steps : then(t - steps)),
};

/** Disposes every tensor of an optimizer state. */
export const disposeState = (s: OptimizerState): void => s.slots.flat().forEach((t) => t.dispose());

// ---------- learned ----------

export { coordinatewiseLSTM, grouped, preprocessGradient } from './learned-optim.js';
export type { CoordinatewiseLSTM, CoordinatewiseLSTMOptions, LSTMOptimizerParams } from './learned-optim.js';
