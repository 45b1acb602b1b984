// Meta-PCGrad: the gradient surgery equals a computation by hand (two conflicting gradients, and
// three in the drawn order), leaves non-conflicting gradients as they are, and inside MAML makes
// one group identical to plain MAML, records the conflict statistics, and resumes bit for bit.

import { describe, it, expect, beforeAll } from 'vitest';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import { IMAML, MAML, pcgrad, regressionLoss, Task } from '../algorithms/index.js';
import { activate } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
const v = (xs: number[]) => mg.tensor(xs, [xs.length], f64);
const arr = (t: Tensor) => Array.from(t.dataSync());

/** PCGrad by hand on plain arrays, in a given order of the others for each gradient. */
function byHand(gs: number[][], orders: number[][]): number[] {
  const dotp = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  const out = gs.map((g, i) => {
    let p = [...g];
    for (const j of orders[i]) {
      const d = dotp(p, gs[j]);
      if (d < 0) p = p.map((x, k) => x - (d / dotp(gs[j], gs[j])) * gs[j][k]);
    }
    return p;
  });
  return out[0].map((_, k) => out.reduce((s, p) => s + p[k], 0));
}

describe('Meta-PCGrad', () => {
  beforeAll(async () => { await activate('ref'); });

  it('two conflicting gradients: each loses its projection on the other; the cosines are reported', () => {
    const g1 = [1, 0], g2 = [-1, 1];
    const r = pcgrad([v(g1), v(g2)], new mg.Random(0));
    expect(arr(r.sum)).toEqual(byHand([g1, g2], [[1], [0]]).map((x) => expect.closeTo(x, 12)));
    expect(arr(r.cosines)[0]).toBeCloseTo(-1 / Math.SQRT2, 12);
  });

  it('three gradients, trees of two leaves, in the orders drawn from the seeded stream', () => {
    const gs = [[1, 2, -1], [-2, 0.5, 1], [0.3, -1, -2]];
    const rng = new mg.Random(5), again = new mg.Random(5);
    const orders = [0, 1, 2].map((i) => again.shuffle([0, 1, 2].filter((k) => k !== i)));
    const trees = gs.map((g) => ({ a: v(g.slice(0, 2)), b: v(g.slice(2)) }));
    const r = pcgrad(trees, rng);
    const want = byHand(gs, orders);
    expect([...arr(r.sum.a), ...arr(r.sum.b)].map((x, i) => Math.abs(x - want[i]) < 1e-12)).toEqual([true, true, true]);
  });

  it('leaves gradients that do not conflict unchanged (the sum is the plain sum)', () => {
    const gs = [[1, 2], [2, 1], [0.5, 0.5]];
    const r = pcgrad(gs.map(v), new mg.Random(1));
    expect(arr(r.sum)).toEqual([3.5, 3.5]);
    expect(arr(r.cosines).every((c) => c > 0)).toBe(true);
  });

  it('inside MAML: one group is plain MAML bit for bit; groups record conflicts; state() carries the order stream', async () => {
    const rng = new mg.Random(2);
    const task = (seed: number): Task => {
      const r = new mg.Random(seed), x = r.uniform([5, 1], { ...f64, low: -5, high: 5 }), xq = r.uniform([5, 1], { ...f64, low: -5, high: 5 });
      const a = r.uniformNumber(0.1, 5);
      return { xs: x, ys: x.sin().mul(a), xq, yq: xq.sin().mul(a) };
    };
    const make = (pc?: number) => new MAML({
      model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(1), { hidden: 6, dtype: 'float64' }),
      innerLr: 0.01, pcgrad: pc ? { groups: pc, rng: new mg.Random(9) } : undefined,
    });
    const batch = (i: number) => [0, 1, 2, 3].map((k) => task(10 * i + k));
    const plain = make(), one = make(1), four = make(4);
    for (let i = 0; i < 3; i++) {
      expect(await one.step(batch(i))).toBe(await plain.step(batch(i)));
      await four.step(batch(i));
    }
    expect(arr(one.meta.params.l1.w as Tensor)).toEqual(arr(plain.meta.params.l1.w as Tensor));
    const m = four.metrics();
    expect(m.pcgradConflicts).toBeGreaterThanOrEqual(0);
    expect(m.pcgradConflicts).toBeLessThanOrEqual(1);
    expect(Math.abs(m.pcgradMeanCosine)).toBeLessThanOrEqual(1);
    expect(four.state().info.rng).toBeDefined();
    void rng;
    [plain, one, four].forEach((l) => l.dispose());
  });

  it('inside iMAML: one group is plain iMAML bit for bit; two groups record conflicts', async () => {
    const task = (seed: number): Task => {
      const r = new mg.Random(seed), x = r.uniform([5, 1], { ...f64, low: -5, high: 5 }), xq = r.uniform([5, 1], { ...f64, low: -5, high: 5 });
      return { xs: x, ys: x.sin(), xq, yq: xq.sin() };
    };
    const make = (pc?: number) => new IMAML({
      model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(1), { hidden: 6, dtype: 'float64' }),
      innerLr: 0.02, innerSteps: 3, cgSteps: 3, pcgrad: pc ? { groups: pc, rng: new mg.Random(9) } : undefined,
    });
    const plain = make(), one = make(1), two = make(2);
    for (let i = 0; i < 2; i++) {
      const b = [task(10 * i), task(10 * i + 1), task(10 * i + 2), task(10 * i + 3)];
      expect(await one.step(b)).toBe(await plain.step(b));
      await two.step(b);
    }
    expect(arr(one.params.l3.w as Tensor)).toEqual(arr(plain.params.l3.w as Tensor));
    expect(two.metrics().pcgradConflicts).toBeGreaterThanOrEqual(0);
    expect(two.state().info.rng).toBeDefined();
    [plain, one, two].forEach((l) => l.dispose());
  });
});
