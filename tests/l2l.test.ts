// The learned optimiser (Andrychowicz et al. 2016), in float64 on the reference backend: the
// gradient preprocessing on both sides of its threshold; the coordinatewise LSTM on a tensor equals
// the LSTM on each coordinate alone, and permuting coordinates permutes the updates; with second
// derivatives the meta-gradient of an unroll agrees with central differences; without them it
// equals the gradient of the same trajectory with every optimizee gradient replaced by a recorded
// constant; truncated back-propagation carries θ and the LSTM state into the next unroll as
// constants; grouped optimisers route parameters by path; training lowers the loss on quadratics.

import { describe, it, expect, beforeAll } from 'vitest';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import { coordinatewiseLSTM, grouped, preprocessGradient } from '../engine/learned-optim.js';
import { LearnedOptimizerTrainer, runOptimizer } from '../algorithms/l2l.js';
import type { Optimizee } from '../algorithms/l2l.js';
import { quadratic } from '../algorithms/optimizees.js';
import { activate } from './support/backends.js';
import { fdMismatch } from './support/finite-differences.js';

const f64 = { dtype: 'float64' as const };
const values = (t: Tensor) => Array.from(t.dataSync());
const close = (a: number[], b: number[], tol = 1e-12) => a.every((x, i) => Math.abs(x - b[i]) <= tol * (1 + Math.abs(b[i])));

/** A fixed 3-d quadratic f(θ) = ||Wθ - y||² (one function, float64). */
const quad3 = (seed: number): Optimizee<Tensor> => {
  const r = new mg.Random(seed);
  const w = mg.keep(r.normal([3, 3], f64)), y = mg.keep(r.normal([3], f64));
  return {
    init: () => mg.tensor([0.3, -0.2, 0.1], [3], f64),
    loss: (th) => { const d = mg.sub(mg.matmul(w, mg.reshape(th, [3, 1])).reshape([3]), y); return mg.sum(mg.mul(d, d)); },
    dispose: () => { w.dispose(); y.dispose(); },
  };
};

