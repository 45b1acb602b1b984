// Permuted MNIST (Goodfellow et al. 2013; the task sequence of EWC, Kirkpatrick et al. 2017): each
// task is the same images with their pixels shuffled by a fixed permutation of its own, so the tasks
// are equally hard for a fully connected network but need different input weights. Permutations are
// seeded; images are permuted a batch at a time when asked for, since permuting every task up front
// costs 10 tasks x 70,000 images x 784 floats x 4 bytes = 2.2 GB.
//
// Convention (a gather): the permuted image's pixel i is the original's pixel perm[i],
//   out[n * pixels + i] = images[n * pixels + perm[i]].

import { Random, type RandomState } from '../engine/random.js';

export interface PixelPermutationOptions {
  /** Fixes every permutation: the same seed gives the same permutations on every run and machine. */
  seed: number;
  /** Pixels per image (default side * side, 784 for 28 x 28). */
  pixels?: number;
  /** Image side, for `square` (default 28). */
  side?: number;
  /**
   * Permute only the central square x square pixels of a side x side image and leave the border in
   * place (EWC's Figure 2C uses 8 x 8 and 26 x 26 on MNIST). The square starts at row and column
   * floor((side - square) / 2).
   */
  square?: number;
  /** The first permutation is the identity: task A of permuted MNIST is MNIST itself. */
  identityFirst?: boolean;
}

const show = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));

/**
 * `count` seeded permutations of 0..pixels-1 (see PixelPermutationOptions). Permutation k depends
 * only on the seed, k and the options, not on count (each is drawn from its own stream split off
 * the seed's), so adding tasks leaves the earlier ones as they were; identityFirst replaces the first
 * without changing the others.
 */
