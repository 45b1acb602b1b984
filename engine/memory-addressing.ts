// External-memory addressing shared by the Neural Turing Machine (Graves et al. 2014, section 3) and
// the memory-augmented network with least-recently-used access (Santoro et al. 2016). Everything is
// batched over a leading batch axis and built from differentiable ops, so gradients (of any order)
// flow through addressing, reads and writes.
//
// Shapes: memory [B, N, W] (N rows of width W); a key is [B, W] (one head) or [B, H, W] (H heads);
// a weighting over rows is [B, N] or [B, H, N] to match; per-head scalars (beta, g, gamma) are
// [B, 1] or [B, H, 1].

import * as ops from './ops.js';
import { composite, stopGradient } from './runtime.js';
import { l2Normalize } from './nn.js';
import type { Tensor } from './tensor.js';

type T = Tensor;

function check(cond: boolean, op: string, msg: string): void {
  if (!cond) throw new Error(`${op}: ${msg}`);
}
const shp = (t: T) => `[${t.shape}]`;

/** Adds the heads axis to a single-head operand ([B, X] -> [B, 1, X]); returns whether it did. */
const withHeads = (t: T): [T, boolean] => (t.rank === 2 ? [ops.expandDims(t, 1), true] : [t, false]);

/**
 * Cosine similarity of each key with each memory row: keys [B, W] or [B, H, W], memory [B, N, W]
 * -> [B, N] or [B, H, N]: nn.cosineSimilarity batched over B and heads. Rows are normalised by
 * nn.l2Normalize, so a zero key or an all-zero row gives 0 (and finite gradients) instead of 0/0.
 */
export function cosineSimilarity(memory: T, keys: T, eps = 1e-8): T {
  return composite('cosineSimilarity', () => {
    check(memory.rank === 3, 'cosineSimilarity', `memory must be [batch, rows, width], got ${shp(memory)}`);
    const [k, single] = withHeads(keys);
    check(k.rank === 3 && k.shape[0] === memory.shape[0] && k.shape[2] === memory.shape[2], 'cosineSimilarity',
      `keys ${shp(keys)} do not match memory ${shp(memory)} (expected [batch, width] or [batch, heads, width])`);
    const sim = ops.matmul(l2Normalize(k, eps), l2Normalize(memory, eps), { transB: true }); // [B, H, N]
    return single ? ops.squeeze(sim, [1]) : sim;
  });
}

/**
 * Content addressing: softmax over rows of beta times the cosine similarity of key and row. beta
 * (key strength, >= 0) is [B, 1] / [B, H, 1]; without it, 1 (Santoro et al.'s read weights).
 */
export function contentAddressing(memory: T, keys: T, beta?: T): T {
  return composite('contentAddressing', () => {
    const sim = cosineSimilarity(memory, keys);
    if (beta) check(beta.rank === sim.rank && beta.shape[beta.rank - 1] === 1, 'contentAddressing', `beta ${shp(beta)} must be ${sim.rank === 2 ? '[batch, 1]' : '[batch, heads, 1]'} for keys ${shp(keys)}`);
    return ops.softmax(beta ? ops.mul(sim, beta) : sim, -1);
  });
}

/** Interpolation gate: g * w + (1 - g) * wPrev, with g in [0, 1] shaped [B, 1] / [B, H, 1]. */
export function interpolate(w: T, wPrev: T, g: T): T {
  return composite('interpolate', () => {
    check(w.rank === wPrev.rank && w.shape.every((d, i) => d === wPrev.shape[i]), 'interpolate', `weightings ${shp(w)} and ${shp(wPrev)} differ`);
    return ops.add(ops.mul(g, w), ops.mul(ops.sub(1, g), wPrev));
  });
}

/** Rotates the last axis: out[..., i] = x[..., (i - d) mod N]. */
export function roll(x: T, d: number): T {
  return composite('roll', () => {
    const n = x.shape[x.rank - 1];
    const s = ((d % n) + n) % n;
    if (s === 0) return x;
    const begin = (at: number) => x.shape.map((_, i) => (i === x.rank - 1 ? at : 0));
    const size = (len: number) => x.shape.map((dim, i) => (i === x.rank - 1 ? len : dim));
    return ops.concat([ops.slice(x, begin(n - s), size(s)), ops.slice(x, begin(0), size(n - s))], x.rank - 1);
  });
}

/**
 * Circular convolution of a weighting with a shift distribution over offsets -r..r (shift's last
 * axis has 2r + 1 entries, offset -r first): out[i] = sum_k shift[k] * w[(i - (k - r)) mod N].
 */
export function circularShift(w: T, shift: T): T {
  return composite('circularShift', () => {
    const s = shift.shape[shift.rank - 1];
    check(s % 2 === 1 && shift.rank === w.rank && shift.shape.slice(0, -1).every((d, i) => d === w.shape[i]), 'circularShift',
      `shift ${shp(shift)} must match weighting ${shp(w)} on all but the last axis, which must be odd (offsets -r..r)`);
    const r = (s - 1) / 2;
    check(s <= w.shape[w.rank - 1], 'circularShift', `${s} shift offsets for only ${w.shape[w.rank - 1]} memory rows`);
    let out: T | null = null;
    for (let k = 0; k < s; k++) {
      const sk = ops.slice(shift, shift.shape.map((_, i) => (i === shift.rank - 1 ? k : 0)), shift.shape.map((d, i) => (i === shift.rank - 1 ? 1 : d)));
      const term = ops.mul(roll(w, k - r), sk);
      out = out ? ops.add(out, term) : term;
    }
    return out!;
  });
}

