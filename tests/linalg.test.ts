// engine/linalg: vector operations over pytrees, conjugate gradient against a direct solve and its
// textbook error bound, and Hutchinson's Frobenius-norm estimator against the exact Hessian.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor, linalg } from '../index.js';
import { fdMismatch } from './support/finite-differences.js';
import { Mat, dotH, matVec, solve } from './support/dense.js';
import { activate } from './support/backends.js';

const f64 = { dtype: 'float64' as const };

// ---------- host-side float64 linear algebra (the oracle; the direct solver in support/dense.ts) ----------

/** A random orthogonal n×n matrix: Gram–Schmidt (twice, for accuracy) on a Gaussian matrix. */
function orthogonal(rng: mg.Random, n: number): Mat {
  const g = rng.normalValues(n * n);
  const Q: number[][] = [];
  for (let i = 0; i < n; i++) {
    let v = Array.from({ length: n }, (_, j) => g[i * n + j]);
    for (let pass = 0; pass < 2; pass++) {
      for (const q of Q) { const d = dotH(v, q); v = v.map((x, j) => x - d * q[j]); }
    }
    const nv = Math.sqrt(dotH(v, v));
    Q.push(v.map((x) => x / nv));
  }
  return Q;   // rows orthonormal
}

/** A = Qᵀ diag(eigs) Q = Σ_k eigs_k q_k q_kᵀ, q_k the rows of Q (the eigenvectors). */
function withEigenvectorsRows(Q: Mat, eigs: number[]): Mat {
  const n = eigs.length;
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => eigs.reduce((s, e, k) => s + e * Q[k][i] * Q[k][j], 0)));
}
/** A random SPD (or indefinite) matrix with the given eigenvalues and random orthogonal eigenvectors. */
const withEigenvalues = (rng: mg.Random, eigs: number[]): Mat => withEigenvectorsRows(orthogonal(rng, eigs.length), eigs);

const logSpaced = (n: number, kappa: number) => Array.from({ length: n }, (_, i) => kappa ** (i / (n - 1)));
const matvecOf = (A: Mat, dtype: 'float32' | 'float64' = 'float64') => {
  const n = A.length, At = mg.tensor(A.flat(), [n, n], { dtype });
  mg.keep(At);
  return { At, mv: (v: Tensor) => mg.reshape(mg.matmul(At, mg.reshape(v, [n, 1])), [n]) };
};
const aNorm = (A: Mat, e: number[]) => Math.sqrt(dotH(e, matVec(A, e)));
const vec = (t: Tensor) => Array.from(t.dataSync());

describe('linalg vector operations over trees', () => {
  it('dot, norm, axpy, scale, add, sub, flatten and unflatten', async () => {
    await activate('ref');
    mg.tidy(() => {
      const a = { w: mg.tensor([[1, 2], [3, 4]], undefined, f64), b: [mg.tensor([5], undefined, f64)] };
      const b = { w: mg.tensor([[1, 0], [0, 1]], undefined, f64), b: [mg.tensor([-1], undefined, f64)] };
      expect(linalg.dot(a, b).dataSync()[0]).toBe(0);
      expect(linalg.norm(a).dataSync()[0]).toBeCloseTo(Math.sqrt(55), 14);
      expect(vec(linalg.flatten(linalg.axpy(2, a, b)))).toEqual([9, 3, 4, 6, 9]);   // leaves in key order: b, w
      expect(vec(linalg.flatten(linalg.axpy(mg.scalar(-1, 'float64'), a, b)))).toEqual([-6, 0, -2, -3, -3]);
      expect(vec(linalg.flatten(linalg.scale(0.5, a)))).toEqual([2.5, 0.5, 1, 1.5, 2]);
      expect(vec(linalg.flatten(linalg.add(a, b)))).toEqual([4, 2, 2, 3, 5]);
      expect(vec(linalg.flatten(linalg.sub(a, b)))).toEqual([6, 0, 2, 3, 3]);
      const flat = linalg.flatten(a);
      expect(flat.shape).toEqual([5]);
      const back = linalg.unflatten(a, flat);
      expect(back.w.shape).toEqual([2, 2]);
      expect(back.w.arraySync()).toEqual([[1, 2], [3, 4]]);
      expect(vec(back.b[0])).toEqual([5]);
      // Differentiable: d/da of dot(flatten(a), c) is unflatten(c); d norm at 0 is 0, not NaN.
      const c = mg.tensor([1, 2, 3, 4, 5], undefined, f64);
      const g = mg.grad((p: any) => linalg.dot(linalg.flatten(p), c))(a);
      expect(vec(linalg.flatten(g))).toEqual([1, 2, 3, 4, 5]);
      const gz = mg.grad((p: any) => linalg.norm(p))({ z: mg.zeros([3], f64) });
      expect(vec(gz.z)).toEqual([0, 0, 0]);
      expect(() => linalg.dot(a, { w: a.w })).toThrow(/dot: the trees differ/);
      expect(() => linalg.unflatten(a, mg.zeros([4], f64))).toThrow(/unflatten: expected a \[5\] vector/);
      expect(() => linalg.axpy(mg.zeros([2], f64), a, b)).toThrow(/axpy: alpha must be a number or a one-element tensor/);
    });
  });
});

