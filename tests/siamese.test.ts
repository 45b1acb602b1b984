// Siamese networks (Koch et al. 2015): the verification loss and its gradient against float64
// finite differences, one-shot classification by the most similar support image, the pair
// sampler, Lake's original 20-way one-shot runs (all_runs.zip), and a short training run on
// Omniglot whose loss falls with a flat memory footprint.

import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { SiameseNetwork, conv4Embedding, SiameseEmbedding, Task } from '../algorithms/index.js';
import { EpisodeSampler, Omniglot, PairSampler, ZipArchive, episodeTensors, loadLakeRuns, ClassDataset, applyAffine, drawAffine } from '../datasets/index.js';
import { fdMismatch } from './support/finite-differences.js';
import { activate } from './support/backends.js';

const ROOT = new URL('../../shared/data/omniglot', import.meta.url).pathname;
const RUNS_ZIP = join(ROOT, 'all_runs.zip');
const f64 = { dtype: 'float64' as const };

/** A tiny conv embedding: 3x3 conv (2 filters), batch norm (batch statistics), ReLU, 2x2 max-pool. */
function tinyEmbedding(rng: mg.Random): SiameseEmbedding<any> {
  return {
    params: { conv: mg.nn.initConv2d(rng, 1, 2, 3, f64), bn: mg.nn.initBatchNorm(2, f64) },
    featureDim: 2 * 3 * 3,
    embed: (p, x) => mg.flatten(mg.maxPool2d(mg.nn.batchNorm(p.bn, mg.nn.conv2dLayer(p.conv, x, { padding: 1 }), { stats: 'batch' }).y.relu(), 2)),
  };
}

describe('Siamese verification loss', () => {
  it('binary cross-entropy from logits matches the textbook formula and stays finite at extreme logits', async () => {
    await activate('ref');
    mg.tidy(() => {
      const z = [-3, -0.5, 0, 0.7, 4], t = [0, 1, 1, 0, 1];
      const want = z.reduce((s, zi, i) => { const p = 1 / (1 + Math.exp(-zi)); return s - (t[i] * Math.log(p) + (1 - t[i]) * Math.log(1 - p)); }, 0) / z.length;
      expect(mg.nn.binaryCrossEntropyWithLogits(mg.tensor(z, [5], f64), mg.tensor(t, [5], f64)).dataSync()[0]).toBeCloseTo(want, 12);
      // log(sigmoid(-800)) would be -inf; from the logits it is exactly 800.
      const big = mg.nn.binaryCrossEntropyWithLogits(mg.tensor([-800, 800], [2], f64), mg.tensor([1, 0], [2], f64)).dataSync()[0];
      expect(big).toBeCloseTo(800, 9);
      expect(() => mg.nn.binaryCrossEntropyWithLogits(mg.tensor([1, 2], [2], f64), mg.tensor([1], [1], f64))).toThrow(/binaryCrossEntropyWithLogits.*\[2\].*\[1\]/);
    });
  });

  it('the loss on a tiny batch of pairs equals its definition, and its gradient matches float64 central differences', async () => {
    await activate('ref');
    mg.tidy(() => {
      const rng = new mg.Random(11);
      const net = new SiameseNetwork({ embedding: tinyEmbedding(rng), rng });
      const pairs = { x1: rng.normal([4, 1, 6, 6], f64), x2: rng.normal([4, 1, 6, 6], f64), same: mg.tensor([1, 0, 1, 0], [4], f64) };
      // Definition: sigmoid(w . |f(x1) - f(x2)| + b), both sides embedded in one batch.
      const p = net.params as any;
      const f = net.embedding.embed(p.embed, mg.concat([pairs.x1, pairs.x2]), { step: 0, training: true }).dataSync();
      const w = p.head.w.dataSync(), b = p.head.b.dataSync()[0], d = 18;
      const want = [1, 0, 1, 0].reduce((s, t, i) => {
        let z = b;
        for (let k = 0; k < d; k++) z += w[k] * Math.abs(f[i * d + k] - f[(i + 4) * d + k]);
        return s + Math.log1p(Math.exp(z)) - t * z;
      }, 0) / 4;
      expect(net.loss(net.params, pairs).dataSync()[0]).toBeCloseTo(want, 12);
      expect(fdMismatch((q: any) => net.loss(q, pairs), net.params)).toBeLessThan(1e-6);
      net.dispose();
    });
  });

  it('classifies a query by its most similar support image', async () => {
    await activate('ref');
    const rng = new mg.Random(3);
    // Raw pixels as features and a head of -1s: similarity falls with the L1 distance, so each query
    // (a noisy copy of one support image) must get that image's label.
    const embedding: SiameseEmbedding<any> = { params: {}, featureDim: 16, embed: (_p, x) => mg.flatten(x) };
    const net = new SiameseNetwork({ embedding, rng, dtype: 'float64' });
    net.params.head.w.dispose();
    net.params.head.w = mg.keep(mg.full([16, 1], -1, f64));
    const xs = rng.normal([5, 1, 4, 4], f64);
    const order = [3, 0, 4, 4, 1, 2];
    const xq = mg.tidy(() => mg.keep(mg.add(mg.gather(xs, order), mg.mul(rng.normal([6, 1, 4, 4], f64), 0.01))));
    const ys = Int32Array.from([7, 8, 9, 10, 11]);
    const task: Task = { xs, ys, xq, yq: Int32Array.from(order, (j) => ys[j]) };
    expect(Array.from(await net.classify(task))).toEqual(order.map((j) => ys[j]));
    const r = await net.evaluate([task]);
    expect(r.accuracy.mean).toBe(1);
    expect(r.trials.n).toBe(6);
    // Wrong labels on the query make every trial a miss.
    const r2 = await net.evaluate([{ ...task, yq: Int32Array.from(order, (j) => ys[(j + 1) % 5]) }]);
    expect(r2.accuracy.mean).toBe(0);
    await expect(net.evaluate([{ ...task, ys: xs }])).rejects.toThrow(/support labels must be class indices/);
    xs.dispose(); xq.dispose(); net.dispose();
  });
});

