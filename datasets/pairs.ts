// Verification pairs for Siamese networks (Koch et al. 2015): two images and whether they show the
// same class. Exactly half of every batch are same-class pairs (even rows) and half different-class
// pairs (odd rows), so the two kinds stay balanced batch by batch; everything else is drawn from a
// seeded stream, so a seed fixes the whole sequence of batches. With `distort`, each image of a
// pair gets its own random affine distortion (Koch et al.'s training augmentation, augment.ts),
// from a second stream, so the pairs drawn are the same with and without it.

import type { DType } from '../kernels/backend.js';
import { Random, RandomState } from '../engine/random.js';
import { tensor } from '../engine/ops.js';
import type { Tensor } from '../engine/tensor.js';
import type { ClassDataset } from './sampler.js';
import { AffineDistortionOptions, applyAffine, drawAffine } from './augment.js';

export interface PairBatch {
  /** [batch, ...imageShape] each. */
  x1: Tensor;
  x2: Tensor;
  /** [batch]: 1 for a same-class pair, 0 otherwise. */
  same: Tensor;
  /** The dataset classes and example indices behind each side. */
  class1: Int32Array;
  class2: Int32Array;
  example1: Int32Array;
  example2: Int32Array;
}

export interface PairSamplerOptions {
  /** Distort every image with a random affine transform (true: Koch et al.'s ranges). */
  distort?: boolean | AffineDistortionOptions;
}

export class PairSampler {
  private readonly rng: Random;
  private readonly distortRng: Random;
  private readonly distort: AffineDistortionOptions | null;

  /** Draws pairs from `data` only (give it the training split); `batchSize` must be even. */
  constructor(readonly data: ClassDataset, readonly batchSize: number, seed = 0, o: PairSamplerOptions = {}) {
    if (!Number.isInteger(batchSize) || batchSize < 2 || batchSize % 2) throw new Error(`PairSampler: batch size must be an even number >= 2, got ${batchSize}`);
    if (data.numClasses < 2) throw new Error(`PairSampler: need at least 2 classes for different-class pairs, the dataset has ${data.numClasses}`);
    for (let c = 0; c < data.numClasses; c++) {
      if (data.examplesOf(c) < 2) throw new Error(`PairSampler: class ${data.className(c)} has ${data.examplesOf(c)} example(s), fewer than the 2 a same-class pair needs`);
    }
    this.rng = new Random(seed);
    this.distortRng = new Random(seed + 7_919);
    this.distort = o.distort ? (o.distort === true ? {} : o.distort) : null;
    if (this.distort && data.imageShape.length !== 3) throw new Error(`PairSampler: distort needs images [channels, height, width], got [${data.imageShape}]`);
  }

  /** Where the streams of draws stand (for checkpoints); setState continues them exactly. */
  state(): { rng: RandomState; distort: RandomState } { return { rng: this.rng.state(), distort: this.distortRng.state() }; }
  setState(s: { rng: RandomState; distort: RandomState }): void { this.rng.setState(s.rng); this.distortRng.setState(s.distort); }

  next(dtype: DType = 'float32'): PairBatch {
    const n = this.batchSize, per = this.data.imageShape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n * per), b = new Float32Array(n * per), same = new Float32Array(n);
    const class1 = new Int32Array(n), class2 = new Int32Array(n), example1 = new Int32Array(n), example2 = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let c1: number, c2: number, e1: number, e2: number;
      if (i % 2 === 0) {
        c1 = c2 = this.rng.int(this.data.numClasses);
        [e1, e2] = this.rng.choice(this.data.examplesOf(c1), 2); // two different drawings of one class
        same[i] = 1;
      } else {
        [c1, c2] = this.rng.choice(this.data.numClasses, 2);
        e1 = this.rng.int(this.data.examplesOf(c1));
        e2 = this.rng.int(this.data.examplesOf(c2));
      }
      this.data.writeImage(c1, e1, a, i * per);
      this.data.writeImage(c2, e2, b, i * per);
      if (this.distort) {
        const [C, H, W] = this.data.imageShape;
        for (const img of [a, b]) {
          const orig = img.slice(i * per, (i + 1) * per);
          applyAffine(drawAffine(this.distortRng, H, W, this.distort), orig, 0, img, i * per, H, W, C);
        }
      }
      class1[i] = c1; class2[i] = c2; example1[i] = e1; example2[i] = e2;
    }
    const shape = [n, ...this.data.imageShape];
    return { x1: tensor(a, shape, { dtype }), x2: tensor(b, shape, { dtype }), same: tensor(same, [n], { dtype }), class1, class2, example1, example2 };
  }
}
