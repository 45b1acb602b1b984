// Permuted MNIST: the permutations are seeded bijections (of the whole image, or of its central
// square only), permuteImages is the gather out[n, i] = images[n, perm[i]] for every image alike,
// PermutedTasks permutes train and test of the real MNIST (../shared/data/mnist) the same way, and
// its minibatch stream is deterministic, covers each epoch once and resumes exactly from state().

import { describe, it, expect, beforeAll } from 'vitest';
import { loadMnist, pixelPermutations, permuteImages, PermutedTasks } from '../datasets/index.js';
import type { MnistData, PermutedBatchesState } from '../datasets/index.js';

const MNIST = new URL('../../shared/data/mnist', import.meta.url).pathname;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (p: ArrayLike<number>) => Array.from(p).sort((a, b) => a - b);
const inverse = (p: Int32Array) => { const q = new Int32Array(p.length); p.forEach((v, i) => { q[v] = i; }); return q; };
/** Element-wise equality of long arrays (toEqual's diffing is slow on 78,400 values). */
const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);
const moved = (p: Int32Array) => range(p.length).filter((i) => p[i] !== i);
/** Pixels of the central s x s square of a side x side image, worked out from rows and columns. */
const centre = (side: number, s: number, offset: number) =>
  range(side * side).filter((i) => { const r = Math.floor(i / side), c = i % side; return r >= offset && r < offset + s && c >= offset && c < offset + s; });

describe('pixelPermutations', () => {
  it('gives seeded bijections of 0..783: same seed same permutations, another seed others', () => {
    const a = pixelPermutations(4, { seed: 1 }), again = pixelPermutations(4, { seed: 1 }), other = pixelPermutations(4, { seed: 2 });
    expect(a).toHaveLength(4);
    for (const p of a) {
      expect(p).toBeInstanceOf(Int32Array);
      expect(sorted(p)).toEqual(range(784));
      expect(moved(p).length).toBeGreaterThan(770); // a random permutation of 784 fixes about one point
    }
    a.forEach((p, k) => expect(Array.from(again[k])).toEqual(Array.from(p)));
    a.forEach((p, k) => expect(Array.from(other[k])).not.toEqual(Array.from(p)));
    // The tasks differ from each other.
    expect(Array.from(a[1])).not.toEqual(Array.from(a[0]));
    expect(Array.from(a[3])).not.toEqual(Array.from(a[2]));
    // Adding tasks leaves the earlier ones alone.
    pixelPermutations(2, { seed: 1 }).forEach((p, k) => expect(Array.from(p)).toEqual(Array.from(a[k])));
    expect(pixelPermutations(0, { seed: 1 })).toEqual([]);
  });

  it('identityFirst makes task 0 the identity and leaves the other tasks as they were', () => {
    const plain = pixelPermutations(3, { seed: 5 }), id = pixelPermutations(3, { seed: 5, identityFirst: true });
    expect(Array.from(id[0])).toEqual(range(784));
    expect(Array.from(plain[0])).not.toEqual(range(784));
    expect(Array.from(id[1])).toEqual(Array.from(plain[1]));
    expect(Array.from(id[2])).toEqual(Array.from(plain[2]));
  });

  it('draws every permutation equally often (Fisher-Yates, not a biased shuffle)', () => {
    // 3 pixels: 6 permutations, 1200 draws, 200 expected each (sd about 13).
    const counts = new Map<string, number>();
    for (const p of pixelPermutations(1200, { seed: 12, pixels: 3 })) counts.set(p.join(), (counts.get(p.join()) ?? 0) + 1);
    expect(counts.size).toBe(6);
    for (const c of counts.values()) expect(Math.abs(c - 200)).toBeLessThan(60);
  });

  it('pixels and side set the size', () => {
    const [p] = pixelPermutations(1, { seed: 3, pixels: 10 });
    expect(sorted(p)).toEqual(range(10));
    const [q] = pixelPermutations(1, { seed: 3, side: 5 });
    expect(sorted(q)).toEqual(range(25));
  });

  it('square: only the central s x s pixels move, onto each other, and the border stays', () => {
    for (const [side, s, offset] of [[28, 8, 10], [28, 26, 1], [5, 3, 1], [5, 2, 1], [6, 6, 0]] as const) {
      const inner = centre(side, s, offset);
      expect(inner).toHaveLength(s * s);
      const perms = pixelPermutations(3, { seed: 9, side, square: s });
      for (const p of perms) {
        expect(sorted(p)).toEqual(range(side * side));
        const set = new Set(inner);
        range(side * side).forEach((i) => { if (!set.has(i)) expect(p[i]).toBe(i); });
        // The inner square maps onto itself (as a set) ...
        expect(sorted(inner.map((i) => p[i]))).toEqual(inner);
        // ... and is really shuffled (a random permutation of s^2 >= 64 points fixes about one).
        if (s * s >= 64) expect(moved(p).length).toBeGreaterThan(s * s - 8);
      }
      if (s * s >= 9) expect(Array.from(perms[1])).not.toEqual(Array.from(perms[0]));
    }
    // EWC's 8 x 8 on MNIST: the 64 pixels at rows and columns 10..17 are all that can move.
    const [p8] = pixelPermutations(1, { seed: 4, square: 8 });
    expect(moved(p8).every((i) => Math.floor(i / 28) >= 10 && Math.floor(i / 28) <= 17 && i % 28 >= 10 && i % 28 <= 17)).toBe(true);
    expect(moved(p8).length).toBeGreaterThan(56);
  });

  it('rejects bad counts, seeds and shapes, naming the function and the value', () => {
    expect(() => pixelPermutations(-1, { seed: 0 })).toThrow(/pixelPermutations: count must be a non-negative integer, got -1/);
    expect(() => pixelPermutations(1.5, { seed: 0 })).toThrow(/count must be a non-negative integer, got 1.5/);
    expect(() => pixelPermutations(1, undefined as any)).toThrow(/pixelPermutations: options \{ seed, ... \} are required/);
    expect(() => pixelPermutations(1, {} as any)).toThrow(/pixelPermutations: seed must be a non-negative integer, got undefined/);
    expect(() => pixelPermutations(1, { seed: -3 })).toThrow(/seed must be a non-negative integer, got -3/);
    expect(() => pixelPermutations(1, { seed: 0, pixels: 0 })).toThrow(/pixelPermutations: pixels must be a positive integer, got 0/);
    expect(() => pixelPermutations(1, { seed: 0, side: 0 })).toThrow(/pixelPermutations: side must be a positive integer, got 0/);
    expect(() => pixelPermutations(1, { seed: 0, square: 29 })).toThrow(/pixelPermutations: square must be an integer in 1..side = 28, got 29/);
    expect(() => pixelPermutations(1, { seed: 0, square: 0 })).toThrow(/square must be an integer in 1..side = 28, got 0/);
    expect(() => pixelPermutations(1, { seed: 0, pixels: 100, square: 5 })).toThrow(/pixelPermutations: square needs side x side images, but pixels = 100 and side = 28/);
  });
});

