// The functional layers and the pure optimisers.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { activate, backendNames } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
const vals = (t: Tensor) => Array.from(t.dataSync());

function fdCheck(f: (x: Tensor) => Tensor, x0: Tensor, tol = 1e-6) {
  const g = vals(mg.grad(f)(x0));
  const base = Float64Array.from(x0.dataSync());
  base.forEach((v, i) => {
    const at = (d: number) => { const q = Float64Array.from(base); q[i] = v + d; return f(mg.tensor(q, [...x0.shape], f64)).dataSync()[0]; };
    const fd = (at(1e-6) - at(-1e-6)) / 2e-6;
    if (!(Math.abs(fd - g[i]) <= tol * (1 + Math.abs(fd)))) expect.fail(`element ${i}: grad ${g[i]} vs differences ${fd}`);
  });
}

for (const b of backendNames) {
  describe(`nn on ${b}`, () => {
    it('backbones have the paper shapes', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(0);
        expect(mg.nn.sineMLP(mg.nn.initSineMLP(rng), mg.zeros([5, 1])).shape).toEqual([5, 1]);
        const omni = mg.nn.initConv4(rng, { ways: 5 });
        expect(mg.nn.conv4(omni, rng.normal([2, 1, 28, 28])).shape).toEqual([2, 5]);
        expect(((omni.head as any).w as Tensor).shape).toEqual([64, 5]);
        const mini = mg.nn.initConv4(rng, { ways: 5, filters: 32, inChannels: 3, imageSize: 84 });
        expect(((mini.head as any).w as Tensor).shape).toEqual([800, 5]);
      });
    });

    it('batch norm: batch statistics normalise; running statistics update and are used at test time', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(1);
        const x = rng.normal([8, 3, 4, 4], { mean: 2, std: 3, dtype: 'float64' });
        const p = mg.nn.initBatchNorm(3, f64);
        const { y } = mg.nn.batchNorm(p, x, { stats: 'batch' });
        for (const v of vals(mg.mean(y, [0, 2, 3]))) expect(Math.abs(v)).toBeLessThan(1e-12);
        for (const v of vals(mg.variance(y, [0, 2, 3]))) expect(Math.abs(v - 1)).toBeLessThan(1e-4);
        const running = mg.nn.initRunningStats(3, f64);
        const r1 = mg.nn.batchNorm(p, x, { stats: 'running', running, training: true, momentum: 0.5 }).running!;
        vals(r1.mean).forEach((m, c) => expect(m).toBeCloseTo(0.5 * vals(mg.mean(x, [0, 2, 3]))[c], 12));
        const test = mg.nn.batchNorm(p, x, { stats: 'running', running: r1, training: false }).y;
        const manual = x.sub(r1.mean.reshape([1, 3, 1, 1])).div(r1.variance.reshape([1, 3, 1, 1]).add(1e-5).sqrt());
        expect(vals(test)).toEqual(vals(manual));
      });
    });

    it('per-step batch-norm statistics (MAML++): each inner step updates and uses its own, without leaking', async () => {
      await activate(b);
      const rng = new mg.Random(3);
      const params = mg.nn.initConv4(rng, { ways: 3, filters: 4 });
      const stats = new mg.nn.PerStepBatchNormStats(2, 4, 4, 0.5);
      const x = rng.normal([6, 1, 28, 28], { mean: 1 });
      const forward = (step: number, training: boolean) => mg.tidy(() => {
        mg.nn.conv4(params, x, stats.mode(step, training), stats.update(step));
      });
      forward(0, true);
      const before = mg.memory();
      expect(Array.from(stats.at(0, 0).mean.dataSync()).some((v) => v !== 0)).toBe(true);
      expect(Array.from(stats.at(1, 0).mean.dataSync())).toEqual([0, 0, 0, 0]);
      for (let i = 0; i < 20; i++) forward(i % 2, true);
      expect(mg.memory()).toEqual(before);
      // At test time step 1 normalises with step 1's statistics, so its output differs from step 0's.
      const out = (step: number) => mg.tidy(() => Array.from(mg.nn.conv4(params, x, stats.mode(step, false)).dataSync()));
      expect(out(0)).not.toEqual(out(1));
      stats.dispose();
      x.dispose();
      mg.treeLeaves(params).forEach((t) => t.dispose());
    });

    it('LSTM cell and batch norm are differentiable (float64 differences)', async () => {
      await activate(b);
      mg.tidy(() => {
        const rng = new mg.Random(2);
        const p = mg.nn.initLSTM(rng, 3, 4, f64);
        const s = { h: rng.normal([2, 4], f64), c: rng.normal([2, 4], f64) };
        const w = rng.normal([2, 4], f64);
        fdCheck((x) => { const n = mg.nn.lstmCell(p, x, s); return n.h.mul(w).sum().add(n.c.sum()); }, rng.normal([2, 3], f64));
        const bn = mg.nn.initBatchNorm(2, f64);
        const wy = rng.normal([4, 2, 2, 2], f64);
        fdCheck((x) => mg.nn.batchNorm(bn, x, { stats: 'batch' }).y.mul(wy).sum(), rng.normal([4, 2, 2, 2], f64), 1e-5);
      });
    });
  });

  describe(`optimisers on ${b}`, () => {
    for (const [name, opt] of [
      ['sgd', mg.optim.sgd({ lr: 0.1 })], ['sgd momentum', mg.optim.sgd({ lr: 0.05, momentum: 0.9, nesterov: true })],
      ['adam', mg.optim.adam({ lr: 0.1 })], ['rmsprop', mg.optim.rmsprop({ lr: 0.05 })],
    ] as const) {
      it(`${name} minimises a quadratic`, async () => {
        await activate(b);
        let p = { x: mg.tensor([3, -2], undefined, f64) };
        let state = opt.init(p);
        const target = mg.tensor([1, 1], undefined, f64);
        for (let i = 0; i < 300; i++) {
          const next = mg.tidy(() => opt.update(p, mg.grad((q: typeof p) => q.x.sub(target).square().sum())(p), state));
          p.x.dispose();
          mg.optim.disposeState(state);
          ({ params: p, state } = next);
        }
        vals(p.x).forEach((v) => expect(Math.abs(v - 1)).toBeLessThan(1e-2));
        p.x.dispose(); target.dispose(); mg.optim.disposeState(state);
      });
    }

    it('differentiating through an Adam step is finite where a gradient is zero, and matches differences', async () => {
      await activate(b);
      mg.tidy(() => {
        const opt = mg.optim.adam({ lr: 0.1 });
        // The second coordinate's inner gradient is exactly 0 at the start: sqrt(v) is at its kink.
        const inner = (x: Tensor) => x.mul(mg.tensor([1, 0], undefined, f64)).square().sum();
        const meta = (x: Tensor) => {
          const s = opt.init({ x });
          const { params } = opt.update({ x }, { x: mg.grad(inner)(x) }, s);
          return params.x.sin().sum();
        };
        const x0 = mg.tensor([0.7, 0], undefined, f64);
        const g = vals(mg.grad(meta)(x0));
        g.forEach((v) => expect(Number.isFinite(v)).toBe(true));
        fdCheck(meta, mg.tensor([0.7, 0.3], undefined, f64), 1e-5);
      });
    });

    it('schedules', () => {
      const s = mg.optim.schedules;
      expect(s.step(1, 10, 0.5)(25)).toBe(0.25);
      expect(s.cosine(1, 100)(100)).toBeCloseTo(0, 12);
      expect(s.cosine(1, 100)(50)).toBeCloseTo(0.5, 12);
      expect(s.warmup(4, s.constant(2))(1)).toBe(1);
      expect(s.exponential(1, 0.9)(2)).toBeCloseTo(0.81, 12);
    });
  });
}

