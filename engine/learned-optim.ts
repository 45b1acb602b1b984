// A learned optimiser: the coordinatewise LSTM of Andrychowicz et al. 2016 ("Learning to learn by
// gradient descent by gradient descent"). One small LSTM, its weights shared by every coordinate of
// every parameter, reads each coordinate's (preprocessed) gradient and writes its update,
// θ_{t+1} = θ_t + scale · m(∇_t, h_t; φ); each coordinate keeps its own hidden state, so the result
// does not depend on the order of the parameters. `optimizer(φ)` is an ordinary Optimizer (init /
// update over any pytree, the LSTM states as its slots) built from differentiable ops, so a training
// loop can differentiate the optimizee's losses with respect to φ through it.

import * as nn from './nn.js';
import * as ops from './ops.js';
import type { Optimizer } from './optim.js';
import { treeLeaves, treePaths, treeUnflatten } from './pytree.js';
import type { Random } from './random.js';
import type { Tensor } from './tensor.js';
import type { DType } from '../kernels/backend.js';

/** The meta-parameters φ: the stacked LSTM layers and the linear map from the last hidden state to the update. */
export interface LSTMOptimizerParams { [k: string]: unknown; layers: nn.LSTMParams[]; out: nn.LinearParams }

export interface CoordinatewiseLSTMOptions {
  /** Hidden units of each LSTM layer (default [20, 20], the paper's two layers of 20). */
  layers?: number[];
  /**
   * Gradient preprocessing: { p } maps ∇ to (max(log|∇| / p, -1), clip(e^p ∇, -1, 1)), which is the
   * paper's (log|∇|/p, sign ∇) for |∇| >= e^-p and (-1, e^p ∇) below (Appendix A; p = 10 there, the
   * reference code's k = 5); null feeds the raw gradient (the reference code's quadratics). Default { p: 10 }.
   */
  preprocess?: { p: number } | null;
  /** Multiplies the LSTM's output (default 0.1, the paper's MNIST scale; the reference code uses 0.01 there and 1 on quadratics). */
  scale?: number;
}

/** The preprocessed gradient: g [n] -> [n, 2] (see CoordinatewiseLSTMOptions.preprocess); continuous in g. */
export function preprocessGradient(g: Tensor, p: number): Tensor {
  const floor = Math.exp(-p);
  const logPart = ops.div(ops.log(ops.maximum(ops.abs(g), floor)), p);
  const signPart = ops.minimum(ops.maximum(ops.mul(g, Math.exp(p)), -1), 1);
  return ops.stack([logPart, signPart], 1);
}

/**
 * The coordinatewise LSTM optimiser: `init(rng)` draws φ, `optimizer(φ)` is an Optimizer whose
 * update runs the LSTM on every coordinate at once. Separate LSTMs for groups of parameters (the
 * paper's convolutional and fully connected split) are `grouped([[match, φ], ...])` below.
 */