describe('conjugate gradient', () => {
  // Eigenvalues spread evenly over [1, κ] (CG then finishes in n iterations in float64 too), and
  // spread geometrically (log-spaced): there, at κ = 1e3, float64 CG loses the orthogonality of its
  // directions and needs a few iterations beyond n (the delay of Greenbaum & Strakoš 1992; a plain
  // float64 CG written out on host numbers behaves the same, to the last digits).
  for (const [kappa, spacing, within] of [[10, 'even', 1], [1e3, 'even', 1], [10, 'log', 1], [1e3, 'log', 2]] as const) {
    it(`equals a direct solve of a random SPD system, condition number ${kappa}, eigenvalues ${spacing === 'log' ? 'log-spaced' : 'evenly spaced'}, within ${within === 1 ? 'n' : '2n'} iterations, and meets the error bound`, async () => {
      await activate('ref');
      const n = 10, rng = new mg.Random(kappa + within);
      const eigs = spacing === 'log' ? logSpaced(n, kappa) : Array.from({ length: n }, (_, i) => 1 + ((kappa - 1) * i) / (n - 1));
      const A = withEigenvalues(rng, eigs);
      const bh = Array.from(rng.normalValues(n));
      const xs = solve(A, bh);
      const { At, mv } = matvecOf(A);
      mg.tidy(() => {
        const b = mg.tensor(bh, [n], f64);
        const r = linalg.cg(mv, b, { maxIter: within * n });
        const x = vec(r.x);
        const scaleX = Math.sqrt(dotH(xs, xs));
        expect(Math.max(...x.map((v, i) => Math.abs(v - xs[i]))) / scaleX).toBeLessThan(1e-10);
        expect(r.iterations).toBeLessThanOrEqual(within * n);
        expect(r.negativeCurvature).toBe(false);
        // ||e_k||_A <= 2 ((√κ − 1)/(√κ + 1))^k ||e_0||_A after k iterations, from x0 = 0 and from a random x0.
        const rho = (Math.sqrt(kappa) - 1) / (Math.sqrt(kappa) + 1);
        const x0h = Array.from(rng.normalValues(n));
        for (const start of [null, x0h]) {
          const e0 = aNorm(A, xs.map((v, i) => (start ? start[i] : 0) - v));
          for (let k = 1; k <= n; k++) {
            const xk = vec(mg.tidy(() => linalg.cg(mv, b, { maxIter: k, x0: start ? mg.tensor(start, [n], f64) : undefined }).x));
            const ek = aNorm(A, xk.map((v, i) => v - xs[i]));
            expect(ek).toBeLessThanOrEqual(2 * rho ** k * e0 + 1e-12 * e0);
          }
        }
      });
      At.dispose();
    });
  }

  it('a tree and the flat vector give the same x; tol stops early; the masked loop equals the early exit', async () => {
    await activate('ref');
    const n = 9, rng = new mg.Random(3);
    const A = withEigenvalues(rng, Array.from({ length: n }, (_, i) => 1 + (49 * i) / (n - 1)));
    const bh = Array.from(rng.normalValues(n));
    const { At, mv } = matvecOf(A);
    mg.tidy(() => {
      const b = mg.tensor(bh, [n], f64);
      const like = { m: mg.zeros([2, 2], f64), v: [mg.zeros([5], f64)] };
      const treeMv = (t: typeof like) => linalg.unflatten(like, mv(linalg.flatten(t)));
      const flat = linalg.cg(mv, b, { maxIter: n });
      const tree = linalg.cg(treeMv, linalg.unflatten(like, b), { maxIter: n });
      expect(tree.x.m.shape).toEqual([2, 2]);
      const xf = vec(flat.x), xt = vec(linalg.flatten(tree.x));
      expect(Math.max(...xf.map((v, i) => Math.abs(v - xt[i]))) / Math.sqrt(dotH(xf, xf))).toBeLessThan(1e-12);
      expect(tree.iterations).toBe(flat.iterations);

      // Eigenvalues clustered near 1 (log-spaced over [1, 3]): the residual falls fast.
      const easy = matvecOf(withEigenvalues(rng, logSpaced(n, 3)));
      const loose = linalg.cg(easy.mv, b, { maxIter: 100, tol: 1e-4 });
      expect(loose.iterations).toBeLessThan(n);
      expect(loose.residual).toBeLessThanOrEqual(1e-4 * Math.sqrt(dotH(bh, bh)));
      const masked = linalg.cg(easy.mv, b, { maxIter: 100, tol: 1e-4, earlyExit: false });
      easy.At.dispose();
      expect(vec(masked.x)).toEqual(vec(loose.x));
      expect([masked.iterations, masked.residual]).toEqual([loose.iterations, loose.residual]);
      // b = 0 is solved by x = 0 before any division.
      const zero = linalg.cg(mv, mg.zeros([n], f64), { maxIter: 5 });
      expect([vec(zero.x).every((v) => v === 0), zero.iterations, zero.negativeCurvature]).toEqual([true, 0, false]);
    });
    At.dispose();
  });

  it('reports non-positive curvature of an indefinite operator instead of dividing by it', async () => {
    await activate('ref');
    const n = 6, rng = new mg.Random(4);
    const Q = orthogonal(rng, n);
    const A = withEigenvectorsRows(Q, [-3, 1, 2, 4, 5, 8]);
    const { At, mv } = matvecOf(A);
    mg.tidy(() => {
      // b along the negative eigenvector: p·Ap < 0 at the first step, x stays 0.
      const first = linalg.cg(mv, mg.tensor(Q[0], [n], f64), { maxIter: n });
      expect([first.negativeCurvature, first.iterations]).toEqual([true, 0]);
      expect(vec(first.x).every((v) => v === 0)).toBe(true);
      // A generic b: CG runs until a direction with p·Ap <= 0 (or solves it); x stays finite.
      let flagged = 0;
      for (let k = 0; k < 20; k++) {
        const b = mg.tensor(Array.from(rng.normalValues(n)), [n], f64);
        const r = linalg.cg(mv, b, { maxIter: n });
        const m = linalg.cg(mv, b, { maxIter: n, earlyExit: false });
        expect(vec(r.x).every(Number.isFinite)).toBe(true);
        expect(vec(m.x)).toEqual(vec(r.x));
        expect([m.negativeCurvature, m.iterations]).toEqual([r.negativeCurvature, r.iterations]);
        if (r.negativeCurvature) flagged++;
      }
      expect(flagged).toBeGreaterThan(0);
      // Zero curvature (a singular operator along b) is reported too.
      const singular = linalg.cg((v: Tensor) => v.mul(mg.tensor([0, 1], undefined, f64)), mg.tensor([1, 0], undefined, f64), { maxIter: 2 });
      expect(singular.negativeCurvature).toBe(true);
    });
    At.dispose();
  });

  it('frees each iteration: live tensors and peak memory do not grow with maxIter (WASM, float32)', async () => {
    await activate('wasm');
    const n = 64, rng = new mg.Random(5);
    const A = withEigenvalues(rng, logSpaced(n, 10));
    const bh = Array.from(rng.normalValues(n));
    const xs = solve(A, bh);
    const { At, mv } = matvecOf(A, 'float32');
    const b = mg.keep(mg.tensor(bh, [n]));
    const peaks: number[] = [];
    for (const maxIter of [5, 50]) {
      const before = mg.memory();
      mg.resetPeakMemory();
      const r = linalg.cg(mv, b, { maxIter, earlyExit: false });
      peaks.push(mg.peakMemory() - before.bytes);
      expect(mg.memory().tensors).toBe(before.tensors + 1);   // x only
      if (maxIter === 50) {
        const x = vec(r.x);
        expect(Math.max(...x.map((v, i) => Math.abs(v - xs[i]))) / Math.sqrt(dotH(xs, xs))).toBeLessThan(1e-4);
      }
      r.x.dispose();
    }
    expect(peaks[1]).toBe(peaks[0]);
    b.dispose(); At.dispose();
  });
});