describe("Conv4 with stride-2 convolutions (the MAML reference network's downsampling)", () => {
  it('is four blocks of stride-2 same convolution, batch norm and ReLU, then a spatial mean and the head; ~4x fewer multiply-adds', async () => {
    await activate('ref');
    const f64 = { dtype: 'float64' as const };
    const p = mg.nn.initConv4(new mg.Random(1), { ways: 3, filters: 2, imageSize: 8, downsample: 'stride', dtype: 'float64' }) as any;
    expect(p.head.w.shape).toEqual([2, 3]);   // the spatial mean leaves `filters` features
    const x = new mg.Random(2).normal([2, 1, 8, 8], f64);
    let h = x;
    for (const b of p.blocks) {
      const c = mg.nn.conv2dLayer(b.conv, h, { stride: 2, padding: 'same' });
      expect(c.shape.slice(2)).toEqual([Math.ceil(h.shape[2] / 2), Math.ceil(h.shape[3] / 2)]);
      h = mg.relu(mg.nn.batchNorm(b.bn, c, { stats: 'batch' }).y);
    }
    const want = mg.nn.linear(p.head, mg.mean(h, [2, 3]));
    expect(Array.from(mg.nn.conv4(p, x, { downsample: 'stride' }).dataSync())).toEqual(Array.from(want.dataSync()));
    // Multiply-adds of the four convolutions on 28x28 Omniglot with 64 filters, max-pool vs stride.
    const macs = (sizes: number[]) => sizes.reduce((s, n, i) => s + n * n * (i === 0 ? 1 : 64) * 64 * 9, 0);
    expect(macs([28, 14, 7, 3]) / macs([14, 7, 4, 2])).toBeGreaterThan(3.5);
    expect(() => mg.nn.initConv4(new mg.Random(1), { ways: 3, downsample: 'avg' as any })).toThrow(/initConv4: downsample must be 'maxpool' or 'stride', got 'avg'/);
  });
});