export function coordinatewiseLSTM(o: CoordinatewiseLSTMOptions = {}) {
  const sizes = o.layers ?? [20, 20];
  const pre = o.preprocess === undefined ? { p: 10 } : o.preprocess;
  const scale = o.scale ?? 0.1;
  if (!sizes.length || sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new RangeError(`coordinatewiseLSTM: layers must be whole numbers >= 1, got [${sizes}]`);
  if (pre && !(pre.p > 0)) throw new RangeError(`coordinatewiseLSTM: preprocess.p must be > 0, got ${pre.p}`);
  const inputs = pre ? 2 : 1;

  /** One step on n coordinates: gradients g [n] and states [h, c] per layer -> (update [n], new states). */
  function stepCoordinates(phi: LSTMOptimizerParams, g: Tensor, states: Tensor[]): { delta: Tensor; states: Tensor[] } {
    let x = pre ? preprocessGradient(g, pre.p) : ops.reshape(g, [-1, 1]);
    const next: Tensor[] = [];
    phi.layers.forEach((layer, l) => {
      const s = nn.lstmCell(layer, x, { h: states[2 * l], c: states[2 * l + 1] });
      next.push(s.h, s.c);
      x = s.h;
    });
    return { delta: ops.mul(ops.reshape(nn.linear(phi.out, x), [-1]), scale), states: next };
  }

  return {
    options: { layers: sizes, preprocess: pre, scale },
    /** φ: LSTM layers with the library's initialisation (forget bias 1), and a zero-initialised output. */
    init(rng: Random, opts: { dtype?: DType } = {}): LSTMOptimizerParams {
      const layers = sizes.map((n, l) => nn.initLSTM(rng, l === 0 ? inputs : sizes[l - 1], n, opts));
      const out = nn.initLinear(rng, sizes[sizes.length - 1], 1, opts);
      return { layers, out };
    },
    /** The LSTM's step for a batch of coordinates (exposed for tests and for per-coordinate checks). */
    stepCoordinates,
    /** An Optimizer that applies φ: slots are each parameter's LSTM states, h and c per layer, [size, hidden]. */
    optimizer(phi: LSTMOptimizerParams): Optimizer {
      const names = sizes.flatMap((_, l) => [`h${l}`, `c${l}`]);
      return {
        slotNames: names,
        init: (params) => ({
          step: 0,
          slots: treeLeaves(params).map((p) => sizes.flatMap((n) => [0, 0].map(() => ops.zeros([p.size, n], { dtype: p.dtype })))),
        }),
        update(params, grads, state) {
          const ps = treeLeaves(params), gs = treeLeaves(grads);
          if (ps.length !== gs.length) throw new Error(`coordinatewiseLSTM: ${ps.length} parameters but ${gs.length} gradients`);
          const out = ps.map((p, i) => {
            const r = stepCoordinates(phi, ops.reshape(gs[i], [-1]), state.slots[i]);
            return { p: ops.add(p, ops.reshape(r.delta, p.shape)), slots: r.states };
          });
          return { params: treeUnflatten(params, out.map((x) => x.p)), state: { step: state.step + 1, slots: out.map((x) => x.slots) } };
        },
      };
    },
  };
}

export type CoordinatewiseLSTM = ReturnType<typeof coordinatewiseLSTM>;

/**
 * Separate optimisers for groups of parameters, chosen by path (e.g. `(path) => path.startsWith('conv')`):
 * each parameter goes to the first group whose `match` accepts its path. The paper's CIFAR-10 set-up
 * gives the convolutional and the fully connected layers an LSTM each.
 */
export function grouped(groups: [match: (path: string) => boolean, optimizer: Optimizer][]): Optimizer {
  const route = (params: unknown) => treePaths(params).map((path) => {
    const k = groups.findIndex(([match]) => match(path));
    if (k < 0) throw new Error(`grouped optimizer: no group takes the parameter '${path}'`);
    return k;
  });
  /** The sub-list of leaves of group k, as a plain array tree. */
  const pick = <X>(xs: X[], owners: number[], k: number) => xs.filter((_, i) => owners[i] === k);
  return {
    init(params) {
      const owners = route(params), leaves = treeLeaves(params);
      const states = groups.map(([, opt], k) => opt.init(pick(leaves, owners, k)));
      const next = groups.map(() => 0);
      return { step: 0, slots: owners.map((k) => states[k].slots[next[k]++]) };
    },
    update(params, grads, state) {
      const owners = route(params), ps = treeLeaves(params), gs = treeLeaves(grads);
      const outP: Tensor[] = new Array(ps.length), outS: Tensor[][] = new Array(ps.length);
      groups.forEach(([, opt], k) => {
        const idx = owners.map((o, i) => (o === k ? i : -1)).filter((i) => i >= 0);
        if (!idx.length) return;
        const r = opt.update(idx.map((i) => ps[i]), idx.map((i) => gs[i]), { step: state.step, slots: idx.map((i) => state.slots[i]) });
        const rp = treeLeaves(r.params);
        idx.forEach((i, j) => { outP[i] = rp[j]; outS[i] = r.state.slots[j]; });
      });
      return { params: treeUnflatten(params, outP), state: { step: state.step + 1, slots: outS } };
    },
  };
}
