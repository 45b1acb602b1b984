// Hessian regularisation of MAML (coef x ||H||_F² of each task's support loss at its adapted
// weights): the exact norm equals ||A||_F² on a quadratic, Hutchinson's estimate averages to the
// exact norm, and the regularised meta-loss's gradient (third order) agrees with float64 central
// differences for a fixed set of probes.

import { describe, it, expect, beforeAll } from 'vitest';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import { MAML, regressionLoss, Task } from '../algorithms/index.js';
import { activate } from './support/backends.js';
import { fdMismatch } from './support/finite-differences.js';

const f64 = { dtype: 'float64' as const };
const mlp = (p: any, x: Tensor) => mg.nn.linear(p.l2, mg.nn.linear(p.l1, x).tanh());
const init = (seed: number) => { const r = new mg.Random(seed); return { l1: mg.nn.initLinear(r, 1, 5, f64), l2: mg.nn.initLinear(r, 5, 1, f64) }; };
const sineTask = (seed: number): Task => {
  const r = new mg.Random(seed), x = r.uniform([6, 1], { ...f64, low: -3, high: 3 }), xq = r.uniform([6, 1], { ...f64, low: -3, high: 3 });
  return { xs: x, ys: x.sin(), xq, yq: xq.sin() };
};

describe('Hessian regularisation', () => {
  beforeAll(async () => { await activate('ref'); });

  it('the exact squared Frobenius norm of a quadratic is ||A||_F²', () => {
    const A = mg.tensor([[2, 1, 0], [1, 3, -1], [0, -1, 4]], undefined, f64);
    const f = (p: Tensor) => mg.mul(mg.dot(p, mg.matmul(A, p)), 0.5);
    const fro = mg.linalg.hessianFrobenius(f, mg.tensor([0.3, -0.2, 1], undefined, f64)).dataSync()[0];
    expect(fro).toBeCloseTo(4 + 1 + 1 + 9 + 1 + 1 + 16, 10);
    expect(() => mg.linalg.hessianFrobenius(f, mg.zeros([2001], f64))).toThrow(/hessianFrobenius: 2001 parameters, more than the 2000/);
  });

  it("Hutchinson's estimate at the adapted weights averages to the exact norm", () => {
    const p = init(1), t = sineTask(2);
    const support = (q: any) => regressionLoss(mlp(q, t.xs), t.ys);
    const exact = mg.linalg.hessianFrobenius(support, p).dataSync()[0];
    const est = mg.linalg.hutchinsonFrobenius((v: any) => mg.hvp(support, p, v), p, { probes: 3000, rng: new mg.Random(3) }).dataSync()[0];
    expect(Math.abs(est - exact) / exact).toBeLessThan(0.03);
  });

  it('the regularised meta-loss has the gradient central differences give (third order, fixed probes)', async () => {
    const rng = new mg.Random(4);
    const maml = new MAML({ model: mlp, loss: regressionLoss, params: init(5), innerLr: 0.05, innerSteps: 2, hessianReg: { coef: 0.1, probes: 2, rng } });
    const tasks = [sineTask(6), sineTask(7)];
    const start = rng.state();
    const loss = (m: any) => { rng.setState(start); return maml.metaLoss(m, tasks); };
    const plain = new MAML({ model: mlp, loss: regressionLoss, params: init(5), innerLr: 0.05, innerSteps: 2 });
    const regularised = loss(maml.meta).dataSync()[0], unregularised = plain.metaLoss(plain.meta, tasks).dataSync()[0];
    expect(regularised).toBeGreaterThan(unregularised);
    expect(fdMismatch(loss, maml.meta)).toBeLessThan(1e-5);
    // A step reports the tasks' mean estimate of ||H||_F², the penalty before its coefficient.
    rng.setState(start);
    await maml.step(tasks);
    expect(maml.metrics().hessianFrobenius).toBeCloseTo((regularised - unregularised) / 0.1, 8);
    maml.dispose(); plain.dispose();
  });
});
