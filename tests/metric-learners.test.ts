// Prototypical, Matching and Relation networks: their losses' gradients against float64 finite
// differences on tiny episodes, the shared distance / cosine / attention / biLSTM pieces against
// naive formulas, and short training runs on real Omniglot (loss falls, memory stays flat).

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { MatchingNet, ProtoNet, RelationNet, Task, initFullContext, initRelationNet, prototypes, relationModule } from '../algorithms/index.js';
import { EpisodeSampler, Omniglot, episodeTensors } from '../datasets/index.js';
import { fdMismatch } from './support/finite-differences.js';
import { activate } from './support/backends.js';

const f64 = { dtype: 'float64' as const };

const rows = (t: Tensor): number[][] => t.arraySync();
const matrix = (n: number, d: number) => fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: n * d, maxLength: n * d });
const pairOfSets = fc.record({ n: fc.integer({ min: 1, max: 5 }), m: fc.integer({ min: 1, max: 5 }), d: fc.integer({ min: 1, max: 6 }) })
  .chain(({ n, m, d }) => fc.record({ n: fc.constant(n), m: fc.constant(m), d: fc.constant(d), a: matrix(n, d), b: matrix(m, d) }));

describe('distances, cosine similarity, attention (nn)', () => {
  it('squaredDistances is >= 0 and equals sum_k (a_ik - b_jk)^2', async () => {
    await activate('ref');
    fc.assert(fc.property(pairOfSets, ({ n, m, d, a, b }) => mg.tidy(() => {
      const D = rows(mg.nn.squaredDistances(mg.tensor(a, [n, d], f64), mg.tensor(b, [m, d], f64)));
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
        let naive = 0;
        for (let k = 0; k < d; k++) naive += (a[i * d + k] - b[j * d + k]) ** 2;
        expect(D[i][j]).toBeGreaterThanOrEqual(0);
        expect(Math.abs(D[i][j] - naive)).toBeLessThan(1e-9 * (1 + naive));
      }
    })));
  });

  it('squaredDistances of a set with itself is ~0 on the diagonal, never negative, in float32 on wasm', async () => {
    await activate('wasm');
    mg.tidy(() => {
      const a = new mg.Random(3).normal([20, 64], { std: 10 });
      const D = mg.nn.squaredDistances(a, a).dataSync();
      for (let i = 0; i < 20; i++) expect(D[i * 20 + i]).toBeLessThan(1e-2);
      expect(Math.min(...D)).toBeGreaterThanOrEqual(0);
    });
  });

  it('cosineSimilarity equals a.b / (|a| |b|), lies in [-1, 1], and is 0 with a finite gradient at a zero row', async () => {
    await activate('ref');
    fc.assert(fc.property(pairOfSets, ({ n, m, d, a, b }) => mg.tidy(() => {
      const S = rows(mg.nn.cosineSimilarity(mg.tensor(a, [n, d], f64), mg.tensor(b, [m, d], f64)));
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
        let dot = 0, na = 0, nb = 0;
        for (let k = 0; k < d; k++) { dot += a[i * d + k] * b[j * d + k]; na += a[i * d + k] ** 2; nb += b[j * d + k] ** 2; }
        const naive = dot / (Math.max(Math.sqrt(na), 1e-8) * Math.max(Math.sqrt(nb), 1e-8));
        expect(Math.abs(S[i][j] - naive)).toBeLessThan(1e-9);
        expect(Math.abs(S[i][j])).toBeLessThanOrEqual(1 + 1e-12);
      }
    })));
    mg.tidy(() => {
      const a = mg.tensor([[0, 0, 0], [1, 2, 2]], undefined, f64), b = mg.tensor([[1, 0, 0], [0, 0, 0]], undefined, f64);
      expect(rows(mg.nn.cosineSimilarity(a, b))).toEqual([[0, 0], [1 / 3, 0]]);
      const g = mg.grad((x: Tensor) => mg.nn.cosineSimilarity(x, b).sum())(a).dataSync();
      expect([...g].every(Number.isFinite)).toBe(true);
    });
  });

  it('attention weights are a softmax (positive, each row sums to 1) and the output is their weighted sum', async () => {
    await activate('ref');
    fc.assert(fc.property(pairOfSets, ({ n, m, a, b }) => mg.tidy(() => {
      const scores = mg.tensor(a.slice(0, n * Math.min(m, a.length / n)).concat(new Array(Math.max(0, n * m - a.length)).fill(0)).slice(0, n * m), [n, m], f64);
      const values = mg.tensor(b.slice(0, m).map((v, i) => v * (i + 1)), [m, 1], f64);
      const { weights, output } = mg.nn.attention(scores, values);
      const W = rows(weights), O = rows(output), V = values.dataSync();
      for (let i = 0; i < n; i++) {
        expect(Math.abs(W[i].reduce((s, w) => s + w, 0) - 1)).toBeLessThan(1e-12);
        W[i].forEach((w) => expect(w).toBeGreaterThan(0));
        expect(Math.abs(O[i][0] - W[i].reduce((s, w, j) => s + w * V[j], 0))).toBeLessThan(1e-9);
      }
    })));
  });

  it('shape errors name the op and the shapes', async () => {
    await activate('ref');
    mg.tidy(() => {
      expect(() => mg.nn.squaredDistances(mg.zeros([2, 3]), mg.zeros([2, 4]))).toThrow(/squaredDistances.*\[2,3\].*\[2,4\]/);
      expect(() => mg.nn.cosineSimilarity(mg.zeros([3]), mg.zeros([2, 3]))).toThrow(/cosineSimilarity/);
      expect(() => mg.nn.attention(mg.zeros([2, 3]), mg.zeros([4, 1]))).toThrow(/attention.*\[2,3\].*\[4,1\]/);
      expect(() => mg.nn.biLSTM(mg.nn.initBiLSTM(new mg.Random(0), 3, 2), mg.zeros([4, 3]))).toThrow(/biLSTM/);
    });
  });

  it('biLSTM: the forward direction is lstmCell run ahead, the backward one lstmCell run from the end', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(4);
      const p = mg.nn.initBiLSTM(rng, 3, 2, f64);
      const xs = rng.normal([4, 2, 3], f64);
      const { forward, backward } = mg.nn.biLSTM(p, xs);
      expect(forward.shape).toEqual([4, 2, 2]);
      const step = (cell: any, order: number[]) => {
        let s = { h: mg.zeros([2, 2], f64), c: mg.zeros([2, 2], f64) };
        const out: number[][] = [];
        for (const t of order) { s = mg.nn.lstmCell(cell, xs.slice([t, 0, 0], [1, -1, -1]).reshape([2, 3]), s); out[t] = [...s.h.dataSync()]; }
        return out.flat();
      };
      const close = (a: ArrayLike<number>, b: number[]) => Array.from(a).forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-12));
      close(forward.dataSync(), step(p.forward, [0, 1, 2, 3]));
      close(backward.dataSync(), step(p.backward, [3, 2, 1, 0]));
    });
  });
});

