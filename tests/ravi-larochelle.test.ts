// Ravi & Larochelle's LSTM meta-learner, in float64 on the reference backend: with zero gate
// weights, a saturated forget gate and the input gate's bias at logit(α) it is exactly SGD at rate
// α; it is coordinatewise and permutation-equivariant; one step equals a hand computation in plain
// numbers (the gates read h_t, c_{t-1} and their own previous values); its meta-gradient through a
// 3-update episode agrees with central differences of the query loss with the learner's losses
// and gradients held at their recorded values (the paper's cut); the meta-gradient is clipped by
// its global norm; and it leaves no tensors behind.

import { describe, it, expect, beforeAll } from 'vitest';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import { RaviLarochelle, clipByGlobalNorm, initMetaLearnerLSTM, metaLearnerState, metaLearnerStep } from '../algorithms/ravi-larochelle.js';
import type { MetaLearnerLSTMParams } from '../algorithms/ravi-larochelle.js';
import { regressionLoss, Task } from '../algorithms/task.js';
import { flatten, unflatten } from '../engine/linalg.js';
import { activate } from './support/backends.js';
import { fdMismatch } from './support/finite-differences.js';

const f64 = { dtype: 'float64' as const };
const values = (t: Tensor) => Array.from(t.dataSync());
const mlp = (p: any, x: Tensor) => mg.nn.linear(p.l2, mg.nn.linear(p.l1, x).tanh());
const init = (seed: number) => { const r = new mg.Random(seed); return { l1: mg.nn.initLinear(r, 1, 3, f64), l2: mg.nn.initLinear(r, 3, 1, f64) }; };
const sineTask = (seed: number): Task => {
  const r = new mg.Random(seed), x = r.uniform([5, 1], { ...f64, low: -3, high: 3 }), xq = r.uniform([5, 1], { ...f64, low: -3, high: 3 });
  return { xs: x, ys: x.sin(), xq, yq: xq.sin() };
};
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe('Ravi & Larochelle meta-learner', () => {
  beforeAll(async () => { await activate('ref'); });

  it('with zero gate weights, a saturated forget gate and b_I = logit(α) it is SGD at rate α', () => {
    const alpha = 0.05, hidden = 4;
    const m = initMetaLearnerLSTM(new mg.Random(1), { hidden, dtype: 'float64' });
    m.wF = mg.zeros([hidden + 2, 1], f64); m.wI = mg.zeros([hidden + 2, 1], f64);
    m.bF = mg.tensor([1000], [1], f64); m.bI = mg.tensor([Math.log(alpha / (1 - alpha))], [1], f64);
    const task = sineTask(2), params = init(3);
    const learner = new RaviLarochelle({ model: mlp, loss: regressionLoss, params, metaLearner: m, updates: 3 });
    const adapted = mg.treeLeaves(learner.adapt(learner.learned, task.xs, task.ys, { training: true })).map(values);
    const sgd = mg.optim.sgd({ lr: alpha });
    let p = init(3), s = sgd.init(p);
    for (let t = 0; t < 3; t++) ({ params: p, state: s } = sgd.update(p, mg.grad((q: any) => regressionLoss(mlp(q, task.xs), task.ys))(p), s));
    mg.treeLeaves(p).map(values).forEach((want, i) => want.forEach((v, j) => expect(adapted[i][j]).toBeCloseTo(v, 14)));
    learner.dispose();
  });

  it('is coordinatewise and permutation-equivariant', () => {
    const m = initMetaLearnerLSTM(new mg.Random(4), { hidden: 3, dtype: 'float64' });
    const c = mg.tensor([0.3, -1.2, 2, 1e-5], [4], f64), g = mg.tensor([0.01, -3, 1e-7, 0.4], [4], f64), loss = mg.tensor(0.7, [], f64);
    const two = (cc: Tensor, gg: Tensor) => {
      const a = metaLearnerStep(m, cc, gg, loss, metaLearnerState(cc.size, 3, 'float64'));
      return values(metaLearnerStep(m, a.c, gg, loss, a.state).c);
    };
    const all = two(c, g);
    values(c).forEach((ci, k) => expect(two(mg.tensor([ci], [1], f64), mg.tensor([values(g)[k]], [1], f64))[0]).toBeCloseTo(all[k], 14));
    const perm = [3, 1, 0, 2];
    const permuted = two(mg.tensor(perm.map((k) => values(c)[k]), [4], f64), mg.tensor(perm.map((k) => values(g)[k]), [4], f64));
    perm.forEach((k, j) => expect(permuted[j]).toBeCloseTo(all[k], 14));
  });

  it('one step equals a hand computation: the gates read h_t, c_{t-1} and their previous values', () => {
    const hidden = 2;
    const m = initMetaLearnerLSTM(new mg.Random(5), { hidden, dtype: 'float64' });
    // Larger weights than the initialisation's, so that every term shows in the result.
    const r = new mg.Random(6);
    const big = (shape: number[]) => r.uniform(shape, { ...f64, low: -1, high: 1 });
    const mm: MetaLearnerLSTMParams = { lstm: { wx: big([4, 8]), wh: big([2, 8]), b: big([8]) }, wF: big([4, 1]), bF: big([1]), wI: big([4, 1]), bI: big([1]) };
    const cIn = 0.8, gIn = -0.3, lossIn = 1.7, p = 10;
    const s0 = { h: mg.tensor([[0.1, -0.2]], [1, 2], f64), cell: mg.tensor([[0.3, 0.05]], [1, 2], f64), f: mg.tensor([[0.4]], [1, 1], f64), i: mg.tensor([[-0.6]], [1, 1], f64) };
    const got = metaLearnerStep(mm, mg.tensor([cIn], [1], f64), mg.tensor([gIn], [1], f64), mg.tensor(lossIn, [], f64), s0, p);
    // By hand.
    const pre = (v: number) => [Math.max(Math.log(Math.abs(v)) / p, -1), Math.min(Math.max(v * Math.exp(p), -1), 1)];
    const x = [...pre(lossIn), ...pre(gIn)];
    const wx = values(mm.lstm.wx), wh = values(mm.lstm.wh), b = values(mm.lstm.b);
    const z = Array.from({ length: 8 }, (_, k) => b[k] + x.reduce((s, xi, a) => s + xi * wx[a * 8 + k], 0) + [0.1, -0.2].reduce((s, hi, a) => s + hi * wh[a * 8 + k], 0));
    const [iG, fG, gG, oG] = [0, 1, 2, 3].map((q) => z.slice(2 * q, 2 * q + 2));
    const cell = [0, 1].map((k) => sigmoid(fG[k]) * [0.3, 0.05][k] + sigmoid(iG[k]) * Math.tanh(gG[k]));
    const h = [0, 1].map((k) => sigmoid(oG[k]) * Math.tanh(cell[k]));
    const wF = values(mm.wF), wI = values(mm.wI);
    const f = h[0] * wF[0] + h[1] * wF[1] + cIn * wF[2] + 0.4 * wF[3] + values(mm.bF)[0];
    const i = h[0] * wI[0] + h[1] * wI[1] + cIn * wI[2] + -0.6 * wI[3] + values(mm.bI)[0];
    expect(values(got.c)[0]).toBeCloseTo(sigmoid(f) * cIn - sigmoid(i) * gIn, 13);
    expect(values(got.state.f)[0]).toBeCloseTo(f, 13);
    expect(values(got.state.i)[0]).toBeCloseTo(i, 13);
    expect(values(got.state.h)).toEqual(h.map((v) => expect.closeTo(v, 13)));
  });

  it('its meta-gradient through 3 updates agrees with central differences, the learner\'s losses and gradients held at their recorded values', () => {
    const m = initMetaLearnerLSTM(new mg.Random(7), { hidden: 3, dtype: 'float64' });
    // A livelier start than the paper's, so that the gates' weights matter.
    m.bI = mg.tensor([-1], [1], f64); m.bF = mg.tensor([2], [1], f64);
    const learner = new RaviLarochelle({ model: mlp, loss: regressionLoss, params: init(8), metaLearner: m, updates: 3 });
    const task = sineTask(9);
    // Record the learner's losses and gradients along the episode at the current meta-parameters.
    const recorded: { l: Tensor; g: Tensor }[] = [];
    {
      let c = flatten(learner.params), s = metaLearnerState(c.size, 3, 'float64');
      for (let t = 0; t < 3; t++) {
        const [l, g] = mg.valueAndGrad((q: any) => regressionLoss(mlp(q, task.xs), task.ys))(unflatten(learner.params, c));
        recorded.push(mg.keep({ l, g: flatten(g) }));
        ({ c, state: s } = metaLearnerStep(learner.learned.metaLearner, c, flatten(g), l, s));
      }
    }
    const heldConstant = (learned: any) => {
      let c = flatten(learned.params), s = metaLearnerState(c.size, 3, 'float64');
      for (let t = 0; t < 3; t++) ({ c, state: s } = metaLearnerStep(learned.metaLearner, c, recorded[t].g, recorded[t].l, s));
      return regressionLoss(mlp(unflatten(learned.params, c), task.xq), task.yq);
    };
    // Our meta-gradient (the cut is inside adapt) against central differences of the held-constant loss.
    const ours = mg.treeLeaves(mg.grad((l: any) => learner.metaLoss(l, [task]))(learner.learned)).map(values);
    const want = mg.treeLeaves(mg.grad(heldConstant)(learner.learned)).map(values);
    ours.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], 12)));
    expect(fdMismatch(heldConstant, learner.learned)).toBeLessThan(1e-6);
    learner.dispose();
  });

  it('clips the meta-gradient\'s global norm (0.25 by default) and leaves no tensors behind', async () => {
    const tree = { a: mg.tensor([3, 0], [2], f64), b: mg.tensor([4], [1], f64) };
    values(clipByGlobalNorm(tree, 0.25).a).forEach((v, k) => expect(v).toBeCloseTo([0.15, 0][k], 15));
    expect(values(clipByGlobalNorm(tree, 10).b)).toEqual([4]);
    await activate('wasm');
    const m = initMetaLearnerLSTM(new mg.Random(10), { hidden: 5 });
    const r = new mg.Random(11);
    const params = { l1: mg.nn.initLinear(r, 1, 8), l2: mg.nn.initLinear(r, 8, 1) };
    const learner = new RaviLarochelle({ model: mlp, loss: regressionLoss, params, metaLearner: m, updates: 4, metaOptimizer: mg.optim.sgd({ lr: 1 }) });
    const before = mg.treeLeaves(learner.learned).map(values);
    const mem = mg.memory();
    const task = () => { const t = new mg.Random(12), x = t.uniform([5, 1], { low: -3, high: 3 }), xq = t.uniform([5, 1], { low: -3, high: 3 }); return { xs: x, ys: x.sin().mul(30), xq, yq: xq.sin().mul(30) }; };
    for (let i = 0; i < 3; i++) await mg.tidy(() => learner.step([task()]));
    expect(mg.memory().bytes).toBe(mem.bytes);
    // SGD at rate 1 moves the learned tree by the clipped gradient: at most 0.25 per step in norm.
    const after = mg.treeLeaves(learner.learned).map(values);
    const moved = Math.sqrt(after.flatMap((a, i) => a.map((v, j) => (v - before[i][j]) ** 2)).reduce((s, v) => s + v, 0));
    expect(moved).toBeGreaterThan(0.25);
    expect(moved).toBeLessThanOrEqual(3 * 0.25 + 1e-6);
    const e = await learner.evaluate([task()]);
    expect(e.loss.n).toBe(1);
    learner.dispose();
  });
});