/** A dataset whose image pixels spell out their class and example, and which refuses unknown classes. */
function labelledDataset(numClasses: number, examples: number): ClassDataset {
  return {
    numClasses, imageShape: [1, 1, 2], examplesOf: () => examples, className: (c) => `class${c}`,
    writeImage: (c, i, out, offset) => {
      if (c < 0 || c >= numClasses || i < 0 || i >= examples) throw new Error(`no image ${c}/${i}`);
      out[offset] = c; out[offset + 1] = i;
    },
  };
}

describe('PairSampler', () => {
  it('half same-class pairs, labels that match the images, distinct drawings in same pairs', async () => {
    await activate('wasm');
    const s = new PairSampler(labelledDataset(7, 3), 16, 5);
    for (let n = 0; n < 20; n++) {
      await mg.tidy(async () => {
        const b = s.next();
        expect(b.x1.shape).toEqual([16, 1, 1, 2]);
        const a = await b.x1.data(), c = await b.x2.data(), same = await b.same.data();
        expect(Array.from(same).filter((v) => v === 1).length).toBe(8);
        for (let i = 0; i < 16; i++) {
          expect([a[2 * i], a[2 * i + 1], c[2 * i], c[2 * i + 1]]).toEqual([b.class1[i], b.example1[i], b.class2[i], b.example2[i]]);
          expect(same[i] === 1).toBe(b.class1[i] === b.class2[i]);
          if (same[i] === 1) expect(b.example1[i]).not.toBe(b.example2[i]);
        }
      });
    }
  });

  it('is deterministic under a seed and differs across seeds', async () => {
    await activate('wasm');
    const draw = (seed: number) => mg.tidy(() => {
      const s = new PairSampler(labelledDataset(30, 20), 32, seed);
      return [0, 1, 2].flatMap(() => { const b = s.next(); return [...b.class1, ...b.class2, ...b.example1, ...b.example2]; });
    });
    expect(draw(4)).toEqual(draw(4));
    expect(draw(4)).not.toEqual(draw(5));
  });

  it('roughly uniform over classes, and rejects batches it cannot balance', () => {
    const s = new PairSampler(labelledDataset(4, 2), 200, 1);
    const counts = [0, 0, 0, 0];
    mg.tidy(() => { const b = s.next(); b.class1.forEach((c) => counts[c]++); b.class2.forEach((c) => counts[c]++); });
    counts.forEach((n) => expect(n).toBeGreaterThan(60));
    expect(() => new PairSampler(labelledDataset(4, 2), 7)).toThrow(/even/);
    expect(() => new PairSampler(labelledDataset(1, 5), 8)).toThrow(/at least 2 classes/);
    expect(() => new PairSampler(labelledDataset(4, 1), 8)).toThrow(/class0 has 1 example/);
  });
});