// ---------- tiny episodes for the gradient checks ----------

/** 3 ways, 2 shots, 2 queries of 1x3x3 images. */
const tinyTask = (rng: mg.Random, shape = [1, 3, 3]): Task => ({
  xs: rng.normal([6, ...shape], f64), ys: Int32Array.from([0, 0, 1, 1, 2, 2]),
  xq: rng.normal([6, ...shape], f64), yq: Int32Array.from([2, 1, 0, 0, 1, 2]),
});
const tinyEmbed = (p: any, x: Tensor) => mg.nn.linear(p, mg.flatten(x)).tanh();

describe('loss gradients against float64 finite differences (tiny episodes, ref backend)', () => {
  it('Prototypical networks', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(1);
      const tasks = [tinyTask(rng), tinyTask(rng)];
      const proto = new ProtoNet({ embed: tinyEmbed, params: mg.nn.initLinear(rng, 9, 4, f64) });
      // Prototypes are the class means; logits the negative squared distances to them.
      const e = mg.tensor([[1, 2], [3, 4], [10, 0]], undefined, f64);
      expect(rows(prototypes(e, Int32Array.from([0, 0, 1]), 2))).toEqual([[2, 3], [10, 0]]);
      const loss = (p: any) => mg.div(mg.add(proto.loss(p, tasks[0]), proto.loss(p, tasks[1])), 2);
      expect(fdMismatch(loss, proto.params)).toBeLessThan(1e-6);
      proto.dispose();
    });
  });

  it('Matching networks, plain and with full-context embeddings', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(2);
      const task = tinyTask(rng);
      const plain = new MatchingNet({ embed: tinyEmbed, params: { embed: mg.nn.initLinear(rng, 9, 4, f64) } });
      expect(fdMismatch((p: any) => plain.loss(p, task), plain.params)).toBeLessThan(1e-6);
      // The loss is the mean negative log of the attention mass on the true class.
      const s = plain.scores(plain.params, task.xs, task.ys as Int32Array, task.xq, true);
      expect(rows(s.exp()).every((r) => Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-12)).toBe(true);
      const fce = new MatchingNet({ embed: tinyEmbed, params: { embed: mg.nn.initLinear(rng, 9, 3, f64), fce: initFullContext(rng, 3, f64) }, processingSteps: 2 });
      expect(fdMismatch((p: any) => fce.loss(p, task), fce.params)).toBeLessThan(1e-6);
      // Full-context embeddings change the result (the LSTMs are in the path).
      expect(Math.abs(fce.loss(fce.params, task).dataSync()[0] - new MatchingNet({ embed: tinyEmbed, params: { embed: fce.params.embed } }).loss(fce.params, task).dataSync()[0])).toBeGreaterThan(1e-6);
      // A learned scale on the cosines: its gradient too, and it sharpens the attention.
      const scaled = new MatchingNet({ embed: tinyEmbed, params: { embed: mg.nn.initLinear(rng, 9, 4, f64), logScale: mg.scalar(Math.log(3), 'float64') } });
      expect(fdMismatch((p: any) => scaled.loss(p, task), scaled.params)).toBeLessThan(1e-6);
      const maxWeight = (p: any) => Math.max(...scaled.scores(p, task.xs, task.ys as Int32Array, task.xq, true).exp().dataSync());
      expect(maxWeight(scaled.params)).toBeGreaterThan(maxWeight({ embed: scaled.params.embed }));
      plain.dispose(); fce.dispose(); scaled.dispose();
    });
  });

  it('Relation networks: the paper\'s Omniglot networks with 2 filters, K = 2 shots summed', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(3);
      const task = tinyTask(rng, [1, 28, 28]);
      const rel = new RelationNet({ params: initRelationNet(rng, { filters: 2, hidden: 3, ...f64 }) });
      const scores = rel.scores(rel.params, task.xs, task.ys as Int32Array, task.xq, true);
      expect(scores.shape).toEqual([6, 3]);
      expect([...scores.dataSync()].every((v) => v > 0 && v < 1)).toBe(true);
      expect(fdMismatch((p: any) => rel.loss(p, task), rel.params, { perLeaf: 4 })).toBeLessThan(1e-5);
      rel.dispose();
    });
  }, 60_000);

  it('Relation networks: the split first convolution equals the relation module on concatenated pairs', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(4);
      const p = initRelationNet(rng, { filters: 3, hidden: 4, ...f64 }).relation as any;
      const classes = rng.normal([4, 3, 5, 5], f64), queries = rng.normal([6, 3, 5, 5], f64);
      // The paper's formulation: every (query, class) pair concatenated in depth, then the module.
      const grid = [6, 4, 3, 5, 5];
      const pairs = mg.reshape(mg.concat([mg.broadcastTo(mg.expandDims(classes, 0), grid), mg.broadcastTo(mg.expandDims(queries, 1), grid)], 2), [24, 6, 5, 5]);
      const h = mg.flatten(mg.nn.convBlock(p.blocks[1], mg.nn.convBlock(p.blocks[0], pairs)));
      const naive = mg.reshape(mg.sigmoid(mg.nn.linear(p.fc2, mg.relu(mg.nn.linear(p.fc1, h)))), [6, 4]);
      const split = relationModule(p, classes, queries);
      expect(split.shape).toEqual([6, 4]);
      const [a, b] = [split.dataSync(), naive.dataSync()];
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-12);
      expect(() => relationModule(p, classes, rng.normal([6, 2, 5, 5], f64))).toThrow(/relationModule: class maps \[4,3,5,5\] and query maps \[6,2,5,5\]/);
    });
  });

  it('bad episodes give clear errors', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(5);
      const proto = new ProtoNet({ embed: tinyEmbed, params: mg.nn.initLinear(rng, 9, 4, f64) });
      const t = tinyTask(rng);
      expect(() => proto.loss(proto.params, { ...t, ys: Int32Array.from([0, 0, 2, 2, 3, 3]) })).toThrow(/ProtoNet: support labels must cover 0..ways-1/);
      expect(() => proto.loss(proto.params, { ...t, ys: t.xs })).toThrow(/ProtoNet: tasks need class labels/);
      expect(() => initRelationNet(rng, { imageSize: 14 })).toThrow(/initRelationNet: 14x14/);
      proto.dispose();
    });
  });
});

