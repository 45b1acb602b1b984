// The meta-learners: their meta-gradients against float64 finite differences, and short training
// runs whose loss must fall.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { MAML, Reptile, classificationLoss, regressionLoss, Task } from '../algorithms/index.js';
import { SineTasks } from '../datasets/index.js';
import { fdMismatch } from './support/finite-differences.js';
import { activate, backendNames } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
type Params = Record<string, any>;

const mlp = (act: 'tanh' | 'sigmoid') => (p: Params, x: Tensor) => {
  const h = mg.nn.linear(p.l1, x);
  return mg.nn.linear(p.l2, act === 'tanh' ? h.tanh() : h.sigmoid());
};
const initMlp = (rng: mg.Random) => ({ l1: mg.nn.initLinear(rng, 1, 6, f64), l2: mg.nn.initLinear(rng, 6, 1, f64) });
const sineTask = (rng: mg.Random): Task => {
  const xs = rng.uniform([5, 1], { ...f64, low: -5, high: 5 }), xq = rng.uniform([5, 1], { ...f64, low: -5, high: 5 });
  return { xs, ys: xs.sin().mul(2), xq, yq: xq.sin().mul(2) };
};

// A small Conv + BN + ReLU + max-pool classifier.
const convNet = (p: Params, x: Tensor) => {
  const c = mg.nn.conv2dLayer(p.conv, x, { padding: 1 });
  const h = mg.maxPool2d(mg.nn.batchNorm(p.bn, c, { stats: 'batch' }).y.relu(), 2);
  return mg.nn.linear(p.head, mg.flatten(h));
};
const initConvNet = (rng: mg.Random) => ({
  conv: mg.nn.initConv2d(rng, 1, 2, 3, f64), bn: mg.nn.initBatchNorm(2, f64), head: mg.nn.initLinear(rng, 2 * 3 * 3, 3, f64),
});
const imageTask = (rng: mg.Random): Task => ({
  xs: rng.normal([3, 1, 6, 6], f64), ys: Int32Array.from([0, 1, 2]), xq: rng.normal([3, 1, 6, 6], f64), yq: Int32Array.from([2, 1, 0]),
});