describe('affine distortions (Koch et al.)', () => {
  const H = 9, W = 9;
  const dot = (y: number, x: number) => { const img = new Float32Array(H * W); img[y * W + x] = 1; return img; };
  const where = (img: Float32Array) => { let sy = 0, sx = 0, m = 0; img.forEach((v, i) => { sy += v * Math.floor(i / W); sx += v * (i % W); m += v; }); return [sy / m, sx / m, m]; };

  it('the identity and pure translations move pixels exactly; a rotation by 90 degrees turns the image', () => {
    const src = dot(2, 6), out = new Float32Array(H * W);
    applyAffine({ a: [1, 0, 0, 1], tx: 0, ty: 0 }, src, 0, out, 0, H, W);
    expect(Array.from(out)).toEqual(Array.from(src));
    applyAffine({ a: [1, 0, 0, 1], tx: 1, ty: -2 }, src, 0, out, 0, H, W);
    expect(Array.from(out)).toEqual(Array.from(dot(0, 7)));
    // p = A^-1 (q - c) + c: the output at q = A (p - c) + c; A = [0 -1; 1 0] maps (x, y) = (6, 2)
    // about the centre (4, 4) to (4 + 2, 4 + 2) = (6, 6).
    applyAffine({ a: [0, -1, 1, 0], tx: 0, ty: 0 }, src, 0, out, 0, H, W);
    expect(Array.from(out)).toEqual(Array.from(dot(6, 6)));
    // Half a pixel: bilinear weights split the dot over two columns.
    applyAffine({ a: [1, 0, 0, 1], tx: 0.5, ty: 0 }, src, 0, out, 0, H, W);
    expect([out[2 * W + 6], out[2 * W + 7]]).toEqual([0.5, 0.5]);
    expect(() => applyAffine({ a: [1, 2, 2, 4], tx: 0, ty: 0 }, src, 0, out, 0, H, W)).toThrow(/singular/);
  });

  it('drawn transforms stay in Koch et al.\'s ranges, each component present about half the time; p = 0 is the identity', () => {
    const rng = new mg.Random(3);
    let translated = 0;
    for (let i = 0; i < 400; i++) {
      const t = drawAffine(rng, 105, 105);
      expect(Math.abs(t.tx)).toBeLessThanOrEqual(2);
      expect(Math.abs(t.ty)).toBeLessThanOrEqual(2);
      const det = t.a[0] * t.a[3] - t.a[1] * t.a[2];
      expect(det).toBeGreaterThan(0.8 * 0.8 * (1 - 0.3 * 0.3) - 1e-9);
      expect(det).toBeLessThan(1.2 * 1.2 * (1 + 0.3 * 0.3));
      if (t.tx !== 0) translated++;
    }
    expect(translated).toBeGreaterThan(150);
    expect(translated).toBeLessThan(250);
    expect(drawAffine(new mg.Random(1), 28, 28, { p: 0 })).toEqual({ a: [1, 0, 0, 1], tx: 0, ty: 0 });
  });

  it('PairSampler with distort: the same pairs as without, each image distorted, ink kept in range', async () => {
    await activate('wasm');
    const blob: ClassDataset = {
      numClasses: 6, imageShape: [1, H, W], examplesOf: () => 4, className: (c) => `c${c}`,
      writeImage: (c, i, out, offset) => { out.fill(0, offset, offset + H * W); for (let y = 3; y < 6; y++) for (let x = 3; x < 6; x++) out[offset + y * W + x] = (c + i + 1) / 10; },
    };
    const plain = new PairSampler(blob, 32, 4), bent = new PairSampler(blob, 32, 4, { distort: true });
    await mg.tidy(async () => {
      const a = plain.next(), b = bent.next();
      expect([...b.class1, ...b.class2, ...b.example1, ...b.example2]).toEqual([...a.class1, ...a.class2, ...a.example1, ...a.example2]);
      const x = await a.x1.data(), y = await b.x1.data();
      let changed = 0;
      for (let i = 0; i < 32; i++) {
        const img = y.slice(i * H * W, (i + 1) * H * W) as Float32Array;
        if (img.some((v, k) => Math.abs(v - x[i * H * W + k]) > 1e-6)) changed++;
        expect(Math.max(...img)).toBeLessThanOrEqual(Math.max(...x.slice(i * H * W, (i + 1) * H * W)) + 1e-6);
        expect(Math.min(...img)).toBeGreaterThanOrEqual(0);
        // The blob stays near the centre: translations are at most 2/105 of the side.
        const [cy, cx] = where(img);
        expect(Math.abs(cy - 4)).toBeLessThan(1.5);
        expect(Math.abs(cx - 4)).toBeLessThan(1.5);
      }
      // With 7 components each on with p = 0.5, an image is left as it is with probability 1/128.
      expect(changed).toBeGreaterThan(28);
    });
    expect(() => new PairSampler({ ...labelledDataset(4, 2), imageShape: [2] }, 8, 0, { distort: true })).toThrow(/distort needs images \[channels, height, width\]/);
  });
});

