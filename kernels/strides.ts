// Index arithmetic shared by the backends' host code (no autodiff here).

export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Strides that read a contiguous tensor of `shape` as if broadcast to `outShape` (numpy rules,
 * right-aligned): a broadcast dimension gets stride 0.
 */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const r = outShape.length - shape.length;
  return outShape.map((_, i) => (i < r || shape[i - r] === 1 ? 0 : own[i - r]));
}

/** Calls fn(outIndex, ...inputOffsets) for every element of outShape, in row-major order. */
export function forEachStrided(
  outShape: readonly number[],
  inStrides: readonly (readonly number[])[],
  fn: (i: number, offsets: number[]) => void,
): void {
  const n = sizeOf(outShape);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = inStrides.map(() => 0);
  for (let i = 0; i < n; i++) {
    fn(i, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += inStrides[k][d];
      if (idx[d] < outShape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= inStrides[k][d] * outShape[d];
      idx[d] = 0;
    }
  }
}

/** Output spatial size of a convolution or pooling window sweep. */
export const windowOut = (size: number, k: number, stride: number, pad: number, dilation = 1): number =>
  Math.floor((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;
