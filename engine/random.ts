// Seeded, counter-based random numbers (Philox4x32-10, Salmon et al. 2011). Values are made on the
// host from (key, counter) alone, so a stream is the same on every backend and in both dtypes.

import type { DType } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';
import { checkAllocation, fromValues } from './runtime.js';
import { checkDtype, checkOptions, checkShape } from './validate.js';
import type { Tensor } from './tensor.js';

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** High and low 32 bits of a 32x32-bit product, exactly, in doubles. */
function mulhilo(a: number, b: number): [number, number] {
  const aH = a >>> 16, aL = a & 0xffff, bH = b >>> 16, bL = b & 0xffff;
  const ll = aL * bL, hl = aH * bL, lh = aL * bH;
  const mid = (ll >>> 16) + (hl & 0xffff) + (lh & 0xffff);
  const hi = (aH * bH + (hl >>> 16) + (lh >>> 16) + (mid >>> 16)) >>> 0;
  return [hi, Math.imul(a, b) >>> 0];
}

/** One Philox4x32-10 block: four 32-bit words from a 64-bit key and a 128-bit counter. */
export function philox(k0: number, k1: number, c0: number, c1: number, c2 = 0, c3 = 0): [number, number, number, number] {
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

export interface RandomOptions { dtype?: DType }

/** Where a stream stands: its key, block counter and the unused half of its last block. */
export interface RandomState { key: [number, number]; counter: number; spare: number[] }

/**
 * A reproducible stream: `new Random(seed)` gives the same numbers on every run and backend.
 * @example const rng = new Random(42); const w = rng.normal([64, 32], { std: 0.1 });
 */
export class Random {
  private k0: number;
  private k1: number;
  private counter = 0;
  private spare: number[] = [];

  constructor(seed = 0) {
    this.k0 = seed >>> 0;
    this.k1 = Math.floor(seed / 2 ** 32) >>> 0;
  }

  /** The stream's position, to continue it exactly later (checkpoints). */
  state(): RandomState { return { key: [this.k0, this.k1], counter: this.counter, spare: [...this.spare] }; }

  /** Moves this stream to a position saved by state(). */
  setState(s: RandomState): this {
    const ok = Array.isArray(s?.key) && s.key.length === 2 && Number.isInteger(s.counter) && s.counter >= 0 && Array.isArray(s.spare) && s.spare.length <= 1;
    if (!ok) throw new Error(`Random.setState: not a random-stream state: ${JSON.stringify(s)}`);
    [this.k0, this.k1] = [s.key[0] >>> 0, s.key[1] >>> 0];
    this.counter = s.counter;
    this.spare = [...s.spare];
    return this;
  }

  /** Two uniform doubles in [0, 1) with 53 random bits each. */
  private block(): [number, number] {
    const c = this.counter++;
    const [a, b, d, e] = philox(this.k0, this.k1, c >>> 0, Math.floor(c / 2 ** 32) >>> 0);
    return [((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992, ((d >>> 5) * 67108864 + (e >>> 6)) / 9007199254740992];
  }

  /** One uniform number in [0, 1). */
  next(): number {
    if (this.spare.length === 0) this.spare.push(...this.block().reverse());
    return this.spare.pop()!;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }

  /** A uniform float in [low, high). */
  uniformNumber(low = 0, high = 1): number { return low + (high - low) * this.next(); }

  /** Shuffles arr in place (Fisher-Yates) and returns it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr;
  }

  /** k distinct integers from [0, n), in random order. */
  choice(n: number, k: number): number[] {
    if (k > n) throw new Error(`choice: cannot pick ${k} distinct values from ${n}`);
    return this.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, k);
  }

  /** An independent stream derived from this one. */
  split(): Random {
    const [a, b] = this.block();
    const r = new Random();
    r.k0 = Math.floor(a * 2 ** 32) >>> 0;
    r.k1 = Math.floor(b * 2 ** 32) >>> 0;
    return r;
  }

  uniformValues(n: number, low = 0, high = 1): Float64Array {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = low + (high - low) * this.next();
    return v;
  }

  /** Standard normal values by Box-Muller. */
  normalValues(n: number, mean = 0, std = 1): Float64Array {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = 1 - this.next(), u2 = this.next();
      const r = Math.sqrt(-2 * Math.log(u1));
      v[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) v[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return v;
  }

  uniform(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
    const [s, dtype] = checked('uniform', shape, opts);
    return fromValues(this.uniformValues(sizeOf(s), opts.low ?? 0, opts.high ?? 1), s, dtype, 'uniform');
  }

  normal(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
    const [s, dtype] = checked('normal', shape, opts);
    return fromValues(this.normalValues(sizeOf(s), opts.mean ?? 0, opts.std ?? 1), s, dtype, 'normal');
  }
}

/** The shape and dtype, checked before the host array of values is built. */
function checked(op: string, shape: unknown, opts: RandomOptions): [number[], DType] {
  const s = checkShape(op, 'shape', shape), dtype = checkDtype(op, checkOptions(op, opts).dtype ?? 'float32');
  checkAllocation(op, s, dtype);
  return [s, dtype];
}

let global = new Random(0);
/** Reseeds the global stream used by rand and randn. */
export const seed = (s: number): void => { global = new Random(s); };
export const rand = (shape: readonly number[], opts?: RandomOptions & { low?: number; high?: number }): Tensor => global.uniform(shape, opts);
export const randn = (shape: readonly number[], opts?: RandomOptions & { mean?: number; std?: number }): Tensor => global.normal(shape, opts);