/**
 * Sharpening: w^gamma / sum(w^gamma), gamma >= 1 shaped [B, 1] / [B, H, 1]. Computed as
 * softmax(gamma * log(w + eps)), which is the same quantity but cannot underflow to 0/0 when the
 * weighting is nearly flat at zero, and keeps d/dgamma finite where a weight is exactly 0.
 */
export function sharpen(w: T, gamma: T, eps = 1e-20): T {
  return composite('sharpen', () => {
    check(gamma.rank === w.rank && gamma.shape[gamma.rank - 1] === 1, 'sharpen', `gamma ${shp(gamma)} must be [..., 1] for weighting ${shp(w)}`);
    return ops.softmax(ops.mul(gamma, ops.log(ops.add(w, eps))), -1);
  });
}

/** The NTM head's addressing parameters, already squashed into their ranges (see `ntmHeadParams`). */
export interface AddressingParams { key: T; beta: T; g: T; shift: T; gamma: T }

/** NTM addressing (Graves et al. 2014, figure 2): content, interpolation, shift, sharpening. */
export function ntmAddressing(memory: T, wPrev: T, p: AddressingParams): T {
  return composite('ntmAddressing', () => {
    const wc = contentAddressing(memory, p.key, p.beta);
    return sharpen(circularShift(interpolate(wc, wPrev, p.g), p.shift), p.gamma);
  });
}

/**
 * Splits a raw head output [B, W + 3 + shifts] (or [B, H, ...]) into the addressing parameters with
 * their squashing: key tanh, beta softplus (>= 0), g sigmoid, shift softmax over 2r + 1 offsets,
 * gamma 1 + softplus (>= 1).
 */
export function ntmHeadParams(raw: T, width: number, shifts = 3): AddressingParams {
  return composite('ntmHeadParams', () => {
    const n = raw.shape[raw.rank - 1];
    check(n === width + 3 + shifts, 'ntmHeadParams', `head output ${shp(raw)} must have ${width} + 3 + ${shifts} entries on its last axis`);
    const [k, b, g, s, y] = ops.split(raw, [width, 1, 1, shifts, 1], raw.rank - 1);
    return { key: ops.tanh(k), beta: ops.softplus(b), g: ops.sigmoid(g), shift: ops.softmax(s, -1), gamma: ops.add(ops.softplus(y), 1) };
  });
}

/** Reads r = w^T M: weightings [B, N] / [B, H, N] with memory [B, N, W] -> [B, W] / [B, H, W]. */
export function read(memory: T, w: T): T {
  return composite('read', () => {
    const [wh, single] = withHeads(w);
    check(memory.rank === 3 && wh.shape[0] === memory.shape[0] && wh.shape[2] === memory.shape[1], 'read',
      `weighting ${shp(w)} does not address memory ${shp(memory)}`);
    const r = ops.matmul(wh, memory);
    return single ? ops.squeeze(r, [1]) : r;
  });
}

/**
 * Erase then add (Graves et al. 2014, eqs. 3-4): M' = M * (1 - w e^T) + w a^T, with one write
 * weighting w [B, N], erase vector e in [0, 1] [B, W] and add vector a [B, W]. Without an erase
 * vector it is the pure additive write M + w a^T (Santoro et al.'s).
 */
export function write(memory: T, w: T, add: T, erase?: T): T {
  return composite('write', () => {
    check(memory.rank === 3 && w.rank === 2 && w.shape[0] === memory.shape[0] && w.shape[1] === memory.shape[1], 'write',
      `weighting ${shp(w)} does not address memory ${shp(memory)}`);
    for (const [name, v] of [['add', add], ['erase', erase]] as const) {
      if (v) check(v.rank === 2 && v.shape[0] === memory.shape[0] && v.shape[1] === memory.shape[2], 'write', `${name} vector ${shp(v)} must be [${memory.shape[0]}, ${memory.shape[2]}] for memory ${shp(memory)}`);
    }
    const wc = ops.expandDims(w, 2);                                                    // [B, N, 1]
    const kept = erase ? ops.mul(memory, ops.sub(1, ops.mul(wc, ops.expandDims(erase, 1)))) : memory;
    return ops.add(kept, ops.mul(wc, ops.expandDims(add, 1)));
  });
}

/**
 * The rank of each row's usage among its batch row's (0 = least used), usage [B, N] -> [B, N]. Ties
 * go to the lower row index, so ranks are a permutation of 0..N-1 even when usages are equal (e.g.
 * all zero at the start). A discrete choice: it carries no gradient.
 */
export function usageRank(usage: T): T {
  return composite('usageRank', () => {
    check(usage.rank === 2, 'usageRank', `usage must be [batch, rows], got ${shp(usage)}`);
    const u = stopGradient(usage);
    const N = u.shape[1];
    const ui = ops.expandDims(u, 2), uj = ops.expandDims(u, 1);                         // [B, N, 1], [B, 1, N]
    // Row j ranks before row i when u_j < u_i, or u_j == u_i and j < i.
    const lower = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < i; j++) lower[i * N + j] = 1;
    const before = ops.add(ops.less(uj, ui), ops.mul(ops.equal(uj, ui), ops.tensor(lower, [N, N], { dtype: u.dtype })));
    return ops.sum(before, 2);                                                          // rows ranked ahead of i
  });
}

/**
 * Least-used weighting (Santoro et al. 2016): 1 at the n rows of smallest usage, 0 elsewhere, per
 * batch row; usage [B, N]. Ties as in `usageRank`; no gradient.
 */
export function leastUsed(usage: T, n = 1): T {
  return composite('leastUsed', () => {
    check(usage.rank === 2 && n >= 1 && n <= usage.shape[1], 'leastUsed', `usage ${shp(usage)} must be [batch, rows] with at least n = ${n} rows`);
    return ops.less(usageRank(usage), n);
  });
}
