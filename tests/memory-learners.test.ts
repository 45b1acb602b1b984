// Memory-based meta-learners: the addressing pieces against their equations, the NTM's and the
// MANN's gradients against float64 finite differences, the copy task learning with a flat memory
// footprint, and the copy and label-delay samplers.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as mg from '../index.js';
import { Tensor, addressing as A } from '../index.js';
import { initNTM, ntm, copyLoss, initMANN, mannLoss, SequenceTrainer, accuracyByInstance } from '../algorithms/index.js';
import { CopyTask, copyTensors, LabelDelayEpisodes, labelDelayInput, type ClassDataset } from '../datasets/index.js';
import { fdMismatch } from './support/finite-differences.js';
import { activate } from './support/backends.js';

const f64 = { dtype: 'float64' as const };
const vals = (t: Tensor) => Array.from(t.dataSync());

const floats = (n: number, lo = -3, hi = 3) => fc.array(fc.double({ min: lo, max: hi, noNaN: true }), { minLength: n, maxLength: n });

describe('memory addressing', () => {
  it('content and full NTM addressing give weights that sum to 1 per head (random keys and memories, zero rows and keys included)', async () => {
    await activate('ref');
    const B = 2, N = 5, W = 3;
    fc.assert(fc.property(floats(B * N * W), floats(B * W), floats(B * N, 0, 1), floats(B * 3), floats(B * 3, 0, 5), fc.boolean(), fc.boolean(),
      (m, k, prev, raw, pos, zeroKey, zeroRow) => mg.tidy(() => {
        if (zeroKey) k.fill(0, 0, W);
        if (zeroRow) m.fill(0, 0, 2 * W);
        const M = mg.tensor(m, [B, N, W], f64), key = mg.tensor(k, [B, W], f64);
        const beta = mg.tensor(pos.slice(0, B), [B, 1], f64);
        const wc = A.contentAddressing(M, key, beta);
        const shift = mg.softmax(mg.tensor(raw, [B, 3], f64));
        const g = mg.tensor([0.3, 1], [B, 1], f64), gamma = mg.tensor(pos.slice(B, 2 * B), [B, 1], f64).add(1);
        const w = A.ntmAddressing(M, mg.tensor(prev, [B, N], f64).div(N), { key, beta, g, shift, gamma });
        for (const t of [wc, w]) {
          const v = vals(t);
          for (let b = 0; b < B; b++) expect(v.slice(b * N, (b + 1) * N).reduce((s, x) => s + x, 0)).toBeCloseTo(1, 10);
          expect(v.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
        }
      })), { numRuns: 60 });
  });

  it('content addressing is softmax(beta * cosine) with multiple heads, and 0 similarity at zero norm', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(3);
      const M = rng.normal([1, 4, 3], f64), keys = rng.normal([1, 2, 3], f64), beta = mg.tensor([2, 0.5], [1, 2, 1], f64);
      const w = vals(A.contentAddressing(M, keys, beta)), m = vals(M), k = vals(keys);
      for (let h = 0; h < 2; h++) {
        const cos = [0, 1, 2, 3].map((i) => {
          let d = 0, nk = 0, nm = 0;
          for (let j = 0; j < 3; j++) { d += k[h * 3 + j] * m[i * 3 + j]; nk += k[h * 3 + j] ** 2; nm += m[i * 3 + j] ** 2; }
          return d / Math.sqrt(nk * nm);
        });
        const e = cos.map((c) => Math.exp([2, 0.5][h] * c)), z = e.reduce((s, x) => s + x, 0);
        e.forEach((x, i) => expect(w[h * 4 + i]).toBeCloseTo(x / z, 6));
      }
      const zero = vals(A.cosineSimilarity(mg.zeros([1, 2, 3], f64), keys));
      expect(zero.every((x) => x === 0)).toBe(true);
      const g = vals(mg.grad((k: Tensor) => A.cosineSimilarity(M, k).sum())(mg.zeros([1, 3], f64)));
      expect(g.every(Number.isFinite)).toBe(true);
    });
  });

  it('erase and add follow M\' = M (1 - w e^T) + w a^T, and read is w^T M (against loops)', async () => {
    await activate('ref');
    const B = 2, N = 4, W = 3;
    fc.assert(fc.property(floats(B * N * W), floats(B * N, 0, 1), floats(B * W, 0, 1), floats(B * W), (m, w, e, a) => mg.tidy(() => {
      const M = mg.tensor(m, [B, N, W], f64), wt = mg.tensor(w, [B, N], f64);
      const out = vals(A.write(M, wt, mg.tensor(a, [B, W], f64), mg.tensor(e, [B, W], f64)));
      const plain = vals(A.write(M, wt, mg.tensor(a, [B, W], f64)));
      const r = vals(A.read(M, wt));
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < W; j++) {
          let acc = 0;
          for (let i = 0; i < N; i++) {
            const at = (b * N + i) * W + j, wi = w[b * N + i];
            expect(out[at]).toBeCloseTo(m[at] * (1 - wi * e[b * W + j]) + wi * a[b * W + j], 10);
            expect(plain[at]).toBeCloseTo(m[at] + wi * a[b * W + j], 10);
            acc += wi * m[at];
          }
          expect(r[b * W + j]).toBeCloseTo(acc, 10);
        }
      }
    })), { numRuns: 40 });
  });

  it('circular shift: a one-hot shift rotates, any shift distribution keeps the total, and matches the convolution sum', async () => {
    await activate('ref');
    const N = 6;
    fc.assert(fc.property(floats(N, 0, 1), floats(3, 0, 1), (w, s) => mg.tidy(() => {
      const wt = mg.tensor(w, [1, N], f64);
      for (const [k, d] of [[0, -1], [1, 0], [2, 1]]) {
        const one = mg.tensor([0, 1, 2].map((i) => (i === k ? 1 : 0)), [1, 3], f64);
        const v = vals(A.circularShift(wt, one));
        for (let i = 0; i < N; i++) expect(v[i]).toBeCloseTo(w[(((i - d) % N) + N) % N], 12);
      }
      const st = mg.tensor(s, [1, 3], f64);
      const v = vals(A.circularShift(wt, st));
      for (let i = 0; i < N; i++) {
        let acc = 0;
        for (let k = 0; k < 3; k++) acc += s[k] * w[(((i - (k - 1)) % N) + N) % N];
        expect(v[i]).toBeCloseTo(acc, 12);
      }
      expect(v.reduce((p, x) => p + x, 0)).toBeCloseTo(w.reduce((p, x) => p + x, 0) * s.reduce((p, x) => p + x, 0), 10);
    })), { numRuns: 40 });
  });

  it('sharpening: gamma = 1 renormalises only, larger gamma concentrates on the maximum and keeps the order', async () => {
    await activate('ref');
    fc.assert(fc.property(floats(5, 0.01, 1), fc.double({ min: 1, max: 20, noNaN: true }), (w, g) => mg.tidy(() => {
      const wt = mg.tensor(w, [1, 5], f64), total = w.reduce((p, x) => p + x, 0);
      const one = vals(A.sharpen(wt, mg.tensor([1], [1, 1], f64)));
      one.forEach((x, i) => expect(x).toBeCloseTo(w[i] / total, 10));
      const sh = vals(A.sharpen(wt, mg.tensor([g], [1, 1], f64)));
      expect(sh.reduce((p, x) => p + x, 0)).toBeCloseTo(1, 10);
      const top = w.indexOf(Math.max(...w));
      expect(sh[top]).toBeGreaterThanOrEqual(one[top] - 1e-12);
      for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) if (w[i] < w[j]) expect(sh[i]).toBeLessThanOrEqual(sh[j]);
      // d/dgamma stays finite where a weight is exactly zero.
      const d = vals(mg.grad((y: Tensor) => A.sharpen(mg.tensor([0, 0.5, 0.5, 0, 0], [1, 5], f64), y).mul(mg.tensor([1, 2, 3, 4, 5], [1, 5], f64)).sum())(mg.tensor([g], [1, 1], f64)));
      expect(d.every(Number.isFinite)).toBe(true);
    })), { numRuns: 40 });
  });

  it('least-used weighting marks the n smallest usages, ties to the lower row', async () => {
    await activate('ref');
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 6, maxLength: 6 }), fc.integer({ min: 1, max: 6 }), (u, n) => mg.tidy(() => {
      const v = vals(A.leastUsed(mg.tensor(u, [1, 6], f64), n));
      const order = u.map((x, i) => [x, i]).sort((p, q) => p[0] - q[0] || p[1] - q[1]).slice(0, n).map((p) => p[1]);
      expect(v).toEqual(u.map((_, i) => (order.includes(i) ? 1 : 0)));
    })), { numRuns: 60 });
  });

  it('bad shapes give errors naming the op and the shapes', async () => {
    await activate('ref');
    mg.tidy(() => {
      expect(() => A.contentAddressing(mg.zeros([2, 4, 3]), mg.zeros([2, 5]))).toThrow(/cosineSimilarity: keys \[2,5\] do not match memory \[2,4,3\]/);
      expect(() => A.write(mg.zeros([2, 4, 3]), mg.zeros([2, 4]), mg.zeros([2, 2]))).toThrow(/write: add vector \[2,2\]/);
      expect(() => A.circularShift(mg.zeros([2, 4]), mg.zeros([2, 2]))).toThrow(/circularShift/);
      expect(() => A.read(mg.zeros([2, 4, 3]), mg.zeros([2, 5]))).toThrow(/read: weighting \[2,5\] does not address memory \[2,4,3\]/);
    });
  });
});