describe('Omniglot-backed pairs and Lake runs', () => {
  let omni: Omniglot;
  beforeAll(() => { omni = Omniglot.load({ root: ROOT, cacheDir: join(tmpdir(), 'metagrad-test-cache') }); }, 120_000);

  it("the 'background' split: images_background characters to train on, images_evaluation to test on, unrotated", () => {
    const train = omni.split('train', 'background'), test = omni.split('test', 'background');
    expect([train.numClasses, test.numClasses]).toEqual([964, 659]);
    expect(train.className(0)).toBe('Alphabet_of_the_Magi/character01/rot000');
    expect(test.className(0)).toBe('Angelic/character01/rot000');
    expect(() => omni.split('val', 'background')).toThrow(/no validation split/);
  });

  it('pairs from the Vinyals training split only ever show training classes', async () => {
    await activate('wasm');
    const train = omni.split('train');
    const trainNames = new Set(readFileSync(join(ROOT, 'splits/vinyals/train.txt'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean));
    const testNames = new Set(readFileSync(join(ROOT, 'splits/vinyals/test.txt'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean));
    const s = new PairSampler(train, 64, 9);
    const want = new Float32Array(28 * 28);
    for (let n = 0; n < 5; n++) {
      await mg.tidy(async () => {
        const b = s.next(), x1 = await b.x1.data();
        for (let i = 0; i < 64; i++) {
          for (const c of [b.class1[i], b.class2[i]]) {
            expect(trainNames.has(train.className(c))).toBe(true);
            expect(testNames.has(train.className(c))).toBe(false);
          }
          train.writeImage(b.class1[i], b.example1[i], want, 0);
          expect(x1.subarray(i * 784, (i + 1) * 784)).toEqual(want);
        }
      });
    }
  });

  it("Lake's all_runs.zip: 20 runs of 20 support + 20 query images, labels from class_labels.txt", () => {
    const runs = loadLakeRuns(RUNS_ZIP);
    expect(runs.map((r) => r.name)).toEqual(Array.from({ length: 20 }, (_, i) => `run${String(i + 1).padStart(2, '0')}`));
    const zip = new ZipArchive(RUNS_ZIP);
    for (const r of runs) {
      expect(r.imageShape).toEqual([1, 28, 28]);
      expect(r.support.length).toBe(20 * 784);
      expect(r.query.length).toBe(20 * 784);
      expect(Array.from(r.supportLabels)).toEqual(Array.from({ length: 20 }, (_, k) => k));
      // Every class is tested exactly once in each run.
      expect([...r.queryLabels].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, k) => k));
      const lines = zip.read(`${r.name}/class_labels.txt`).toString('utf8').trim().split(/\r?\n/);
      lines.forEach((line, i) => {
        const [item, cls] = line.trim().split(/\s+/);
        expect(r.queryFiles[i]).toBe(item);
        expect(r.supportFiles[r.queryLabels[i]]).toBe(cls);
      });
      // Ink is 1, background 0, as from the Omniglot loader.
      const mean = r.support.reduce((a, b) => a + b, 0) / r.support.length;
      expect(mean).toBeGreaterThan(0.02);
      expect(mean).toBeLessThan(0.4);
    }
    expect(loadLakeRuns(RUNS_ZIP, { size: 14 })[0].imageShape).toEqual([1, 14, 14]);
  });

  it('Lake run images are preprocessed exactly as the Omniglot loader preprocesses the same drawings', () => {
    const run = loadLakeRuns(RUNS_ZIP)[0];
    // Index the evaluation set's images (drawn from images_evaluation.zip, unrotated) by their bytes.
    const buf = new Float32Array(784), seen = new Map<string, string>();
    for (let c = omni.backgroundCount; c < omni.characters.length; c++) {
      for (let d = 0; d < 20; d++) {
        omni.writeImage(c, d, 0, buf, 0);
        seen.set(Buffer.from(buf.buffer).toString('base64'), `${omni.characters[c]}/${d}`);
      }
    }
    for (const set of [run.support, run.query]) {
      for (let i = 0; i < 20; i++) expect(seen.has(Buffer.from(set.slice(i * 784, (i + 1) * 784).buffer).toString('base64'))).toBe(true);
    }
    // And each query's class is a different drawing of the same character as its support image.
    for (let i = 0; i < 20; i++) {
      const key = (set: Float32Array, j: number) => seen.get(Buffer.from(set.slice(j * 784, (j + 1) * 784).buffer).toString('base64'))!;
      const q = key(run.query, i), s = key(run.support, run.queryLabels[i]);
      expect(q.replace(/\/\d+$/, '')).toBe(s.replace(/\/\d+$/, ''));
      expect(q).not.toBe(s);
    }
  });

  it('errors name the file: missing, truncated, corrupt entry, not the runs archive', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lake-runs-'));
    expect(() => loadLakeRuns(join(dir, 'nowhere.zip'))).toThrow(/nowhere\.zip: cannot read the archive/);
    const bytes = readFileSync(RUNS_ZIP);
    writeFileSync(join(dir, 'truncated.zip'), bytes.subarray(0, bytes.length >> 1));
    expect(() => loadLakeRuns(join(dir, 'truncated.zip'))).toThrow(/truncated\.zip: not a zip archive/);
    // Flip a byte inside run03's first training image.
    const zip = new ZipArchive(RUNS_ZIP), e = zip.entries.get('run03/training/class01.png')!;
    const bad = Buffer.from(bytes), start = e.headerOffset + 30 + bad.readUInt16LE(e.headerOffset + 26) + bad.readUInt16LE(e.headerOffset + 28);
    bad[start + (e.compressedSize >> 1)] ^= 0x5a;
    writeFileSync(join(dir, 'corrupt.zip'), bad);
    expect(() => loadLakeRuns(join(dir, 'corrupt.zip'))).toThrow(/corrupt\.zip.*run03\/training\/class01\.png/);
    expect(() => loadLakeRuns(join(ROOT, 'images_background_small1.zip'))).toThrow(/images_background_small1\.zip: has no entry 'run01\/class_labels\.txt'/);
  });

  it('a short training run on Omniglot pairs: the loss falls, memory stays flat, and 5-way one-shot beats chance', async () => {
    await activate('wasm');
    const rng = new mg.Random(0);
    const net = new SiameseNetwork({ embedding: conv4Embedding(rng, { filters: 32 }), rng, optimizer: mg.optim.adam({ lr: 3e-3 }) });
    const pairs = new PairSampler(omni.split('train'), 32, 1);
    const step = () => mg.tidy(() => net.step(pairs.next()));
    const losses = [await step()];
    const mem = mg.memory();
    for (let i = 1; i < 100; i++) losses.push(await step());
    expect(mg.memory(), 'training keeps a flat footprint').toEqual(mem);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-20))).toBeLessThan(mean(losses.slice(0, 20)) - 0.1);
    const test = new EpisodeSampler(omni.split('test'), { ways: 5, shots: 1, queries: 2, seed: 3 });
    const r = await mg.tidy(() => net.evaluate(Array.from({ length: 20 }, () => episodeTensors(test.next()))));
    expect(mg.memory(), 'evaluation frees what it makes').toEqual(mem);
    expect(r.accuracy.mean).toBeGreaterThan(0.35);
    // The Lake runs go through the same path (episodes -> tasks).
    const lake = await mg.tidy(() => net.evaluate(loadLakeRuns(RUNS_ZIP).slice(0, 2).map((e) => episodeTensors(e))));
    expect(lake.trials.n).toBe(40);
    net.dispose();
  }, 120_000);
});
