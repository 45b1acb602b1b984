// The copy task of Graves et al. (2014), section 4.1: a sequence of random binary vectors, then a
// delimiter, then silence while the network must reproduce the sequence. Seeded and deterministic.

import type { DType } from '../kernels/backend.js';
import { Random, RandomState } from '../engine/random.js';
import { tensor } from '../engine/ops.js';
import type { Tensor } from '../engine/tensor.js';

export interface CopyTaskOptions {
  /** Bits per vector (8 in the paper). */
  width?: number;
  /** Sequence lengths are drawn uniformly from minLength..maxLength (1..20 in the paper). */
  minLength?: number;
  maxLength?: number;
  seed?: number;
}

/**
 * One batch of copy sequences, all of the same length T (so they stack), time-major:
 * `input` [2T + 1, batch, width + 1] (T vectors with channel `width` at 0; one delimiter step with
 * only channel `width` at 1; T all-zero steps) and `target` [T, batch, width], the vectors to
 * reproduce during the last T steps.
 */
export interface CopyBatch { length: number; batch: number; width: number; input: Float32Array; target: Float32Array }

export class CopyTask {
  readonly width: number;
  readonly minLength: number;
  readonly maxLength: number;
  private readonly rng: Random;

  constructor(o: CopyTaskOptions = {}) {
    this.width = o.width ?? 8;
    this.minLength = o.minLength ?? 1;
    this.maxLength = o.maxLength ?? 20;
    if (!(Number.isInteger(this.width) && this.width >= 1)) throw new Error(`CopyTask: width must be a positive integer, got ${this.width}`);
    if (!(Number.isInteger(this.minLength) && this.minLength >= 1 && this.maxLength >= this.minLength)) {
      throw new Error(`CopyTask: need 1 <= minLength <= maxLength, got ${this.minLength}..${this.maxLength}`);
    }
    this.rng = new Random(o.seed ?? 0);
  }

  /** Where the stream of draws stands (for checkpoints); setState continues it exactly. */
  state(): { rng: RandomState } { return { rng: this.rng.state() }; }
  setState(s: { rng: RandomState }): void { this.rng.setState(s.rng); }

  /** A batch of sequences; the length is drawn from the configured range unless given. */
  next(batch: number, length?: number): CopyBatch {
    const T = length ?? this.minLength + this.rng.int(this.maxLength - this.minLength + 1);
    const w = this.width, c = w + 1;
    const input = new Float32Array((2 * T + 1) * batch * c), target = new Float32Array(T * batch * w);
    for (let t = 0; t < T; t++) {
      for (let b = 0; b < batch; b++) {
        for (let j = 0; j < w; j++) {
          const bit = this.rng.next() < 0.5 ? 0 : 1;
          input[(t * batch + b) * c + j] = bit;
          target[(t * batch + b) * w + j] = bit;
        }
      }
    }
    for (let b = 0; b < batch; b++) input[(T * batch + b) * c + w] = 1;
    return { length: T, batch, width: w, input, target };
  }
}

/** A copy batch as tensors: input [2T + 1, batch, width + 1], target [T, batch, width]. */
export function copyTensors(b: CopyBatch, dtype: DType = 'float32'): { input: Tensor; target: Tensor } {
  return {
    input: tensor(b.input, [2 * b.length + 1, b.batch, b.width + 1], { dtype }),
    target: tensor(b.target, [b.length, b.batch, b.width], { dtype }),
  };
}