describe('permuteImages', () => {
  it('is the gather out[n * pixels + i] = images[n * pixels + perm[i]]', () => {
    const images = Float32Array.from([10, 11, 12, 13, 20, 21, 22, 23]), perm = Int32Array.from([2, 0, 3, 1]);
    expect(Array.from(permuteImages(images, perm))).toEqual([12, 10, 13, 11, 22, 20, 23, 21]);
    expect(Array.from(permuteImages(images, perm, 4))).toEqual([12, 10, 13, 11, 22, 20, 23, 21]);
    expect(Array.from(images)).toEqual([10, 11, 12, 13, 20, 21, 22, 23]); // a new array; the input is untouched
    // The inverse permutation undoes it.
    expect(Array.from(permuteImages(permuteImages(images, perm), inverse(perm)))).toEqual(Array.from(images));
  });

  it('applies the same permutation to every image', () => {
    // Every pixel of every image distinct, so each output image tells which permutation it got.
    const n = 7, P = 49, images = Float32Array.from({ length: n * P }, (_, i) => i * 3 + 1);
    const [perm] = pixelPermutations(1, { seed: 11, pixels: P });
    const out = permuteImages(images, perm);
    for (let img = 0; img < n; img++) {
      const got = range(P).map((i) => (out[img * P + i] - 1) / 3 - img * P);
      expect(got).toEqual(Array.from(perm));
    }
  });

  it('rejects what is not a permutation or not whole images', () => {
    const images = new Float32Array(8);
    expect(() => permuteImages(images, Int32Array.from([0, 1, 1, 2]))).toThrow(/permuteImages: perm is not a permutation: 1 appears twice \(again at index 2\)/);
    expect(() => permuteImages(images, Int32Array.from([0, 1, 4, 2]))).toThrow(/permuteImages: perm\[2\] = 4 is outside 0..3/);
    expect(() => permuteImages(images, Int32Array.from([0, 1, 2]))).toThrow(/permuteImages: images has 8 values, not a whole number of 3-pixel images/);
    expect(() => permuteImages(images, Int32Array.from([0, 1, 2, 3]), 2)).toThrow(/permuteImages: perm has 4 entries, expected one per pixel \(2\)/);
    expect(() => permuteImages(images, [0, 1, 2, 3] as any)).toThrow(/permuteImages: perm must be an Int32Array/);
    expect(() => permuteImages([0, 1] as any, Int32Array.from([0, 1]))).toThrow(/permuteImages: images must be a Float32Array/);
  });
});