describe('learned optimiser (coordinatewise LSTM)', () => {
  beforeAll(async () => { await activate('ref'); });

  it('preprocesses gradients to (log|g|/p, sign g) above e^-p and (-1, e^p g) below, continuously', () => {
    const p = 10, e = Math.exp(-p);
    const g = mg.tensor([0.5, -2, 1e-6, -1e-6, 0, e, -e * (1 + 1e-9)], [7], f64);
    const out = preprocessGradient(g, p).arraySync() as number[][];
    const want = [[Math.log(0.5) / p, 1], [Math.log(2) / p, -1], [-1, Math.exp(p) * 1e-6], [-1, -Math.exp(p) * 1e-6], [-1, 0], [-1, 1], [-1, -1]];
    out.forEach((row, i) => row.forEach((v, j) => expect(v, `row ${i}`).toBeCloseTo(want[i][j], 7)));
    // The code's k = 5 too.
    expect(preprocessGradient(mg.tensor([0.01], [1], f64), 5).arraySync()).toEqual([[Math.max(Math.log(0.01) / 5, -1), 1]]);
  });

  it('is coordinatewise: a tensor\'s update is the LSTM on each coordinate alone, and permuting coordinates permutes the updates', () => {
    const lstm = coordinatewiseLSTM({ layers: [5, 4] });
    const phi = lstm.init(new mg.Random(1), f64);
    const opt = lstm.optimizer(phi);
    const theta = { a: mg.tensor([[0.1, -0.3], [2, 0.001]], [2, 2], f64), b: mg.tensor([-1e-7, 0.4], [2], f64) };
    const grads = { a: mg.tensor([[0.5, -0.02], [3, -1e-6]], [2, 2], f64), b: mg.tensor([1e-3, -0.7], [2], f64) };
    // Two steps, so the hidden states matter.
    let s = opt.init(theta);
    let r = opt.update(theta, grads, s);
    r = opt.update(r.params, grads, r.state);
    const gAll = [...values(grads.a), ...values(grads.b)], thAll = [...values(theta.a), ...values(theta.b)];
    const got = [...values(r.params.a), ...values(r.params.b)];
    gAll.forEach((g, i) => {
      const zeros = [0, 0, 0, 0].map((_, k) => mg.zeros([1, [5, 5, 4, 4][k]], f64));
      const one = lstm.stepCoordinates(phi, mg.tensor([g], [1], f64), zeros);
      const two = lstm.stepCoordinates(phi, mg.tensor([g], [1], f64), one.states);
      expect(got[i]).toBeCloseTo(thAll[i] + values(one.delta)[0] + values(two.delta)[0], 12);
    });
    // A permutation of one tensor's coordinates permutes its updates.
    const perm = [2, 0, 3, 1];
    const ga = values(grads.a), ta = values(theta.a);
    const pg = mg.tensor(perm.map((k) => ga[k]), [2, 2], f64), pt = mg.tensor(perm.map((k) => ta[k]), [2, 2], f64);
    const rp = opt.update({ a: pt }, { a: pg }, opt.init({ a: pt }));
    const r1 = opt.update({ a: theta.a }, { a: grads.a }, opt.init({ a: theta.a }));
    expect(close(values(rp.params.a), perm.map((k) => values(r1.params.a)[k]))).toBe(true);
  });

  it('with second derivatives, the meta-gradient of a 5-step unroll agrees with central differences', () => {
    const lstm = coordinatewiseLSTM({ layers: [4, 3], scale: 0.1 });
    const phi = lstm.init(new mg.Random(2), f64);
    const problem = quad3(3);
    const t = new LearnedOptimizerTrainer({ learned: lstm, phi, steps: 5, unroll: 5, secondDerivatives: true });
    const start = t.startState(problem);
    expect(fdMismatch((ph) => t.unrollLoss(ph, problem, start, 0).loss, t.phi)).toBeLessThan(1e-6);
    t.dispose(); problem.dispose!();
  });

  it('without them, it equals the gradient with every optimizee gradient replaced by the recorded constant (and differs from the full one)', () => {
    const lstm = coordinatewiseLSTM({ layers: [4, 3], scale: 0.1 });
    const phi = lstm.init(new mg.Random(4), f64);
    const problem = quad3(5);
    const first = new LearnedOptimizerTrainer({ learned: lstm, phi, steps: 5, unroll: 5 });
    const start = first.startState(problem);
    const ours = mg.treeLeaves(mg.grad((ph: any) => first.unrollLoss(ph, problem, start, 0).loss)(first.phi)).map(values);
    // Record the gradients of the trajectory, then rebuild it with those as constants.
    const recorded: Tensor[] = [];
    {
      const opt = lstm.optimizer(first.phi);
      let th = start.theta as Tensor, s = start.state;
      for (let k = 0; k < 5; k++) {
        const g = mg.keep(mg.grad((x: Tensor) => problem.loss(x, k))(th));
        recorded.push(g);
        const r = opt.update(th, g, s);
        th = r.params; s = r.state;
      }
    }
    const rebuilt = (ph: any) => {
      const opt = lstm.optimizer(ph);
      let th = start.theta as Tensor, s = start.state;
      const terms = [problem.loss(th, 0)];
      for (let k = 0; k < 5; k++) {
        const r = opt.update(th, recorded[k], s);
        th = r.params; s = r.state;
        terms.push(problem.loss(th, k + 1));
      }
      return terms.reduce((a, b) => mg.add(a, b));
    };
    const want = mg.treeLeaves(mg.grad(rebuilt)(first.phi)).map(values);
    ours.forEach((g, i) => expect(close(g, want[i], 1e-10), `leaf ${i}`).toBe(true));
    const second = new LearnedOptimizerTrainer({ learned: lstm, phi: first.phi, steps: 5, unroll: 5, secondDerivatives: true });
    const full = mg.treeLeaves(mg.grad((ph: any) => second.unrollLoss(ph, problem, start, 0).loss)(first.phi)).map(values);
    const diff = Math.max(...full.flatMap((g, i) => g.map((v, j) => Math.abs(v - ours[i][j]))));
    expect(diff).toBeGreaterThan(1e-6);
    first.dispose(); second.dispose(); problem.dispose!();
  });

  it('truncated back-propagation: the second unroll starts from the first\'s θ and LSTM state as constants, under the updated φ', async () => {
    const lstm = coordinatewiseLSTM({ layers: [4], scale: 0.1 });
    const phi0 = lstm.init(new mg.Random(6), f64);
    const copy = (p: any) => mg.treeMap((x: Tensor) => mg.add(x, 0), p);
    const problem = quad3(7);
    const lr = 0.5;
    const trainer = new LearnedOptimizerTrainer({ learned: lstm, phi: copy(phi0), steps: 6, unroll: 3, metaOptimizer: mg.optim.sgd({ lr }) });
    const loss = await trainer.step(problem);
    expect(trainer.iteration).toBe(2);
    // By hand: unroll 1 from the start under φ0, an SGD step, unroll 2 from where unroll 1 ended
    // (recreated from its values) under φ1.
    const ref = new LearnedOptimizerTrainer({ learned: lstm, phi: copy(phi0), steps: 6, unroll: 3 });
    const start = ref.startState(problem);
    const u1 = (ph: any) => ref.unrollLoss(ph, problem, start, 0).loss;
    const g1 = mg.grad(u1)(phi0);
    const phi1 = mg.treeMap((p: Tensor, g: Tensor) => mg.sub(p, mg.mul(g, lr)), phi0, g1);
    const end = ref.unrollLoss(phi0, problem, start, 0).end;
    const constant = { theta: mg.tensor(values(end.theta as Tensor), [3], f64), state: { step: end.state.step, slots: end.state.slots.map((ss) => ss.map((x) => mg.tensor(values(x), [...x.shape], f64))) } };
    const g2 = mg.grad((ph: any) => ref.unrollLoss(ph, problem, constant, 3).loss)(phi1);
    const phi2 = mg.treeMap((p: Tensor, g: Tensor) => mg.sub(p, mg.mul(g, lr)), phi1, g2);
    mg.treeLeaves(trainer.phi).forEach((p, i) => expect(close(values(p), values(mg.treeLeaves(phi2)[i]), 1e-10), `leaf ${i}`).toBe(true));
    // The reported loss: mean f over the 2 x (3 + 1) evaluations, under φ0 then φ1.
    const l1 = u1(phi0).dataSync()[0], l2 = ref.unrollLoss(phi1, problem, constant, 3).loss.dataSync()[0];
    expect(loss).toBeCloseTo((l1 + l2) / 8, 10);
    trainer.dispose(); ref.dispose(); problem.dispose!();
  });

  it('grouped: each parameter goes to the first group whose path test accepts it', () => {
    const a = mg.optim.sgd({ lr: 0.1 }), b = mg.optim.sgd({ lr: 1 });
    const opt = grouped([[(p) => p.startsWith('conv'), a], [() => true, b]]);
    const params = { conv: { w: mg.tensor([1, 2], [2], f64) }, fc: { w: mg.tensor([3], [1], f64) } };
    const grads = { conv: { w: mg.tensor([1, 1], [2], f64) }, fc: { w: mg.tensor([1], [1], f64) } };
    const r = opt.update(params, grads, opt.init(params));
    expect(values(r.params.conv.w)).toEqual([0.9, 1.9]);
    expect(values(r.params.fc.w)).toEqual([2]);
    expect(() => grouped([[(p) => p === 'x', a]]).init(params)).toThrow("grouped optimizer: no group takes the parameter 'conv.w'");
  });
});