describe('MAML meta-gradients against float64 differences', () => {
  for (const [name, model, init, task, loss, lr] of [
    ['tanh MLP', mlp('tanh'), initMlp, sineTask, regressionLoss, 0.05],
    ['sigmoid MLP', mlp('sigmoid'), initMlp, sineTask, regressionLoss, 0.05],
    ['Conv+BN+ReLU+pool net', convNet, initConvNet, imageTask, classificationLoss, 0.1],
  ] as const) {
    for (const steps of [1, 2]) {
      it(`${name}, ${steps} inner step(s): second order matches, first order differs`, async () => {
        await activate('ref');
        mg.tidy(() => {
          const rng = new mg.Random(5);
          const tasks = [task(rng), task(rng)];
          const second = new MAML({ model, loss, params: init(rng), innerLr: lr, innerSteps: steps });
          const first = new MAML({ model, loss, params: mg.treeMap((t) => t.add(0), second.meta.params), innerLr: lr, innerSteps: steps, firstOrder: true });
          const f2 = (p: any) => second.metaLoss({ params: p }, tasks);
          expect(fdMismatch(f2, second.meta.params)).toBeLessThan(1e-5);
          const g2 = mg.treeLeaves(mg.grad(f2)(second.meta.params)).flatMap((g) => Array.from(g.dataSync()));
          const g1 = mg.treeLeaves(mg.grad((p: any) => first.metaLoss({ params: p }, tasks))(first.meta.params)).flatMap((g) => Array.from(g.dataSync()));
          expect(Math.max(...g1.map((v, i) => Math.abs(v - g2[i])))).toBeGreaterThan(1e-4);
          second.dispose(); first.dispose();
        });
      });
    }
  }

  it('Meta-SGD: the gradient with respect to the learned per-parameter rates matches differences', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(6);
      const tasks = [sineTask(rng)];
      const m = new MAML({ model: mlp('tanh'), loss: regressionLoss, params: initMlp(rng), innerLr: 0.05, innerSteps: 2, learnedLr: 'per-parameter' });
      expect(m.meta.lrs!.length).toBe(4);
      expect(fdMismatch((meta: any) => m.metaLoss(meta, tasks), m.meta)).toBeLessThan(1e-5);
      m.dispose();
    });
  });

  it('per-layer-per-step rates (MAML++ style) and ANIL differentiate correctly', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(7);
      const tasks = [imageTask(rng)];
      const lslr = new MAML({ model: convNet, loss: classificationLoss, params: initConvNet(rng), innerLr: 0.1, innerSteps: 2, learnedLr: 'per-layer-per-step', multiStepLoss: 10 });
      expect(lslr.meta.lrs![0].shape).toEqual([2, 6]);
      expect(lslr.stepWeights()).toEqual([0.5, 0.5]);
      expect(fdMismatch((meta: any) => lslr.metaLoss(meta, tasks), lslr.meta)).toBeLessThan(1e-5);
      const anil = new MAML({ model: convNet, loss: classificationLoss, params: initConvNet(rng), innerLr: 0.1, adapt: (p) => p.startsWith('head') });
      expect(fdMismatch((p: any) => anil.metaLoss({ params: p }, tasks), anil.meta.params)).toBeLessThan(1e-5);
      lslr.dispose(); anil.dispose();
    });
  });

  it('MAML++ per-step batch-norm weights: every step has its own row and meta-gradient, and the inner loop leaves them alone', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(8);
      // Conv4 on 16x16 images with 2 filters: four blocks take it to 1x1.
      const params = mg.nn.initConv4(rng, { ways: 2, filters: 2, imageSize: 16, bnSteps: 3, ...f64 });
      expect(((params.blocks as any)[0].bn.scale as Tensor).shape).toEqual([3, 2]);
      // Make the rows differ, so picking the wrong row would change the loss.
      const blocks = (params.blocks as any[]).map((b) => ({ ...b, bn: { scale: rng.uniform([3, 2], { ...f64, low: 0.5, high: 1.5 }), shift: rng.normal([3, 2], { ...f64, std: 0.1 }) } }));
      const p = { ...params, blocks };
      const seen = mg.nn.conv4AtStep(p, 1) as any;
      expect(Array.from(seen.blocks[2].bn.scale.dataSync())).toEqual(Array.from(blocks[2].bn.scale.dataSync()).slice(2, 4));
      expect(Array.from((mg.nn.conv4AtStep(p, 7) as any).blocks[0].bn.shift.dataSync())).toEqual(Array.from(blocks[0].bn.shift.dataSync()).slice(4, 6));
      const x = rng.normal([4, 1, 16, 16], f64), xq = rng.normal([4, 1, 16, 16], f64);
      const task = { xs: x, ys: Int32Array.from([0, 1, 0, 1]), xq, yq: Int32Array.from([1, 0, 0, 1]) };
      const maml = new MAML({ model: (q: any, xx: Tensor, ctx) => mg.nn.conv4(mg.nn.conv4AtStep(q, ctx.step), xx), loss: classificationLoss,
        params: p, innerLr: 0.1, innerSteps: 1, adapt: (path) => !path.includes('.bn.') });
      // The inner step does not move the batch-norm weights.
      const fast = maml.adapt(maml.meta, x, task.ys, { steps: 1 }) as any;
      expect(fast.blocks[1].bn.scale).toBe(maml.meta.params.blocks[1].bn.scale);
      const g = mg.grad((q: any) => maml.metaLoss({ params: q }, [task]))(maml.meta.params) as any;
      const rows = Array.from(g.blocks[1].bn.scale.dataSync() as Float64Array);
      // Row 0 (support pass) and row 1 (query pass after one step) matter; row 2 is never used.
      expect(rows.slice(0, 2).some((v) => v !== 0) && rows.slice(2, 4).some((v) => v !== 0)).toBe(true);
      expect(rows.slice(4, 6)).toEqual([0, 0]);
      expect(fdMismatch((q: any) => maml.metaLoss({ params: q }, [task]), maml.meta.params)).toBeLessThan(1e-5);
      maml.dispose();
    });
  });
});