describe('gradients against float64 finite differences (ref backend)', () => {
  it('NTM copy loss on a tiny sequence', async () => {
    await activate('ref');
    mg.tidy(() => {
      const p = initNTM(new mg.Random(7), { inputSize: 3, outputSize: 2, hidden: 3, rows: 5, width: 3 }, f64);
      const b = new CopyTask({ width: 2, seed: 2 }).next(2, 2);
      const { input, target } = copyTensors(b, 'float64');
      expect(fdMismatch((q) => copyLoss(q, input, target), p)).toBeLessThan(1e-6);
    });
  });

  // Defaults (learned key strength from 5, add vectors); Santoro et al.'s literal equations (no key
  // strength, the key written); and a learned key strength with the key written.
  const variants: { keyStrength?: number | false; writeKey?: boolean }[] = [{}, { keyStrength: false, writeKey: true }, { keyStrength: 0.5, writeKey: true }];
  for (const v of variants) {
    it(`MANN loss on a tiny label-delay sequence (${JSON.stringify(v)})`, async () => {
      await activate('ref');
      mg.tidy(() => {
        const cfg = { inputSize: 6, ways: 2, hidden: 3, rows: 4, width: 3, heads: 2, ...v };
        const p = initMANN(new mg.Random(8), cfg, f64);
        const episodes = new LabelDelayEpisodes(fakeClasses(3, 4, 4), { ways: 2, instances: 2, seed: 3 });
        const e = episodes.next(2);
        const x = labelDelayInput(e, 'float64');
        expect(x.shape).toEqual([4, 2, 6]);
        expect(fdMismatch((q) => mannLoss(q, x, e.labels, cfg), p)).toBeLessThan(1e-6);
      });
    });
  }

  it('MANN heads emit key, gate, key strength (starting at the configured value) and add vector', async () => {
    await activate('ref');
    mg.tidy(() => {
      const base = { inputSize: 6, ways: 2, hidden: 3, rows: 4, width: 3, heads: 2 };
      const p = initMANN(new mg.Random(8), base, f64);
      expect(p.heads.w.shape).toEqual([3, 2 * (3 + 1 + 1 + 3)]);
      const b = p.heads.b.dataSync();
      expect(Math.log1p(Math.exp(b[4]))).toBeCloseTo(5, 12);           // head 0: key 0..2, gate 3, strength 4
      expect(Math.log1p(Math.exp(b[8 + 4]))).toBeCloseTo(5, 12);       // head 1
      expect([...b].filter((_, i) => i % 8 !== 4).every((x) => x === 0)).toBe(true);
      expect(initMANN(new mg.Random(8), { ...base, keyStrength: false, writeKey: true }).heads.w.shape).toEqual([3, 2 * (3 + 1)]);
      expect(() => initMANN(new mg.Random(8), { ...base, keyStrength: 0 })).toThrow(/keyStrength must be a positive number or false, got 0/);
    });
  });
});

