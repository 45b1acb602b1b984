// iMAML's implicit meta-gradient: against the closed form on a quadratic inner problem, against
// MAML unrolled through more and more proximal steps, against finite differences of the re-solved
// inner problem on a tanh MLP, its λ → ∞ limit, its memory (flat in the inner steps, where MAML's
// grows), and the learner contract (k steps, state, load, k more = 2k steps, bit for bit).

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor, linalg } from '../index.js';
import { IMAML, IMAMLOptions, MAML, Task, proximalStep, regressionLoss } from '../algorithms/index.js';
import { Mat, dotH, matVec, solve } from './support/dense.js';
import { activate } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
type Params = Record<string, any>;

// ---------- host-side float64 algebra (the oracle) ----------

const transpose = (A: Mat): Mat => A[0].map((_, j) => A.map((row) => row[j]));
const gram = (A: Mat): Mat => transpose(A).map((ci) => transpose(A).map((cj) => dotH(ci, cj)));
const addDiag = (A: Mat, d: number): Mat => A.map((row, i) => row.map((v, j) => (i === j ? v + d : v)));
const scaleM = (A: Mat, s: number): Mat => A.map((row) => row.map((v) => v * s));
const normH = (a: number[]) => Math.sqrt(dotH(a, a));

const flat = (tree: unknown) => Array.from(linalg.flatten(tree).dataSync());
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const copy = <T>(tree: T): T => mg.keep(mg.treeMap((t) => t.add(0), tree));

// ---------- models ----------

/** Linear regression y = x w + b with loss ½ Σ (y − t)²: its Hessian in (b, w) is exactly AᵀA, A = [1, X]. */
const linearModel = (p: Params, x: Tensor) => mg.nn.linear(p as any, x);
const halfSSE = (pred: Tensor, y: any) => pred.sub(y).square().sum().mul(0.5);

const mlp = (p: Params, x: Tensor) => mg.nn.linear(p.l2, mg.nn.linear(p.l1, x).tanh());
const initMlp = (rng: mg.Random, hidden = 6, dtype: 'float32' | 'float64' = 'float64') =>
  ({ l1: mg.nn.initLinear(rng, 1, hidden, { dtype }), l2: mg.nn.initLinear(rng, hidden, 1, { dtype }) });
const sineTask = (rng: mg.Random, n = 8, range = 2, dtype: 'float32' | 'float64' = 'float64'): Task => {
  const a = rng.uniformNumber(0.5, 2), ph = rng.uniformNumber(0, Math.PI);
  const xs = rng.uniform([n, 1], { dtype, low: -range, high: range }), xq = rng.uniform([n, 1], { dtype, low: -range, high: range });
  return { xs, ys: xs.sub(ph).sin().mul(a), xq, yq: xq.sub(ph).sin().mul(a) };
};
const keepTask = (t: Task): Task => mg.keep(t);
const disposeTask = (t: Task) => { for (const v of Object.values(t)) if (v instanceof Tensor) v.dispose(); };

