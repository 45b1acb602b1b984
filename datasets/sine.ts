// Sine regression exactly as Finn et al. (2017), section 5.1: amplitude ~ U[0.1, 5.0], phase ~
// U[0, pi], inputs ~ U[-5, 5]; K support points and K (or `queries`) query points per task.

import type { DType } from '../kernels/backend.js';
import { Random, RandomState } from '../engine/random.js';
import { tensor } from '../engine/ops.js';
import type { Tensor } from '../engine/tensor.js';

export interface SineTask { amplitude: number; phase: number; xs: Float64Array; ys: Float64Array; xq: Float64Array; yq: Float64Array }
export interface SineOptions { shots?: number; queries?: number; seed?: number }

export class SineTasks {
  private readonly rng: Random;
  readonly shots: number;
  readonly queries: number;

  constructor(opts: SineOptions = {}) {
    this.shots = opts.shots ?? 10;
    this.queries = opts.queries ?? this.shots;
    this.rng = new Random(opts.seed ?? 0);
  }

  /** Where the stream of draws stands (for checkpoints); setState continues it exactly. */
  state(): { rng: RandomState } { return { rng: this.rng.state() }; }
  setState(s: { rng: RandomState }): void { this.rng.setState(s.rng); }

  next(): SineTask {
    const amplitude = this.rng.uniformNumber(0.1, 5), phase = this.rng.uniformNumber(0, Math.PI);
    const f = (x: number) => amplitude * Math.sin(x - phase);
    const xs = this.rng.uniformValues(this.shots, -5, 5), xq = this.rng.uniformValues(this.queries, -5, 5);
    return { amplitude, phase, xs, ys: xs.map(f), xq, yq: xq.map(f) };
  }

  /** `n` tasks stacked for batched computation: xs/ys [n, shots, 1], xq/yq [n, queries, 1]. */
  batch(n: number, dtype: DType = 'float32'): { xs: Tensor; ys: Tensor; xq: Tensor; yq: Tensor; tasks: SineTask[] } {
    const tasks = Array.from({ length: n }, () => this.next());
    const cat = (k: 'xs' | 'ys' | 'xq' | 'yq') => Float64Array.from(tasks.flatMap((t) => Array.from(t[k])));
    const s = [n, this.shots, 1], q = [n, this.queries, 1];
    return { xs: tensor(cat('xs'), s, { dtype }), ys: tensor(cat('ys'), s, { dtype }), xq: tensor(cat('xq'), q, { dtype }), yq: tensor(cat('yq'), q, { dtype }), tasks };
  }
}

/** The true curve of a task at given inputs. */
export const sineCurve = (t: Pick<SineTask, 'amplitude' | 'phase'>, x: ArrayLike<number>): Float64Array =>
  Float64Array.from(x, (v) => t.amplitude * Math.sin(v - t.phase));