/** A synthetic class dataset: class c, example i is a fixed random pattern of `pixels` values. */
function fakeClasses(classes: number, examples: number, pixels: number): ClassDataset {
  const rng = new mg.Random(11);
  const data = rng.uniformValues(classes * examples * pixels);
  return {
    numClasses: classes, imageShape: [pixels], examplesOf: () => examples, className: (c) => `class${c}`,
    writeImage: (c, i, out, offset) => { for (let j = 0; j < pixels; j++) out[offset + j] = data[(c * examples + i) * pixels + j]; },
  };
}

describe('samplers', () => {
  it('copy task: delimiter, silence, and targets equal to the input vectors', () => {
    const b = new CopyTask({ width: 4, minLength: 2, maxLength: 5, seed: 1 }).next(3);
    const T = b.length, C = 5;
    expect(T).toBeGreaterThanOrEqual(2);
    expect(T).toBeLessThanOrEqual(5);
    for (let t = 0; t < 2 * T + 1; t++) {
      for (let s = 0; s < 3; s++) {
        const row = Array.from(b.input.slice((t * 3 + s) * C, (t * 3 + s + 1) * C));
        if (t < T) expect(row.slice(0, 4)).toEqual(Array.from(b.target.slice((t * 3 + s) * 4, (t * 3 + s + 1) * 4)));
        if (t < T) expect(row[4]).toBe(0);
        else if (t === T) expect(row).toEqual([0, 0, 0, 0, 1]);
        else expect(row).toEqual([0, 0, 0, 0, 0]);
      }
    }
    expect(() => new CopyTask({ minLength: 3, maxLength: 2 })).toThrow(/CopyTask: need 1 <= minLength <= maxLength/);
  });

  it('label-delay episodes: each label arrives one step after its image, labels re-drawn per episode, instances counted', () => {
    const data = fakeClasses(8, 6, 4);
    const e = new LabelDelayEpisodes(data, { ways: 3, instances: 5, seed: 2 }).next(4);
    const C = 4 + 3;
    expect(e.steps).toBe(15);
    const classOf: Map<string, number>[] = [];
    for (let b = 0; b < 4; b++) {
      const counts = [0, 0, 0];
      const seenImage = new Map<string, number>();
      for (let t = 0; t < 15; t++) {
        const at = (t * 4 + b) * C, label = e.labels[t * 4 + b];
        const prevOneHot = Array.from(e.input.slice(at + 4, at + 7));
        expect(prevOneHot).toEqual(t === 0 ? [0, 0, 0] : [0, 1, 2].map((k) => (k === e.labels[(t - 1) * 4 + b] ? 1 : 0)));
        expect(e.instance[t * 4 + b]).toBe(++counts[label]);
        // Images of one label come from one class: identify the class by matching the pattern.
        const key = Array.from(e.input.slice(at, at + 4)).map((v) => v.toFixed(5)).join(',');
        seenImage.set(key, label);
      }
      expect(counts).toEqual([5, 5, 5]);
      classOf.push(seenImage);
    }
    const acc = accuracyByInstance(Array.from(e.labels), e.labels, e.instance, 5);
    expect(acc.total).toEqual([12, 12, 12, 12, 12]);
    expect(acc.correct).toEqual(acc.total);
    expect(() => new LabelDelayEpisodes(data, { ways: 9 })).toThrow(/9 ways but the dataset has 8 classes/);
  });
});