// A small tanh MLP's loss as a function of its parameters.
const mlpLoss = (x: Tensor, y: Tensor) => (p: any) => mg.mse(mg.nn.linear(p.l2, mg.nn.linear(p.l1, x).tanh()), y);
const initMlp = (rng: mg.Random) => ({ l1: mg.nn.initLinear(rng, 2, 3, f64), l2: mg.nn.initLinear(rng, 3, 1, f64) });

describe('Hutchinson estimator of ||H||_F²', () => {
  it('averages over many probes to the exact squared Frobenius norm of a small model\'s Hessian', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(11);
      const x = rng.normal([6, 2], f64), y = rng.normal([6, 1], f64);
      const p = initMlp(rng);
      const f = mlpLoss(x, y);
      const n = linalg.flatten(p).size;
      const H = mg.hessian((v: Tensor) => f(linalg.unflatten(p, v)))(linalg.flatten(p));
      expect(H.shape).toEqual([n, n]);
      const exact = vec(H).reduce((s, h) => s + h * h, 0);
      // The recorded-once operator agrees with hvp.
      const op = linalg.hvpOperator(f, p);
      const e3 = linalg.unflatten(p, mg.oneHot([3], n, f64).reshape([n]));
      expect(vec(linalg.flatten(op(e3)))).toEqual(vec(linalg.flatten(mg.hvp(f, p, e3))).map((v) => expect.closeTo(v, 12)) as any);
      for (const dist of ['rademacher', 'gaussian'] as const) {
        const probes = 3000;
        const est = linalg.hutchinsonFrobenius(op, p, { probes, rng: new mg.Random(1), dist }).dataSync()[0];
        // One probe's ||Hv||² = vᵀH²v has variance 2||H²||_F² (Gaussian) or 2(||H²||_F² − Σ(H²)_ii²) <= that (Rademacher):
        const H2 = mg.matmul(H, H), sd = Math.SQRT2 * Math.sqrt(vec(H2).reduce((s, h) => s + h * h, 0));
        console.log(`Hutchinson (${dist}, ${probes} probes): ${est.toPrecision(6)} vs exact ${exact.toPrecision(6)} (${((est / exact - 1) * 100).toFixed(2)} %)`);
        expect(Math.abs(est - exact)).toBeLessThan(4 * sd / Math.sqrt(probes));
        expect(Math.abs(est / exact - 1)).toBeLessThan(0.1);
      }
      expect(() => linalg.hutchinsonFrobenius(op, p, { probes: 0, rng })).toThrow(/probes must be >= 1/);
    });
  });

  it('its gradient with respect to the parameters (third order, through hvp) matches central differences', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(12);
      const x = rng.normal([5, 2], f64), y = rng.normal([5, 1], f64);
      const p = initMlp(rng);
      const f = mlpLoss(x, y);
      for (const dist of ['rademacher', 'gaussian'] as const) {
        // The same probes on every evaluation: a fixed seed.
        const est = (q: any) => linalg.hutchinsonFrobenius((v) => mg.hvp(f, q, v), q, { probes: 3, rng: new mg.Random(7), dist });
        expect(fdMismatch(est, p)).toBeLessThan(1e-6);
      }
    });
  });
});