describe('learned optimiser training (WASM)', () => {
  it('trained on 2-d quadratics, ends held-out trajectories lower than its untrained start, and owns its memory', async () => {
    await activate('wasm');
    const lstm = coordinatewiseLSTM({ layers: [10], preprocess: null, scale: 1 });
    const trainer = new LearnedOptimizerTrainer({ learned: lstm, phi: lstm.init(new mg.Random(8)), steps: 20, unroll: 10, metaOptimizer: mg.optim.adam({ lr: 0.01 }) });
    const rng = new mg.Random(9), heldRng = () => new mg.Random(10);
    const held = () => Array.from({ length: 3 }, (_, i) => quadratic({ rng: new mg.Random(100 + i), batch: 16, dims: 2 }));
    const score = async () => { const ps = held(); const e = await trainer.evaluate(ps); ps.forEach((p) => p.dispose!()); return e; };
    const before = await score();
    const mem = mg.memory();
    for (let i = 0; i < 40; i++) {
      const p = quadratic({ rng, batch: 16, dims: 2 });
      await trainer.step(p);
      p.dispose!();
    }
    expect(mg.memory().bytes, 'a flat footprint over training').toBe(mem.bytes);
    const after = await score();
    expect(after.curve.length).toBe(21);
    expect(after.loss.mean).toBeLessThan(0.5 * before.loss.mean);
    heldRng();
    // And it drops into any loop like sgd or adam.
    const q = quadratic({ rng: new mg.Random(11), batch: 4, dims: 2 });
    const fs = await runOptimizer(lstm.optimizer(trainer.phi), q, 20);
    expect(fs[20]).toBeLessThan(fs[0]);
    q.dispose!();
    trainer.dispose();
  }, 120_000);
});