export function pixelPermutations(count: number, opts: PixelPermutationOptions): Int32Array[] {
  const fn = 'pixelPermutations';
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`${fn}: count must be a non-negative integer, got ${show(count)}`);
  if (typeof opts !== 'object' || opts === null) throw new Error(`${fn}: options { seed, ... } are required, got ${show(opts)}`);
  const { seed, square, identityFirst = false } = opts;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${fn}: seed must be a non-negative integer, got ${show(seed)}`);
  const side = opts.side ?? 28;
  if (!Number.isSafeInteger(side) || side < 1) throw new Error(`${fn}: side must be a positive integer, got ${show(side)}`);
  const pixels = opts.pixels ?? side * side;
  if (!Number.isSafeInteger(pixels) || pixels < 1) throw new Error(`${fn}: pixels must be a positive integer, got ${show(pixels)}`);
  // The pixels that move: all of them, or those of the central square.
  let movable: Int32Array;
  if (square === undefined) {
    movable = Int32Array.from({ length: pixels }, (_, i) => i);
  } else {
    if (!Number.isSafeInteger(square) || square < 1 || square > side) throw new Error(`${fn}: square must be an integer in 1..side = ${side}, got ${show(square)}`);
    if (pixels !== side * side) throw new Error(`${fn}: square needs side x side images, but pixels = ${pixels} and side = ${side} (side * side = ${side * side})`);
    const o = Math.floor((side - square) / 2);
    movable = new Int32Array(square * square);
    for (let r = 0; r < square; r++) for (let c = 0; c < square; c++) movable[r * square + c] = (o + r) * side + o + c;
  }
  const root = new Random(seed);
  const out: Int32Array[] = [];
  for (let k = 0; k < count; k++) {
    const rng = root.split();
    const perm = Int32Array.from({ length: pixels }, (_, i) => i);
    if (k === 0 && identityFirst) { out.push(perm); continue; }
    // Fisher-Yates over the movable positions only: the permutation maps that set onto itself.
    const vals = movable.slice();
    for (let i = vals.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = vals[i]; vals[i] = vals[j]; vals[j] = t;
    }
    movable.forEach((p, i) => { perm[p] = vals[i]; });
    out.push(perm);
  }
  return out;
}

/** Throws unless perm is a permutation of 0..pixels-1. */
function checkPermutation(fn: string, perm: Int32Array, pixels: number, what = 'perm'): void {
  if (!(perm instanceof Int32Array)) throw new Error(`${fn}: ${what} must be an Int32Array, got ${show(perm)}`);
  if (perm.length !== pixels) throw new Error(`${fn}: ${what} has ${perm.length} entries, expected one per pixel (${pixels})`);
  const seen = new Uint8Array(pixels);
  perm.forEach((p, i) => {
    if (p < 0 || p >= pixels) throw new Error(`${fn}: ${what}[${i}] = ${p} is outside 0..${pixels - 1}`);
    if (seen[p]) throw new Error(`${fn}: ${what} is not a permutation: ${p} appears twice (again at index ${i})`);
    seen[p] = 1;
  });
}

/**
 * A new array with every image's pixels permuted alike: out[n * pixels + i] = images[n * pixels + perm[i]]
 * (pixel i of the result is pixel perm[i] of the original). images holds whole images of `pixels`
 * values each (default perm.length).
 */
export function permuteImages(images: Float32Array, perm: Int32Array, pixels = perm?.length): Float32Array {
  const fn = 'permuteImages';
  if (!(images instanceof Float32Array)) throw new Error(`${fn}: images must be a Float32Array, got ${show(images)}`);
  if (!(perm instanceof Int32Array)) throw new Error(`${fn}: perm must be an Int32Array, got ${show(perm)}`);
  if (!Number.isSafeInteger(pixels) || pixels < 1) throw new Error(`${fn}: pixels must be a positive integer, got ${show(pixels)}`);
  checkPermutation(fn, perm, pixels);
  if (images.length % pixels !== 0) throw new Error(`${fn}: images has ${images.length} values, not a whole number of ${pixels}-pixel images`);
  const out = new Float32Array(images.length);
  for (let base = 0; base < images.length; base += pixels) {
    for (let i = 0; i < pixels; i++) out[base + i] = images[base + perm[i]];
  }
  return out;
}

/** Images with labels: MnistData (from loadMnist) fits, as does anything with these fields. */
export interface LabelledImages {
  /** count x pixels values, image-major. */
  images: Float32Array;
  /** count class indices. */
  labels: ArrayLike<number>;
  count: number;
}

/** A set of one task: images permuted, labels as Int32Array (what accuracy and crossEntropy take). */
export interface PermutedSet { images: Float32Array; labels: Int32Array; count: number }

/** A minibatch: x is [indices.length, pixels], image-major. */
export interface PermutedBatch { x: Float32Array; labels: Int32Array }

export interface PermutedBatchesOptions {
  batchSize: number;
  /** Fixes the order of every epoch. */
  seed: number;
  /** Drop each epoch's last batch when it is smaller than batchSize (default false: keep it). */
  dropLast?: boolean;
}

/**
 * Where a PermutedBatches stream stands: the random stream as it was at the start of the current
 * epoch (before its shuffle, which setState redoes, so the state stays small), the epoch, and how
 * many examples of the epoch's order have been served.
 */
export interface PermutedBatchesState { rng: RandomState; epoch: number; position: number }

/**
 * The tasks of a permuted dataset: task k is `train` and `test` with permutation perms[k] applied to
 * every image (both sets alike). Nothing is permuted up front: batch() permutes just the images asked
 * for, batches() streams training minibatches, and task() builds one whole task (train and test:
 * 70,000 x 784 floats = 220 MB for MNIST) when that is wanted.
 */
export class PermutedTasks {
  readonly pixels: number;
  readonly numTasks: number;
  private readonly sets: { train: PermutedSet; test: PermutedSet };

  constructor(train: LabelledImages, test: LabelledImages, readonly perms: readonly Int32Array[]) {
    const fn = 'PermutedTasks';
    if (!Array.isArray(perms) || perms.length === 0) throw new Error(`${fn}: needs at least one permutation, got ${show(perms)}`);
    this.pixels = perms[0]?.length;
    perms.forEach((p, k) => checkPermutation(fn, p, this.pixels, `perms[${k}]`));
    this.numTasks = perms.length;
    const check = (name: string, s: LabelledImages): PermutedSet => {
      if (typeof s !== 'object' || s === null) throw new Error(`${fn}: ${name} must be { images, labels, count }, got ${show(s)}`);
      if (!Number.isSafeInteger(s.count) || s.count < 1) throw new Error(`${fn}: ${name}.count must be a positive integer, got ${show(s.count)}`);
      if (!(s.images instanceof Float32Array) || s.images.length !== s.count * this.pixels) {
        throw new Error(`${fn}: ${name}.images must be a Float32Array of count x pixels = ${s.count} x ${this.pixels} values, got ${s.images instanceof Float32Array ? s.images.length + ' values' : show(s.images)}`);
      }
      if (s.labels?.length !== s.count) throw new Error(`${fn}: ${name}.labels has ${s.labels?.length} entries for ${s.count} images`);
      // Int32Array once here (MNIST's are bytes), so batches share no memory with the caller's array.
      const labels = Int32Array.from(s.labels);
      const bad = labels.findIndex((v, i) => v !== s.labels[i] || v < 0);
      if (bad >= 0) throw new Error(`${fn}: ${name}.labels[${bad}] = ${show(s.labels[bad])} is not a non-negative integer`);
      return { images: s.images, labels, count: s.count };
    };
    this.sets = { train: check('train', train), test: check('test', test) };
  }

  private checkTask(fn: string, k: number): void {
    if (!Number.isSafeInteger(k) || k < 0 || k >= this.numTasks) throw new Error(`PermutedTasks.${fn}: task must be an integer in 0..${this.numTasks - 1}, got ${show(k)}`);
  }

  private set(fn: string, set: 'train' | 'test'): PermutedSet {
    if (set !== 'train' && set !== 'test') throw new Error(`PermutedTasks.${fn}: set must be 'train' or 'test', got ${show(set)}`);
    return this.sets[set];
  }

  /** Examples in a set (the same for every task). */
  size(set: 'train' | 'test' = 'train'): number { return this.set('size', set).count; }

  /** The whole of task k, train and test permuted alike (allocates both; batch() for less). */
  task(k: number): { train: PermutedSet; test: PermutedSet } {
    this.checkTask('task', k);
    const perm = this.perms[k];
    const whole = (s: PermutedSet): PermutedSet => ({ images: permuteImages(s.images, perm, this.pixels), labels: s.labels.slice(), count: s.count });
    return { train: whole(this.sets.train), test: whole(this.sets.test) };
  }

  /**
   * The examples `indices` of task k's `set` (default 'train'), permuted: x[b * pixels + i] =
   * images[indices[b] * pixels + perm[i]], labels[b] = labels[indices[b]].
   */
  batch(k: number, indices: ArrayLike<number>, set: 'train' | 'test' = 'train'): PermutedBatch {
    this.checkTask('batch', k);
    const s = this.set('batch', set), perm = this.perms[k], P = this.pixels;
    const x = new Float32Array(indices.length * P), labels = new Int32Array(indices.length);
    for (let b = 0; b < indices.length; b++) {
      const n = indices[b];
      if (!Number.isSafeInteger(n) || n < 0 || n >= s.count) throw new Error(`PermutedTasks.batch: indices[${b}] = ${show(n)} is outside 0..${s.count - 1} (the ${set} set)`);
      const src = n * P, dst = b * P;
      for (let i = 0; i < P; i++) x[dst + i] = s.images[src + perm[i]];
      labels[b] = s.labels[n];
    }
    return { x, labels };
  }

  /** Shuffled minibatches of task k's training set, epoch after epoch (see PermutedBatches). */
  batches(k: number, opts: PermutedBatchesOptions): PermutedBatches {
    this.checkTask('batches', k);
    return new PermutedBatches(this, k, opts);
  }
}

/**
 * Task k's training set in minibatches: each epoch visits every example once in a fresh seeded order;
 * the last batch of an epoch is smaller when batchSize does not divide the set (or dropped, with
 * dropLast). next() never runs out. state()/setState() continue the sequence exactly (checkpoints).
 */
export class PermutedBatches implements Iterable<PermutedBatch & { indices: Int32Array; epoch: number }> {
  readonly batchSize: number;
  readonly dropLast: boolean;
  private readonly rng: Random;
  private readonly count: number;
  private order: Int32Array;
  private epochStart: RandomState;
  private epoch = 0;
  private position = 0;

  constructor(private readonly tasks: PermutedTasks, readonly task: number, opts: PermutedBatchesOptions) {
    const fn = 'PermutedBatches';
    if (typeof opts !== 'object' || opts === null) throw new Error(`${fn}: options { batchSize, seed } are required, got ${show(opts)}`);
    const { batchSize, seed, dropLast = false } = opts;
    this.count = tasks.size('train');
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`${fn}: batchSize must be a positive integer, got ${show(batchSize)}`);
    if (dropLast && batchSize > this.count) throw new Error(`${fn}: batchSize ${batchSize} exceeds the ${this.count} training examples, and dropLast would leave no batch`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${fn}: seed must be a non-negative integer, got ${show(seed)}`);
    this.batchSize = batchSize;
    this.dropLast = dropLast;
    this.rng = new Random(seed);
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  /** A fresh order of 0..count-1 (Fisher-Yates) from the stream. */
  private shuffled(): Int32Array {
    const o = Int32Array.from({ length: this.count }, (_, i) => i);
    for (let i = o.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = o[i]; o[i] = o[j]; o[j] = t;
    }
    return o;
  }

  /** The epoch's end: its last full batch, or the end of the set when partial batches are kept. */
  private get end(): number { return this.dropLast ? this.count - (this.count % this.batchSize) : this.count; }

  /** The next minibatch, with the training-set indices it holds and the epoch (from 0) it belongs to. */
  next(): PermutedBatch & { indices: Int32Array; epoch: number } {
    if (this.position >= this.end) {
      // The new epoch's order is drawn when its first batch is asked for, so a state saved after the
      // last batch of an epoch still describes that epoch.
      this.epoch++;
      this.position = 0;
      this.epochStart = this.rng.state();
      this.order = this.shuffled();
    }
    const indices = this.order.slice(this.position, Math.min(this.position + this.batchSize, this.end));
    this.position += indices.length;
    return { ...this.tasks.batch(this.task, indices), indices, epoch: this.epoch };
  }

  *[Symbol.iterator](): Iterator<PermutedBatch & { indices: Int32Array; epoch: number }> {
    for (;;) yield this.next();
  }

  /** Where the sequence stands (plain JSON); setState continues it exactly. */
  state(): PermutedBatchesState {
    const { key, counter, spare } = this.epochStart;
    return { rng: { key: [key[0], key[1]], counter, spare: [...spare] }, epoch: this.epoch, position: this.position };
  }

  setState(s: PermutedBatchesState): void {
    const ok = typeof s === 'object' && s !== null && Number.isSafeInteger(s.epoch) && s.epoch >= 0 &&
      Number.isSafeInteger(s.position) && s.position >= 0 && s.position <= this.end;
    if (!ok) throw new Error(`PermutedBatches.setState: not a batch-stream state for ${this.count} examples: ${show(s)}`);
    this.rng.setState(s.rng);
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
    this.epoch = s.epoch;
    this.position = s.position;
  }
}