describe('PermutedTasks on MNIST', () => {
  let train: MnistData, test: MnistData, perms: Int32Array[], tasks: PermutedTasks;
  beforeAll(() => {
    train = loadMnist({ root: MNIST, set: 'train', limit: 100 });
    test = loadMnist({ root: MNIST, set: 'test', limit: 100 });
    perms = pixelPermutations(3, { seed: 7, identityFirst: true });
    tasks = new PermutedTasks(train, test, perms);
  });

  it('task(k) permutes train and test alike by perms[k]; task 0 is MNIST itself', () => {
    expect(tasks.numTasks).toBe(3);
    expect(tasks.pixels).toBe(784);
    expect(tasks.size('train')).toBe(100);
    expect(tasks.size('test')).toBe(100);
    const t0 = tasks.task(0);
    expect(same(t0.train.images, train.images)).toBe(true);
    expect(same(t0.test.images, test.images)).toBe(true);
    for (const k of [1, 2]) {
      const { train: tr, test: te } = tasks.task(k);
      expect(tr.count).toBe(100);
      expect(te.count).toBe(100);
      expect(tr.labels).toBeInstanceOf(Int32Array);
      expect(Array.from(tr.labels)).toEqual(Array.from(train.labels));
      expect(Array.from(te.labels)).toEqual(Array.from(test.labels));
      for (const [got, orig] of [[tr.images, train.images], [te.images, test.images]]) {
        expect(got).not.toBe(orig);
        // Element by element: pixel i of image n is the original's pixel perm[i].
        let bad = 0;
        for (let n = 0; n < 100; n++) for (let i = 0; i < 784; i++) if (got[n * 784 + i] !== orig[n * 784 + perms[k][i]]) bad++;
        expect(bad).toBe(0);
        // The images changed, yet each keeps its pixel values, and perms[k]'s inverse (no other) restores them.
        expect(same(got, orig)).toBe(false);
        for (const n of [0, 50, 99]) expect(sorted(got.subarray(n * 784, (n + 1) * 784))).toEqual(sorted(orig.subarray(n * 784, (n + 1) * 784)));
        expect(same(permuteImages(got, inverse(perms[k])), orig)).toBe(true);
        expect(same(permuteImages(got, inverse(perms[3 - k])), orig)).toBe(false);
      }
    }
    // Loading left the originals as they were.
    expect(same(tasks.task(0).train.images, train.images)).toBe(true);
  });

  it('batch(k, indices) is those rows of task(k), from either set', () => {
    const idx = [5, 0, 99, 5, 42];
    for (const set of ['train', 'test'] as const) {
      const whole = tasks.task(2)[set], b = tasks.batch(2, idx, set);
      expect(b.x).toHaveLength(idx.length * 784);
      idx.forEach((n, r) => {
        expect(Array.from(b.x.subarray(r * 784, (r + 1) * 784))).toEqual(Array.from(whole.images.subarray(n * 784, (n + 1) * 784)));
        expect(b.labels[r]).toBe(whole.labels[n]);
      });
    }
    expect(Array.from(tasks.batch(1, Int32Array.from([3])).labels)).toEqual([train.labels[3]]);
    expect(tasks.batch(1, []).x).toHaveLength(0);
  });

  it('batches: seeded shuffled epochs covering every example once, rows equal to batch()', () => {
    const it1 = tasks.batches(1, { batchSize: 32, seed: 3 }), it2 = tasks.batches(1, { batchSize: 32, seed: 3 });
    const other = tasks.batches(1, { batchSize: 32, seed: 4 });
    const epochs: number[][] = [];
    for (let i = 0; i < 12; i++) {
      const a = it1.next(), b = it2.next(), c = other.next();
      // 100 = 32 + 32 + 32 + 4: the last batch of each epoch is smaller.
      expect(a.indices).toHaveLength(i % 4 === 3 ? 4 : 32);
      expect(a.epoch).toBe(Math.floor(i / 4));
      expect(Array.from(b.indices)).toEqual(Array.from(a.indices));
      expect(same(b.x, a.x)).toBe(true);
      if (i === 0) expect(Array.from(c.indices)).not.toEqual(Array.from(a.indices));
      const want = tasks.batch(1, a.indices);
      expect(same(a.x, want.x)).toBe(true);
      expect(Array.from(a.labels)).toEqual(Array.from(want.labels));
      (epochs[a.epoch] ??= []).push(...a.indices);
    }
    for (const e of epochs) expect(sorted(e)).toEqual(range(100));
    expect(epochs[1]).not.toEqual(epochs[0]);
    expect(epochs[0]).not.toEqual(range(100));
    // for ... of gives the same sequence as next().
    const viaIter: number[][] = [];
    for (const b of tasks.batches(1, { batchSize: 32, seed: 3 })) { viaIter.push(Array.from(b.indices)); if (viaIter.length === 5) break; }
    expect(viaIter.flat()).toEqual([...epochs[0], ...epochs[1].slice(0, 32)]);
    // dropLast: three batches of 32 per epoch.
    const dl = tasks.batches(1, { batchSize: 32, seed: 3, dropLast: true });
    const sizes = range(6).map(() => dl.next()).map((b) => [b.indices.length, b.epoch]);
    expect(sizes).toEqual([[32, 0], [32, 0], [32, 0], [32, 1], [32, 1], [32, 1]]);
  });

  it('batches resume exactly from state(), mid-epoch, at an epoch\'s end and before the first batch', () => {
    const run = (it: ReturnType<PermutedTasks['batches']>, n: number) => range(n).map(() => { const b = it.next(); return { i: Array.from(b.indices), x: Array.from(b.x.subarray(0, 784 * 2)), e: b.epoch }; });
    for (const skip of [0, 2, 4, 5, 9]) {
      const a = tasks.batches(2, { batchSize: 32, seed: 8 });
      run(a, skip);
      const saved: PermutedBatchesState = JSON.parse(JSON.stringify(a.state()));
      const rest = run(a, 7);
      const b = tasks.batches(2, { batchSize: 32, seed: 99 }); // another seed: the state alone must fix the sequence
      run(b, 3);
      b.setState(saved);
      expect(run(b, 7)).toEqual(rest);
    }
    // state() is a copy: changing it changes nothing in the stream or its next state().
    const c = tasks.batches(2, { batchSize: 32, seed: 8 });
    c.next();
    const s = c.state(), copy = JSON.parse(JSON.stringify(s));
    s.rng.counter += 5; s.rng.key[0] ^= 1; s.rng.spare.push(0.5); s.position = 64;
    expect(c.state()).toEqual(copy);
  });

  it('rejects mismatched data, bad permutations, tasks, indices and options', () => {
    expect(() => new PermutedTasks(train, test, [])).toThrow(/PermutedTasks: needs at least one permutation/);
    expect(() => new PermutedTasks(train, test, [perms[0], Int32Array.from({ length: 784 }, () => 0)])).toThrow(/PermutedTasks: perms\[1\] is not a permutation: 0 appears twice/);
    expect(() => new PermutedTasks(train, test, [perms[0], new Int32Array(10)])).toThrow(/PermutedTasks: perms\[1\] has 10 entries, expected one per pixel \(784\)/);
    expect(() => new PermutedTasks({ ...train, count: 99 }, test, perms)).toThrow(/PermutedTasks: train.images must be a Float32Array of count x pixels = 99 x 784 values, got 78400 values/);
    expect(() => new PermutedTasks(train, { ...test, labels: test.labels.subarray(0, 50) }, perms)).toThrow(/PermutedTasks: test.labels has 50 entries for 100 images/);
    expect(() => new PermutedTasks(train, { ...test, labels: [...test.labels.subarray(0, 99), 1.5] }, perms)).toThrow(/PermutedTasks: test.labels\[99\] = 1.5 is not a non-negative integer/);
    expect(() => new PermutedTasks(train, undefined as any, perms)).toThrow(/PermutedTasks: test must be \{ images, labels, count \}/);
    expect(() => tasks.task(3)).toThrow(/PermutedTasks.task: task must be an integer in 0..2, got 3/);
    expect(() => tasks.batch(-1, [0])).toThrow(/PermutedTasks.batch: task must be an integer in 0..2, got -1/);
    expect(() => tasks.batch(0, [0, 100], 'test')).toThrow(/PermutedTasks.batch: indices\[1\] = 100 is outside 0..99 \(the test set\)/);
    expect(() => tasks.batch(0, [0], 'val' as any)).toThrow(/PermutedTasks.batch: set must be 'train' or 'test', got "val"/);
    expect(() => tasks.batches(5, { batchSize: 8, seed: 0 })).toThrow(/PermutedTasks.batches: task must be an integer in 0..2, got 5/);
    expect(() => tasks.batches(0, { batchSize: 0, seed: 0 })).toThrow(/PermutedBatches: batchSize must be a positive integer, got 0/);
    expect(() => tasks.batches(0, { batchSize: 8 } as any)).toThrow(/PermutedBatches: seed must be a non-negative integer, got undefined/);
    expect(() => tasks.batches(0, { batchSize: 101, seed: 0, dropLast: true })).toThrow(/PermutedBatches: batchSize 101 exceeds the 100 training examples/);
    const it = tasks.batches(0, { batchSize: 8, seed: 0 });
    expect(() => it.setState({ ...it.state(), position: 101 })).toThrow(/PermutedBatches.setState: not a batch-stream state for 100 examples/);
    expect(() => it.setState({ ...it.state(), rng: { key: [0], counter: 0, spare: [] } as any })).toThrow(/Random.setState: not a random-stream state/);
  });
});
