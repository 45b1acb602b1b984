// Random affine distortions of training images, as Koch, Zemel & Salakhutdinov (2015) train their
// Siamese networks: T = (theta, rho_x, rho_y, s_x, s_y, t_x, t_y) with rotation theta in
// [-10, 10] degrees, shears rho in [-0.3, 0.3], scales s in [0.8, 1.2] and translations t in
// [-2, 2] pixels of their 105x105 images (scaled to the image size here), each component present
// with probability 0.5. The output pixel p samples the input at A^-1 (p - c - t) + c, bilinearly,
// with c the image centre and A = rotation . shear . scale; outside the image is background (0).

import type { Random } from '../engine/random.js';

export interface AffineDistortionOptions {
  /** Probability that each component is drawn (default 0.5); 0 leaves images unchanged. */
  p?: number;
  /** Largest rotation in degrees (default 10). */
  rotation?: number;
  /** Largest shear (default 0.3). */
  shear?: number;
  /** Scale range (default [0.8, 1.2]). */
  scale?: [number, number];
  /** Largest translation as a fraction of the image side (default 2 / 105, Koch's 2 pixels). */
  translate?: number;
}

/** The drawn transform: A (row-major 2x2) and the translation in pixels. */
export interface Affine { a: [number, number, number, number]; tx: number; ty: number }

/** Draws one transform for an H x W image. */
export function drawAffine(rng: Random, H: number, W: number, o: AffineDistortionOptions = {}): Affine {
  const p = o.p ?? 0.5, maxRot = o.rotation ?? 10, maxShear = o.shear ?? 0.3;
  const [s0, s1] = o.scale ?? [0.8, 1.2], maxT = o.translate ?? 2 / 105;
  // Every component draws its coin and value, so the stream does not depend on which are kept.
  const pick = (lo: number, hi: number, none: number) => { const on = rng.next() < p, v = rng.uniformNumber(lo, hi); return on ? v : none; };
  const theta = pick(-maxRot, maxRot, 0) * Math.PI / 180;
  const rx = pick(-maxShear, maxShear, 0), ry = pick(-maxShear, maxShear, 0);
  const sx = pick(s0, s1, 1), sy = pick(s0, s1, 1);
  const tx = pick(-maxT, maxT, 0) * W, ty = pick(-maxT, maxT, 0) * H;
  const c = Math.cos(theta), s = Math.sin(theta);
  // rotation [c -s; s c] . shear [1 rx; ry 1] . scale [sx 0; 0 sy]
  const m00 = c - s * ry, m01 = c * rx - s, m10 = s + c * ry, m11 = s * rx + c;
  return { a: [m00 * sx, m01 * sy, m10 * sx, m11 * sy], tx, ty };
}

/**
 * Writes the distorted copy of the H x W image at src[srcOffset..] to dst[dstOffset..] (src and
 * dst must not overlap). Per channel for C > 1 planes.
 */
export function applyAffine(t: Affine, src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number,
  H: number, W: number, C = 1): void {
  const [a, b, c, d] = t.a;
  const det = a * d - b * c;
  if (!(Math.abs(det) > 1e-12)) throw new Error(`applyAffine: the transform is singular (det ${det})`);
  const i00 = d / det, i01 = -b / det, i10 = -c / det, i11 = a / det;
  const cx = (W - 1) / 2, cy = (H - 1) / 2;
  for (let ch = 0; ch < C; ch++) {
    const so = srcOffset + ch * H * W, dof = dstOffset + ch * H * W;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const u = x - cx - t.tx, v = y - cy - t.ty;
        const sx = i00 * u + i01 * v + cx, sy = i10 * u + i11 * v + cy;
        const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
        const at = (yy: number, xx: number) => (yy >= 0 && yy < H && xx >= 0 && xx < W ? src[so + yy * W + xx] : 0);
        dst[dof + y * W + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      }
    }
  }
}