// ---------- short training runs on Omniglot ----------

describe('training on Omniglot (wasm): the loss falls and memory stays flat', () => {
  const load = () => Omniglot.load({ root: new URL('../../shared/data/omniglot', import.meta.url).pathname, cacheDir: tmpdir() + '/metagrad-test-cache' });
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const conv4 = (filters: number) => { const { head, ...rest } = mg.nn.initConv4(new mg.Random(0), { ways: 1, filters }); mg.treeLeaves(head).forEach((t) => t.dispose()); return rest; };

  const cases: [string, () => { step: (ts: Task[]) => Promise<number>; evaluate: (ts: Task[]) => Promise<any>; dispose: () => void }, number, number][] = [
    ['Prototypical networks (10-way training, 5-way test)', () => new ProtoNet({ embed: (p: any, x) => mg.nn.conv4Features(p, x), params: conv4(16) }), 10, 40],
    ['Matching networks with full-context embeddings', () => new MatchingNet({ embed: (p: any, x) => mg.nn.conv4Features(p, x), params: { embed: conv4(16), fce: initFullContext(new mg.Random(1), 16) }, processingSteps: 3 }), 5, 100],
    ['Relation networks', () => new RelationNet({ params: initRelationNet(new mg.Random(0), { filters: 16 }) }), 5, 150],
  ];
  for (const [name, make, trainWays, steps] of cases) {
    it(name, async () => {
      await activate('wasm');
      const omni = load();
      const train = new EpisodeSampler(omni.split('train'), { ways: trainWays, shots: 1, queries: 5, seed: 1 });
      const learner = make();
      const losses: number[] = [];
      const step = () => mg.tidy(() => learner.step([episodeTensors(train.next())]));
      losses.push(await step());
      const mem = mg.memory();
      for (let i = 1; i < steps; i++) losses.push(await step());
      expect(mg.memory(), 'training keeps a flat footprint').toEqual(mem);
      expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)) * 0.85);
      const test = new EpisodeSampler(omni.split('test'), { ways: 5, shots: 1, queries: 5, seed: 2 });
      const r = await mg.tidy(() => learner.evaluate(Array.from({ length: 10 }, () => episodeTensors(test.next()))));
      expect(r.accuracy.n).toBe(10);
      expect(r.accuracy.mean).toBeGreaterThan(0.3);   // chance is 0.2
      expect(mg.memory()).toEqual(mem);
      learner.dispose();
    }, 60_000);
  }
});