for (const b of backendNames) {
  describe(`training runs on ${b}`, () => {
    it('MAML on sine regression: the post-adaptation loss falls', async () => {
      await activate(b);
      const sine = new SineTasks({ shots: 10, seed: 1 });
      const model = (p: any, x: Tensor) => mg.nn.sineMLP(p, x);
      const maml = new MAML({ model, loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(0)), innerLr: 0.01, innerSteps: 1, testInnerSteps: 1, vectorized: true });
      const evalTasks = () => { const s = new SineTasks({ shots: 10, seed: 99 }); return Array.from({ length: 20 }, () => { const t = s.batch(1); return { xs: t.xs.reshape([10, 1]), ys: t.ys.reshape([10, 1]), xq: t.xq.reshape([10, 1]), yq: t.yq.reshape([10, 1]) }; }); };
      const before = await mg.tidy(() => maml.evaluate(evalTasks()));
      const iterations = 300;
      const step = () => mg.tidy(() => { const t = sine.batch(10); return maml.step([{ xs: t.xs, ys: t.ys, xq: t.xq, yq: t.yq }]); });
      await step();
      const mem = mg.memory();
      for (let i = 1; i < iterations; i++) await step();
      expect(mg.memory(), 'meta-training keeps a flat footprint').toEqual(mem);
      const after = await mg.tidy(() => maml.evaluate(evalTasks()));
      expect(after.loss.mean).toBeLessThan(before.loss.mean * 0.8);
      maml.dispose();
    }, 120_000);

    it('Reptile trains on a task\'s support and query together: one step by hand', async () => {
      await activate(b);
      // y = w x, w = 0; support (1, 2), query (3, 0). MSE over both points: dL/dw = mean(2 (w x - y) x)
      // = mean(-4, 0) = -2, so one inner step at 0.1 gives w = 0.2, and an outer step of 1 moves the
      // initialisation there (the support alone would give 0.4).
      const rep = new Reptile({ model: (p: any, x: Tensor) => mg.matmul(x, p.w), loss: regressionLoss, params: { w: mg.tensor([0], [1, 1]) }, innerLr: 0.1, innerSteps: 1, metaLr: 1 });
      const loss = await rep.step([{ xs: mg.tensor([1], [1, 1]), ys: mg.tensor([2], [1, 1]), xq: mg.tensor([3], [1, 1]), yq: mg.tensor([0], [1, 1]) }]);
      expect((await rep.params.w.data())[0]).toBeCloseTo(0.2, 6);
      // Returned: the adapted weights' loss on both points, mean((0.2 - 2)^2, (0.6 - 0)^2) = 1.8.
      expect(loss).toBeCloseTo(1.8, 5);
      rep.dispose();
    });

    it('Reptile with innerBatch: each inner step trains on the next examples of a shuffled order', async () => {
      await activate(b);
      // The same two points, one per step (innerBatch 1, 2 steps), so each is used once. In the order
      // (1, 2), (3, 0): w = 0 - 0.1 * 2 (0 - 2) 1 = 0.4, then 0.4 - 0.1 * 2 (1.2 - 0) 3 = -0.32; in the
      // other order the first step is flat (3 * 0 - 0 = 0) and the second gives 0.4.
      const finals = new Set<number>();
      for (let seed = 0; seed < 8; seed++) {
        const rep = new Reptile({ model: (p: any, x: Tensor) => mg.matmul(x, p.w), loss: regressionLoss, params: { w: mg.tensor([0], [1, 1]) }, innerLr: 0.1, innerSteps: 2, metaLr: 1, innerBatch: 1, rng: new mg.Random(seed) });
        await rep.step([{ xs: mg.tensor([1], [1, 1]), ys: mg.tensor([2], [1, 1]), xq: mg.tensor([3], [1, 1]), yq: mg.tensor([0], [1, 1]) }]);
        const w = (await rep.params.w.data())[0];
        expect([0.4, -0.32].some((v) => Math.abs(w - v) < 1e-6), `w = ${w}`).toBe(true);
        finals.add(Math.round(w * 100));
        rep.dispose();
      }
      expect(finals.size, 'both orders occur').toBe(2);
      expect(() => new Reptile({ model: (p: any, x: Tensor) => x, loss: regressionLoss, params: {}, innerBatch: 4 })).toThrow(/Reptile: innerBatch .* needs rng/);
    });

    it('Reptile on sine regression: the post-adaptation loss falls', async () => {
      await activate(b);
      const sine = new SineTasks({ shots: 10, seed: 2 });
      const rep = new Reptile({ model: (p: any, x: Tensor) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(0)), innerLr: 0.005, innerSteps: 5, metaLr: 1 });
      const task = (s: SineTasks) => { const t = s.batch(1); return { xs: t.xs.reshape([10, 1]), ys: t.ys.reshape([10, 1]), xq: t.xq.reshape([10, 1]), yq: t.yq.reshape([10, 1]) }; };
      const evalTasks = () => { const s = new SineTasks({ shots: 10, seed: 98 }); return Array.from({ length: 20 }, () => task(s)); };
      const before = await mg.tidy(() => rep.evaluate(evalTasks()));
      const iterations = b === 'ref' ? 120 : 300;
      await mg.tidy(() => rep.step([task(sine), task(sine)]));
      const mem = mg.memory();
      for (let i = 1; i < iterations; i++) await mg.tidy(() => rep.step([task(sine), task(sine)]));
      expect(mg.memory(), 'meta-training keeps a flat footprint').toEqual(mem);
      const after = await mg.tidy(() => rep.evaluate(evalTasks()));
      // Reptile converges slowly (the paper trains for 100k steps): ask for a clear, not a large, fall.
      expect(after.loss.mean).toBeLessThan(before.loss.mean * 0.92);
      rep.dispose();
    }, 120_000);
  });
}

