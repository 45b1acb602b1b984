// Episodes for memory-augmented one-shot learning (Santoro et al. 2016): a sequence of images from a
// few classes, each image's label shown one step later, so the network must bind an image to the
// label that follows it and recall the binding when the class comes back. Labels are re-drawn for
// every episode, so nothing about a class's label can be stored in the weights.

import type { DType } from '../kernels/backend.js';
import { Random, RandomState } from '../engine/random.js';
import { tensor } from '../engine/ops.js';
import type { Tensor } from '../engine/tensor.js';
import type { ClassDataset } from './sampler.js';

export interface LabelDelayOptions {
  /** Classes per episode (5 in the paper's main figure). */
  ways?: number;
  /** Instances of each class per episode (10 in the paper: 50 steps for 5 ways). */
  instances?: number;
  seed?: number;
}

/**
 * A batch of episodes, time-major. `input` [steps, batch, pixels + ways]: image t flattened, then the
 * one-hot label of step t - 1 (zeros at t = 0). `labels` [steps * batch] (index t * batch + b): the
 * label to predict at step t. `instance` [steps * batch]: 1 for a class's first appearance in its
 * episode, 2 for the second, ...
 */
export interface LabelDelayBatch { steps: number; batch: number; ways: number; pixels: number; input: Float32Array; labels: Int32Array; instance: Int32Array }

export class LabelDelayEpisodes {
  readonly ways: number;
  readonly instances: number;
  private readonly rng: Random;
  private readonly pixels: number;

  constructor(readonly data: ClassDataset, o: LabelDelayOptions = {}) {
    this.ways = o.ways ?? 5;
    this.instances = o.instances ?? 10;
    if (this.ways > data.numClasses) throw new Error(`LabelDelayEpisodes: ${this.ways} ways but the dataset has ${data.numClasses} classes`);
    for (let c = 0; c < data.numClasses; c++) {
      if (data.examplesOf(c) < this.instances) {
        throw new Error(`LabelDelayEpisodes: class ${data.className(c)} has ${data.examplesOf(c)} examples, fewer than ${this.instances} instances`);
      }
    }
    this.pixels = data.imageShape.reduce((a, b) => a * b, 1);
    this.rng = new Random(o.seed ?? 0);
  }

  /** Where the stream of draws stands (for checkpoints); setState continues it exactly. */
  state(): { rng: RandomState } { return { rng: this.rng.state() }; }
  setState(s: { rng: RandomState }): void { this.rng.setState(s.rng); }

  next(batch: number): LabelDelayBatch {
    const { ways, instances, pixels } = this, steps = ways * instances, C = pixels + ways;
    const input = new Float32Array(steps * batch * C), labels = new Int32Array(steps * batch), instance = new Int32Array(steps * batch);
    const img = new Float32Array(pixels);
    for (let b = 0; b < batch; b++) {
      // Classes drawn afresh, their labels a random permutation, the order of the 50 images shuffled.
      const classes = this.rng.choice(this.data.numClasses, ways);
      const picks = classes.map((c) => this.rng.choice(this.data.examplesOf(c), instances));
      const order = this.rng.shuffle(Array.from({ length: steps }, (_, i) => i));
      const seen = new Array(ways).fill(0);
      order.forEach((slot, t) => {
        const label = Math.floor(slot / instances);
        this.data.writeImage(classes[label], picks[label][slot % instances], img, 0);
        const at = (t * batch + b) * C;
        input.set(img, at);
        if (t + 1 < steps) input[((t + 1) * batch + b) * C + pixels + label] = 1;
        labels[t * batch + b] = label;
        instance[t * batch + b] = ++seen[label];
      });
    }
    return { steps, batch, ways, pixels, input, labels, instance };
  }
}

/** The input as a tensor [steps, batch, pixels + ways]. */
export const labelDelayInput = (b: LabelDelayBatch, dtype: DType = 'float32'): Tensor =>
  tensor(b.input, [b.steps, b.batch, b.pixels + b.ways], { dtype });
