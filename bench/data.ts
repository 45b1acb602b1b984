// Host-side inputs shared by both engines: each benchmark uploads the very same numbers to ours and
// to tfjs, so their results can be compared value for value.

/** A small seeded generator (xorshift32 + Box-Muller): reproducible and engine-independent. */
export class HostRng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }

  /** Uniform in [0, 1). */
  uniform(): number {
    let s = this.s;
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    this.s = s;
    return s / 4294967296;
  }

  normal(): number {
    const u = 1 - this.uniform(), v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  normals(n: number, std = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * std;
    return a;
  }

  uniforms(n: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.uniform();
    return a;
  }
}

/** Filters [O, C, KH, KW] (ours, NCHW) -> [KH, KW, C, O] (tfjs, NHWC). */
export function oihwToHwio(w: Float32Array, o: number, c: number, kh: number, kw: number): Float32Array {
  const r = new Float32Array(w.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < c; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    r[((y * kw + x) * c + b) * o + a] = w[((a * c + b) * kh + y) * kw + x];
  }
  return r;
}

/** The inverse of oihwToHwio, for comparing filter gradients. */
export function hwioToOihw(w: ArrayLike<number>, o: number, c: number, kh: number, kw: number): Float32Array {
  const r = new Float32Array(w.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < c; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    r[((a * c + b) * kh + y) * kw + x] = w[((y * kw + x) * c + b) * o + a];
  }
  return r;
}

/**
 * Normwise relative difference max|a - b| / max|b|: one number per tensor that is not blown up by
 * entries near zero (an entrywise ratio would be, for matmul outputs that cross zero).
 */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    if (!(e <= d)) d = e; // also catches NaN
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}