describe('iMAML on a quadratic inner problem: the closed form', () => {
  // L_s(φ) = ½||A_s φ − y_s||², L_q(φ) = ½||A_q φ − y_q||², φ = (b, w) flattened in treeLeaves
  // order (b before w), A = [1, X]. With H = A_sᵀA_s:
  //   φ*(θ) = argmin L_s(φ) + λ/2||φ − θ||²  solves (H + λI) φ* = A_sᵀ y_s + λθ,
  //   dφ*/dθ = λ (H + λI)^{-1},  so the meta-gradient is  g = λ (H + λI)^{-1} ∇L_q(φ*),
  //   ∇L_q(φ*) = A_qᵀ(A_q φ* − y_q)  ( = (I + H/λ)^{-1} ∇L_q(φ*), what iMAML solves by CG).
  const d = 3, lam = 2;
  const setup = () => {
    const rng = new mg.Random(21);
    const Xs = rng.normal([6, d], f64), Xq = rng.normal([5, d], f64);
    const task: Task = { xs: Xs, ys: rng.normal([6, 1], f64), xq: Xq, yq: rng.normal([5, 1], f64) };
    const theta = { w: rng.normal([d, 1], f64), b: rng.normal([1], f64) };
    const aug = (X: Tensor): Mat => (X.arraySync() as number[][]).map((r) => [1, ...r]);
    const As = aug(Xs), Aq = aug(Xq);
    const ys = Array.from(task.ys instanceof Tensor ? task.ys.dataSync() : []), yq = Array.from((task.yq as Tensor).dataSync());
    const H = gram(As), th = flat(theta);
    const gradQ = (phi: number[]) => matVec(transpose(Aq), matVec(Aq, phi).map((v, i) => v - yq[i]));
    const tr = H.reduce((s, r, i) => s + r[i], 0);
    return { task, theta, As, Aq, ys, yq, H, th, gradQ, lr: 1 / (tr + lam) };
  };

  it("'paper' with 'gd' and with 'hessian-free' inner solvers: g = λ (H + λI)^{-1} ∇L_q(φ*) to 1e-8", async () => {
    await activate('ref');
    mg.tidy(() => {
      const s = setup();
      const M = addDiag(s.H, lam);
      const phiStar = solve(M, matVec(transpose(s.As), s.ys).map((v, i) => v + lam * s.th[i]));
      const gq = s.gradQ(phiStar);
      const expected = solve(M, gq).map((v) => lam * v);
      for (const innerSolver of ['gd', 'hessian-free'] as const) {
        const learner = new IMAML({
          model: linearModel, loss: halfSSE, params: copy(s.theta), lam, innerSolver, cgSteps: 8,
          innerLr: s.lr, innerSteps: innerSolver === 'gd' ? 800 : 2,
        });
        const r = learner.metaGradient(learner.params, s.task);
        expect(maxDiff(flat(r.adapted), phiStar)).toBeLessThan(1e-10);
        expect(maxDiff(flat(r.grad), expected)).toBeLessThan(1e-8 * Math.max(1, normH(expected)));
        const lq = 0.5 * matVec(s.Aq, phiStar).reduce((acc, v, i) => acc + (v - s.yq[i]) ** 2, 0);
        expect(r.loss.dataSync()[0]).toBeCloseTo(lq, 10);
        expect(r.cg.negativeCurvature).toBe(false);
        expect(r.cg.iterations).toBeLessThanOrEqual(4);   // a 4-dimensional system
        learner.dispose();
      }
    });
  });

  it("'reference': SGD on L_s, one pull-back step, and ((1 + d) I + H/(λ + λ_d))^{-1} ∇L_q(φ*)", async () => {
    await activate('ref');
    mg.tidy(() => {
      const s = setup();
      const K = 7, damp = 1, lamD = 10;
      // φ_{k+1} = φ_k − α A_sᵀ(A_s φ_k − y_s) from θ, then φ* = φ_K − αλ(φ_K − θ).
      let phi = [...s.th];
      for (let k = 0; k < K; k++) {
        const g = matVec(transpose(s.As), matVec(s.As, phi).map((v, i) => v - s.ys[i]));
        phi = phi.map((v, i) => v - s.lr * g[i]);
      }
      phi = phi.map((v, i) => v - s.lr * lam * (v - s.th[i]));
      const gq = s.gradQ(phi);
      const op = addDiag(scaleM(s.H, 1 / (lam + lamD)), 1 + damp);
      const expected = solve(op, gq);
      const learner = new IMAML({ model: linearModel, loss: halfSSE, params: copy(s.theta), lam, innerLr: s.lr, innerSteps: K, cgSteps: 8, variant: 'reference' });
      expect([learner.o.cgDamping, learner.o.lamDamping]).toEqual([damp, lamD]);   // the reference script's defaults
      const r = learner.metaGradient(learner.params, s.task);
      expect(maxDiff(flat(r.adapted), phi)).toBeLessThan(1e-12);
      // The reference CG stops once r·r < 1e-10: accurate to about 1e-5 / λ_min(operator) <= 1e-5.
      expect(maxDiff(flat(r.grad), expected)).toBeLessThan(1e-5);
      // With cgSteps <= 1 the reference script uses the query gradient at φ* as it is.
      const one = new IMAML({ model: linearModel, loss: halfSSE, params: copy(s.theta), lam, innerLr: s.lr, innerSteps: K, cgSteps: 1, variant: 'reference' });
      expect(maxDiff(flat(one.metaGradient(one.params, s.task).grad), gq)).toBeLessThan(1e-12);
      learner.dispose(); one.dispose();
    });
  });
});