describe('fine-tuning baseline', () => {
  it('pretraining on Omniglot lowers the loss, and fine-tuned heads beat chance on test tasks', async () => {
    await activate('wasm');
    const { Omniglot, BatchSampler, EpisodeSampler, episodeTensors } = await import('../datasets/index.js');
    const { FineTuneBaseline } = await import('../algorithms/index.js');
    const omni = Omniglot.load({ root: new URL('../../shared/data/omniglot', import.meta.url).pathname, cacheDir: (await import('node:os')).tmpdir() + '/metagrad-test-cache' });
    const train = omni.split('train');
    // A small backbone and 40 training classes keep this a few seconds; it is a behaviour test.
    const classes = { ...train, numClasses: 40 };
    const rng = new mg.Random(0);
    const backbone = mg.nn.initConv4(rng, { ways: 40, filters: 16 });
    const ft = new FineTuneBaseline({ features: (p: any, x: Tensor) => mg.nn.conv4Features(p, x), featureDim: 16, params: backbone as any, headSteps: 50, headLr: 0.5 });
    const batches = new BatchSampler(classes, 32, 1);
    const losses: number[] = [];
    for (let i = 0; i < 60; i++) losses.push(await mg.tidy(() => { const b = batches.next(); return ft.step(b); }));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)) * 0.8);
    const episodes = new EpisodeSampler(omni.split('test'), { ways: 5, shots: 5, queries: 5, seed: 3 });
    const tasks = Array.from({ length: 10 }, () => episodeTensors(episodes.next()));
    const r = await ft.evaluate(tasks);
    expect(r.accuracy.n).toBe(10);
    expect(r.accuracy.mean).toBeGreaterThan(0.3);   // chance is 0.2
    tasks.forEach((t) => { t.xs.dispose(); t.xq.dispose(); });
    ft.dispose();
  }, 120_000);
});
