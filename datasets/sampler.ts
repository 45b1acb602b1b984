// Episodic N-way K-shot sampling: draw N classes, K support and Q query examples of each, and
// relabel the classes 0..N-1 in the order drawn. Images are written straight into one flat buffer
// per set, so sampling costs a few copies per episode.

import type { DType } from '../kernels/backend.js';
import { Random, RandomState } from '../engine/random.js';
import { tensor } from '../engine/ops.js';
import type { Tensor } from '../engine/tensor.js';

/** A labelled image collection that episodes can be drawn from. */
export interface ClassDataset {
  readonly numClasses: number;
  /** Shape of one example, e.g. [1, 28, 28]. */
  readonly imageShape: readonly number[];
  examplesOf(c: number): number;
  className(c: number): string;
  /** Writes example i of class c into out at offset. */
  writeImage(c: number, i: number, out: Float32Array, offset: number): void;
}

export interface Episode {
  /** [ways * shots, ...imageShape], class-major: all shots of label 0, then of label 1, ... */
  support: Float32Array;
  supportLabels: Int32Array;
  /** [ways * queries, ...imageShape], class-major. */
  query: Float32Array;
  queryLabels: Int32Array;
  /** The dataset classes behind labels 0..ways-1. */
  classes: number[];
  imageShape: readonly number[];
}

export interface EpisodeOptions { ways: number; shots: number; queries: number; seed?: number }

export class EpisodeSampler {
  private readonly rng: Random;

  constructor(readonly data: ClassDataset, readonly opts: EpisodeOptions) {
    const { ways, shots, queries } = opts;
    if (ways > data.numClasses) throw new Error(`EpisodeSampler: ${ways} ways but the dataset has ${data.numClasses} classes`);
    for (let c = 0; c < data.numClasses; c++) {
      if (data.examplesOf(c) < shots + queries) {
        throw new Error(`EpisodeSampler: class ${data.className(c)} has ${data.examplesOf(c)} examples, fewer than ${shots} shots + ${queries} queries`);
      }
    }
    this.rng = new Random(opts.seed ?? 0);
  }

  /** Where the stream of draws stands (for checkpoints); setState continues it exactly. */
  state(): { rng: RandomState } { return { rng: this.rng.state() }; }
  setState(s: { rng: RandomState }): void { this.rng.setState(s.rng); }

  next(): Episode {
    const { ways, shots, queries } = this.opts;
    const per = this.data.imageShape.reduce((a, b) => a * b, 1);
    const classes = this.rng.choice(this.data.numClasses, ways);
    const support = new Float32Array(ways * shots * per), query = new Float32Array(ways * queries * per);
    const supportLabels = new Int32Array(ways * shots), queryLabels = new Int32Array(ways * queries);
    classes.forEach((c, label) => {
      const picks = this.rng.choice(this.data.examplesOf(c), shots + queries);
      picks.forEach((ex, j) => {
        if (j < shots) {
          this.data.writeImage(c, ex, support, (label * shots + j) * per);
          supportLabels[label * shots + j] = label;
        } else {
          this.data.writeImage(c, ex, query, (label * queries + j - shots) * per);
          queryLabels[label * queries + j - shots] = label;
        }
      });
    });
    return { support, supportLabels, query, queryLabels, classes, imageShape: this.data.imageShape };
  }
}

/** An episode as tensors: xs [N*K, ...], xq [N*Q, ...], labels as Int32Arrays. */
export function episodeTensors(e: Episode, dtype: DType = 'float32'): { xs: Tensor; ys: Int32Array; xq: Tensor; yq: Int32Array } {
  return {
    xs: tensor(e.support, [e.supportLabels.length, ...e.imageShape], { dtype }),
    ys: e.supportLabels,
    xq: tensor(e.query, [e.queryLabels.length, ...e.imageShape], { dtype }),
    yq: e.queryLabels,
  };
}

/** Plain supervised batches over all classes of a dataset (labels are the dataset's class indices). */
export class BatchSampler {
  private readonly rng: Random;
  constructor(readonly data: ClassDataset, readonly batchSize: number, seed = 0) { this.rng = new Random(seed); }

  /** Where the stream of draws stands (for checkpoints); setState continues it exactly. */
  state(): { rng: RandomState } { return { rng: this.rng.state() }; }
  setState(s: { rng: RandomState }): void { this.rng.setState(s.rng); }

  next(dtype: DType = 'float32'): { x: Tensor; labels: Int32Array } {
    const per = this.data.imageShape.reduce((a, b) => a * b, 1);
    const buf = new Float32Array(this.batchSize * per), labels = new Int32Array(this.batchSize);
    for (let i = 0; i < this.batchSize; i++) {
      const c = this.rng.int(this.data.numClasses);
      this.data.writeImage(c, this.rng.int(this.data.examplesOf(c)), buf, i * per);
      labels[i] = c;
    }
    return { x: tensor(buf, [this.batchSize, ...this.data.imageShape], { dtype }), labels };
  }
}