describe('training (wasm)', () => {
  it('the NTM learns the copy task in a short run, with a flat memory footprint', async () => {
    await activate('wasm');
    const cfg = { inputSize: 5, outputSize: 4, hidden: 32, rows: 16, width: 8 };
    const trainer = new SequenceTrainer(initNTM(new mg.Random(0), cfg), (p, b: { input: Tensor; target: Tensor }) => copyLoss(p, b.input, b.target), mg.optim.adam({ lr: 3e-3 }));
    const task = new CopyTask({ width: 4, minLength: 1, maxLength: 4, seed: 5 });
    const step = () => mg.tidy(() => trainer.step(copyTensors(task.next(16))));
    const losses: number[] = [await step()];
    const mem = mg.memory();
    for (let i = 1; i < 300; i++) losses.push(await step());
    expect(mg.memory(), 'training keeps a flat footprint').toEqual(mem);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const first = mean(losses.slice(0, 20)), last = mean(losses.slice(-20));
    expect(first).toBeGreaterThan(0.6);          // chance is ln 2 = 0.693
    expect(last).toBeLessThan(first * 0.6);
    trainer.dispose();
  }, 120_000);

  it('MANN training on label-delay episodes keeps a flat memory footprint and a finite loss', async () => {
    await activate('wasm');
    const cfg = { inputSize: 16 + 3, ways: 3, hidden: 16, rows: 12, width: 6, heads: 2 };
    const trainer = new SequenceTrainer(initMANN(new mg.Random(1), cfg), (p: any, b: { x: Tensor; y: Int32Array }) => mannLoss(p, b.x, b.y, cfg), mg.optim.adam({ lr: 1e-3 }));
    const episodes = new LabelDelayEpisodes(fakeClasses(6, 5, 16), { ways: 3, instances: 4, seed: 4 });
    const step = () => mg.tidy(() => { const e = episodes.next(4); return trainer.step({ x: labelDelayInput(e), y: e.labels }); });
    const first = await step();
    const mem = mg.memory();
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) losses.push(await step());
    expect(mg.memory(), 'training keeps a flat footprint').toEqual(mem);
    expect([first, ...losses].every(Number.isFinite)).toBe(true);
    expect(first).toBeCloseTo(Math.log(3), 0);                    // chance level at the start
    trainer.dispose();
  }, 60_000);
});