describe('iMAML on a tanh MLP', () => {
  const lam = 2, n = 19;   // a 1-6-1 MLP has 19 parameters
  const make = (params: Params, o: Partial<IMAMLOptions<Params>> = {}) =>
    new IMAML<Params>({ model: mlp, loss: regressionLoss, params, lam, innerLr: 0.1, ...o });

  it('MAML unrolled through T proximal gradient steps converges to the implicit gradient as T grows', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(31);
      const theta = initMlp(rng), task = sineTask(rng);
      const implicit = make(copy(theta), { innerSolver: 'hessian-free', innerSteps: 12, cgSteps: 2 * n });
      const target = flat(implicit.metaGradient(implicit.params, task).grad);
      const errors: number[] = [];
      for (const T of [5, 10, 20, 40, 80]) {
        const unrolled = flat(mg.grad((th: Params) => {
          let phi = th;
          for (let k = 0; k < T; k++) phi = proximalStep(phi, th, task.xs, task.ys as Tensor, { model: mlp, loss: regressionLoss, lr: 0.1, lam });
          return regressionLoss(mlp(phi, task.xq), task.yq);
        })(theta));
        errors.push(maxDiff(unrolled, target) / normH(target));
      }
      console.log(`unrolled MAML (T = 5, 10, 20, 40, 80 proximal steps) vs implicit gradient, relative error: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
      for (let i = 1; i < errors.length; i++) expect(errors[i]).toBeLessThan(errors[i - 1]);
      expect(errors[errors.length - 1]).toBeLessThan(1e-6);
      expect(errors[0]).toBeGreaterThan(1e-3);
      implicit.dispose();
    });
  });

  it('with the inner problem solved to convergence, the meta-gradient matches central differences of L_q(φ*(θ)) to 1e-5', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(32);
      const theta = initMlp(rng), task = sineTask(rng);
      for (const [innerSolver, innerSteps] of [['hessian-free', 12], ['gd', 400]] as const) {
        const learner = make(copy(theta), { innerSolver, innerSteps, cgSteps: 2 * n });
        const r = learner.metaGradient(learner.params, task);
        const analytic = flat(r.grad);
        // φ* is a stationary point of the inner objective: ∇L_s(φ*) + λ(φ* − θ) = 0.
        const gs = flat(mg.grad((p: Params) => regressionLoss(mlp(p, task.xs), task.ys))(r.adapted));
        const station = gs.map((v, i) => v + lam * (flat(r.adapted)[i] - flat(theta)[i]));
        expect(Math.max(...station.map(Math.abs))).toBeLessThan(1e-12);
        const leaves = mg.treeLeaves(theta);
        const h = 1e-5;
        let worst = 0, k = 0;
        leaves.forEach((leaf, li) => {
          const base = Float64Array.from(leaf.dataSync());
          for (let j = 0; j < base.length; j++, k++) {
            const at = (delta: number) => mg.tidy(() => {
              const v = Float64Array.from(base); v[j] += delta;
              const moved = mg.treeUnflatten(theta, leaves.map((l, m) => (m === li ? mg.tensor(v, [...l.shape], f64) : l)));
              const phi = learner.adapt(moved, task.xs, task.ys);
              return regressionLoss(mlp(phi, task.xq), task.yq).dataSync()[0];
            });
            const fd = (at(h) - at(-h)) / (2 * h);
            worst = Math.max(worst, Math.abs(fd - analytic[k]) / (1 + Math.abs(fd)));
          }
        });
        console.log(`iMAML (${innerSolver}) meta-gradient vs central differences of the re-solved inner problem: ${worst.toExponential(2)}`);
        expect(worst).toBeLessThan(1e-5);
        learner.dispose();
      }
    });
  });

  it('λ → ∞ gives the query gradient at θ', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(33);
      const theta = initMlp(rng), task = sineTask(rng);
      const gq = flat(mg.grad((p: Params) => regressionLoss(mlp(p, task.xq), task.yq))(theta));
      // 'gd' needs α < 2 / (L + λ): with λ = 1e8, α = 1e-9.
      for (const o of [{ innerSolver: 'hessian-free' as const, innerSteps: 3 }, { innerSolver: 'gd' as const, innerSteps: 5, innerLr: 1e-9 }]) {
        const learner = make(copy(theta), { lam: 1e8, cgSteps: 5, ...o });
        const g = flat(learner.metaGradient(learner.params, task).grad);
        expect(maxDiff(g, gq) / normH(gq)).toBeLessThan(1e-6);
        learner.dispose();
      }
    });
  });

  it('the Hessian-free and gradient-descent inner solvers reach the same φ*', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(34);
      const theta = initMlp(rng), task = sineTask(rng);
      const a = make(copy(theta), { innerSolver: 'hessian-free', innerSteps: 8, cgSteps: 2 * n });
      const b = make(copy(theta), { innerSolver: 'gd', innerSteps: 400 });
      expect(maxDiff(flat(a.adapt(a.params, task.xs, task.ys)), flat(b.adapt(b.params, task.xs, task.ys)))).toBeLessThan(1e-12);
      a.dispose(); b.dispose();
    });
  });
});

describe('iMAML memory (WASM)', () => {
  it('peak memory of one meta-gradient is flat from 4 to 64 inner steps; unrolled second-order MAML\'s grows', async () => {
    await activate('wasm');
    const rng = new mg.Random(41);
    const task = keepTask(sineTask(rng, 20, 5, 'float32'));
    const init = () => { const r = new mg.Random(42); return { l1: mg.nn.initLinear(r, 1, 40), l2: mg.nn.initLinear(r, 40, 1) }; };
    const measure = (fn: () => unknown) => {
      const before = mg.memory();
      mg.resetPeakMemory();
      mg.tidy(() => { fn(); });
      const peak = mg.peakMemory() - before.bytes;
      expect(mg.memory(), 'nothing left behind').toEqual(before);
      return peak;
    };
    const stepsList = [4, 16, 64];
    const imaml: number[] = [], maml: number[] = [];
    for (const innerSteps of stepsList) {
      const l = new IMAML<Params>({ model: mlp, loss: regressionLoss, params: init(), innerSteps, innerLr: 0.01, cgSteps: 5 });
      imaml.push(measure(() => l.metaGradient(l.params, task)));
      l.dispose();
      const m = new MAML<Params>({ model: mlp, loss: regressionLoss, params: init(), innerSteps, innerLr: 0.01 });
      maml.push(measure(() => mg.valueAndGrad((meta: any) => m.metaLoss(meta, [task]))(m.meta)));
      m.dispose();
    }
    console.log(`peak bytes of one meta-gradient (1-40-1 tanh MLP, float32, 20 support examples) at ${stepsList.join(' / ')} inner steps:` +
      `\n  iMAML (5 CG steps):        ${imaml.join(' / ')}\n  MAML (second order, unrolled): ${maml.join(' / ')}`);
    expect(Math.max(...imaml) / Math.min(...imaml)).toBeLessThanOrEqual(1.05);
    expect(maml[1]).toBeGreaterThan(1.5 * maml[0]);
    expect(maml[2]).toBeGreaterThan(3 * maml[1]);
    expect(maml[2]).toBeGreaterThan(5 * imaml[2]);
    disposeTask(task);
  }, 60_000);

  it('step() and evaluate() leave no tensors behind, and training lowers the adapted query loss', async () => {
    await activate('wasm');
    const rng = new mg.Random(43);
    const init = () => { const r = new mg.Random(44); return { l1: mg.nn.initLinear(r, 1, 40), l2: mg.nn.initLinear(r, 40, 1) }; };
    const learner = new IMAML<Params>({ model: mlp, loss: regressionLoss, params: init(), innerSteps: 5, innerLr: 0.01, cgSteps: 5, lam: 1, metaOptimizer: mg.optim.adam({ lr: 0.01 }) });
    const testRng = () => new mg.Random(45);
    const test = (r: mg.Random) => mg.algorithms.take(() => sineTask(r, 10, 5, 'float32'), 20);
    const before = await learner.evaluate(test(testRng()), { steps: 5 });
    const mem = mg.memory();
    for (let i = 0; i < 150; i++) await mg.tidy(() => learner.step([sineTask(rng, 10, 5, 'float32'), sineTask(rng, 10, 5, 'float32')]));
    expect(mg.memory().tensors).toBe(mem.tensors);
    expect(mg.memory().bytes).toBe(mem.bytes);
    const after = await learner.evaluate(test(testRng()), { steps: 5 });
    expect(mg.memory().tensors).toBe(mem.tensors);
    console.log(`iMAML sine regression, adapted query loss on 20 test tasks: ${before.loss.mean.toFixed(3)} before, ${after.loss.mean.toFixed(3)} after 150 meta-steps`);
    expect(after.loss.mean).toBeLessThan(0.8 * before.loss.mean);
    expect(learner.iteration).toBe(150);
    learner.dispose();
  }, 120_000);
});

describe('iMAML learner contract (ref, float64)', () => {
  for (const [name, o] of [
    ["'paper', 'gd'", {}],
    ["'reference'", { variant: 'reference' }],
    ["'hessian-free'", { innerSolver: 'hessian-free', cgSteps: 3 }],
  ] as [string, Partial<IMAMLOptions<Params>>][]) {
    it(`${name}: k steps, state(), load() into a fresh IMAML, k more = 2k steps, bit for bit`, async () => {
      await activate('ref');
      const k = 3;
      const batches = Array.from({ length: 2 * k }, (_, i) => { const r = new mg.Random(100 + i); return [keepTask(sineTask(r, 5)), keepTask(sineTask(r, 5))]; });
      const make = (seed: number) => new IMAML<Params>({
        model: mlp, loss: regressionLoss, params: initMlp(new mg.Random(seed)), innerSteps: 3, innerLr: 0.1, cgSteps: 4,
        metaOptimizer: mg.optim.adam({ lr: 0.01 }), ...o,
      });
      const run = async (l: IMAML<Params>, from: number, to: number) => {
        const losses: number[] = [];
        for (let i = from; i < to; i++) losses.push(await mg.tidy(() => l.step(batches[i])));
        return losses;
      };
      const whole = make(1);
      const wholeLosses = await run(whole, 0, 2 * k);
      const half = make(1);
      const first = await run(half, 0, k);
      const state = half.state();
      expect(Object.keys(state.tensors).sort()).toEqual(['optimizer.m.params.l1.b', 'optimizer.m.params.l1.w', 'optimizer.m.params.l2.b', 'optimizer.m.params.l2.w',
        'optimizer.v.params.l1.b', 'optimizer.v.params.l1.w', 'optimizer.v.params.l2.b', 'optimizer.v.params.l2.w', 'params.l1.b', 'params.l1.w', 'params.l2.b', 'params.l2.w']);
      const resumed = make(7);
      resumed.load(state);
      half.dispose();
      const rest = await run(resumed, k, 2 * k);
      expect([...first, ...rest]).toEqual(wholeLosses);
      expect(resumed.iteration).toBe(2 * k);
      const [a, b] = [whole.state(), resumed.state()];
      expect(b.info).toEqual(a.info);
      for (const key of Object.keys(a.tensors)) expect(Array.from(b.tensors[key].dataSync())).toEqual(Array.from(a.tensors[key].dataSync()));
      whole.dispose(); resumed.dispose();
      batches.flat().forEach(disposeTask);
    });
  }

  it('rejects bad options', () => mg.tidy(() => {
    const p = () => ({ w: mg.zeros([1]) });
    expect(() => new IMAML({ model: linearModel, loss: halfSSE, params: p(), lam: 0 })).toThrow(/IMAML: lam must be a finite number > 0/);
    expect(() => new IMAML({ model: linearModel, loss: halfSSE, params: p(), cgSteps: 0 })).toThrow(/IMAML: cgSteps must be a whole number >= 1/);
    expect(() => new IMAML({ model: linearModel, loss: halfSSE, params: p(), innerSolver: 'newton' as any })).toThrow(/innerSolver must be 'gd' or 'hessian-free'/);
    expect(() => new IMAML({ model: linearModel, loss: halfSSE, params: p(), variant: 'x' as any })).toThrow(/variant must be 'paper' or 'reference'/);
  }));
});
