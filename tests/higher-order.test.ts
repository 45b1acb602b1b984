// Derivatives beyond the per-primitive properties: third derivatives of compositions, closed forms,
// the transforms' agreement with each other, and one-step MAML meta-gradients against finite
// differences, on every backend, in float64.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { activate, backendNames } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
const vals = (t: Tensor) => Array.from(t.dataSync());

function expectClose(got: number[], want: number[], tol: number, what = '') {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    if (!(Math.abs(g - want[i]) <= tol * (1 + Math.abs(want[i])))) expect.fail(`${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

/** Central differences of a scalar function of a flat parameter vector. */
function fdGrad(f: (p: Float64Array) => number, p: Float64Array, h = 1e-6): number[] {
  return Array.from(p, (_, i) => {
    const q = Float64Array.from(p);
    q[i] += h; const up = f(q);
    q[i] -= 2 * h; const down = f(q);
    return (up - down) / (2 * h);
  });
}

type Params = Record<string, Tensor>;
const flatten = (p: Params) => Float64Array.from(Object.keys(p).sort().flatMap((k) => vals(p[k])));
function unflatten(like: Params, v: Float64Array): Params {
  const out: Params = {};
  let at = 0;
  for (const k of Object.keys(like).sort()) {
    out[k] = mg.tensor(v.subarray(at, at + like[k].size), [...like[k].shape], f64);
    at += like[k].size;
  }
  return out;
}

/** MAML: `steps` SGD steps on the support loss, then the query loss at the adapted parameters. */
function mamlObjective(loss: (p: Params, x: Tensor, y: Tensor) => Tensor, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor,
  steps: number, lr: number, firstOrder = false) {
  return (p: Params) => {
    let fast = p;
    for (let s = 0; s < steps; s++) {
      const g = mg.grad((q: Params) => loss(q, xs, ys))(fast);
      const cur = fast;
      fast = mg.treeMap((w, gw) => w.sub((firstOrder ? mg.stopGradient(gw) : gw).mul(lr)), cur, g);
    }
    return loss(fast, xq, yq);
  };
}

for (const b of backendNames) {
  describe(`higher-order derivatives on ${b}`, () => {
    it('third directional derivative of sum(tanh(x @ W)) matches the closed form and differences', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(1);
        const W = rng.normal([3, 4], { dtype: 'float64', std: 0.7 });
        const x = rng.normal([2, 3], { dtype: 'float64' });
        const v = rng.normal([2, 3], { dtype: 'float64' });
        const f = (x: Tensor) => x.matmul(W).tanh().sum();
        const d1 = (x: Tensor) => mg.grad(f)(x).mul(v).sum();
        const d2 = (x: Tensor) => mg.grad(d1)(x).mul(v).sum();
        const d3 = mg.grad(d2)(x).mul(v).sum().dataSync()[0];
        // Closed form: sum_j tanh'''(z_j) (v W)_j^3 with tanh''' = (1 - t^2)(6 t^2 - 2).
        const t = x.matmul(W).tanh(), vw = v.matmul(W);
        const closed = mg.noGrad(() => t.mul(t).sub(1).neg().mul(t.mul(t).mul(6).sub(2)).mul(vw.mul(vw).mul(vw)).sum().dataSync()[0]);
        expect(Math.abs(d3 - closed)).toBeLessThan(1e-10 * (1 + Math.abs(closed)));
        const h = 1e-4;
        const fd = (d2(x.add(v.mul(h))).dataSync()[0] - d2(x.sub(v.mul(h))).dataSync()[0]) / (2 * h);
        expect(Math.abs(d3 - fd)).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
      });
    });

    it('the Hessian of x^T A x is A + A^T, and hvp/jvp/jacobian agree with it', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(2);
        const A = rng.normal([4, 4], f64), x = rng.normal([4], f64), v = rng.normal([4], f64);
        const f = (x: Tensor) => mg.matmul(mg.matmul(x, A), x);
        const H = mg.hessian(f)(x);
        expect(H.shape).toEqual([4, 4]);
        const want = A.add(A.T);
        expectClose(vals(H), vals(want), 1e-12, 'hessian');
        expectClose(vals(mg.hvp(f, x, v)), vals(mg.matmul(want, v)), 1e-12, 'hvp');
        const [y, jv] = mg.jvp((x: Tensor) => mg.grad(f)(x), x, v);
        expectClose(vals(jv), vals(mg.matmul(want, v)), 1e-12, 'jvp');
        expectClose(vals(y), vals(mg.matmul(want, x)), 1e-12, 'jvp primal');
        const J = mg.jacobian((x: Tensor) => x.tanh().mul(2))(x);
        const t = x.tanh();
        expectClose(vals(J), vals(mg.eye(4, f64).mul(t.mul(t).sub(1).mul(-2))), 1e-12, 'jacobian');
      });
    });

    it('gradients with respect to a nested object of parameters have its structure', async () => {
      await activate(b);
      mg.tidy(() => {
        const p = { layer: { w: mg.tensor([[1, 2], [3, 4]], undefined, f64) }, bias: [mg.tensor([0.5, -0.5], undefined, f64)] };
        const g = mg.grad((p: typeof p) => p.layer.w.sum(0).mul(p.bias[0]).sum())(p);
        expect(vals(g.layer.w)).toEqual([0.5, -0.5, 0.5, -0.5]);
        expect(vals(g.bias[0])).toEqual([4, 6]);
      });
    });

    it('does not confuse perturbations of nested transforms', async () => {
      await activate(b);
      mg.tidy(() => {
        // d/dx [ d/dy (x*y) at y = x ] = d/dx x = 1 (a naive tape gives 2).
        const x = mg.tensor(3, [], f64);
        const outer = mg.grad((x: Tensor) => mg.grad((y: Tensor) => x.mul(y))(x))(x);
        expect(outer.dataSync()[0]).toBe(1);
      });
    });

    const tanhMlp = (p: Params, x: Tensor, y: Tensor) => mg.mse(x.matmul(p.w1).add(p.b1).tanh().matmul(p.w2).add(p.b2), y);
    const sigmoidMlp = (p: Params, x: Tensor, y: Tensor) => mg.mse(x.matmul(p.w1).add(p.b1).sigmoid().matmul(p.w2).add(p.b2), y);
    const mlpParams = (rng: mg.Random) => ({
      w1: rng.normal([1, 8], { dtype: 'float64', std: 0.8 }), b1: rng.normal([8], { dtype: 'float64', std: 0.1 }),
      w2: rng.normal([8, 1], { dtype: 'float64', std: 0.5 }), b2: mg.zeros([1], f64),
    });
    const sineTask = (rng: mg.Random) => {
      const xs = rng.uniform([5, 1], { dtype: 'float64', low: -5, high: 5 }), xq = rng.uniform([5, 1], { dtype: 'float64', low: -5, high: 5 });
      return { xs, ys: xs.sin().mul(2), xq, yq: xq.sin().mul(2) };
    };

    for (const [name, loss] of [['tanh', tanhMlp], ['sigmoid', sigmoidMlp]] as const) {
      for (const steps of [1, 2]) {
        it(`MAML meta-gradient of a ${name} MLP with ${steps} inner step(s) matches differences; first-order differs`, async () => {
          await activate(b);
          mg.tidy(() => {
            const rng = new mg.Random(3);
            const p = mlpParams(rng);
            const { xs, ys, xq, yq } = sineTask(rng);
            const meta = mamlObjective(loss, xs, ys, xq, yq, steps, 0.05);
            const g = flatten(mg.grad(meta)(p));
            const fd = fdGrad((v) => mg.tidy(() => meta(unflatten(p, v)).dataSync()[0]), flatten(p));
            expectClose(Array.from(g), fd, 1e-6, 'meta-gradient');
            const fo = flatten(mg.grad(mamlObjective(loss, xs, ys, xq, yq, steps, 0.05, true))(p));
            const diff = Math.max(...fo.map((v, i) => Math.abs(v - g[i])));
            expect(diff, 'first-order MAML should drop a second-order term').toBeGreaterThan(1e-4);
          });
        });
      }
    }

    it('MAML meta-gradient of a conv + relu + max-pool net matches differences', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(4);
        const p = {
          w: rng.normal([3, 1, 3, 3], { dtype: 'float64', std: 0.5 }), b: rng.normal([1, 3, 1, 1], { dtype: 'float64', std: 0.1 }),
          wo: rng.normal([27, 3], { dtype: 'float64', std: 0.3 }),
        };
        const net = (p: Params, x: Tensor, y: Tensor) => {
          const h = mg.maxPool2d(mg.conv2d(x, p.w, { padding: 1 }).add(p.b).relu(), 2);
          return mg.crossEntropy(mg.flatten(h).matmul(p.wo), y);
        };
        const xs = rng.normal([3, 1, 6, 6], f64), xq = rng.normal([3, 1, 6, 6], f64);
        const ys = mg.oneHot([0, 1, 2], 3, f64), yq = mg.oneHot([2, 0, 1], 3, f64);
        for (const steps of [1, 2]) {
          const meta = mamlObjective(net, xs, ys, xq, yq, steps, 0.1);
          const g = flatten(mg.grad(meta)(p));
          const fd = fdGrad((v) => mg.tidy(() => meta(unflatten(p, v)).dataSync()[0]), flatten(p));
          expectClose(Array.from(g), fd, 1e-5, `conv meta-gradient, ${steps} steps`);
        }
      });
    });
  });
}
