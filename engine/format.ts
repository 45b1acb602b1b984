// Readable printing of tensors, numpy style, with long dimensions elided.

import type { DType } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';

const EDGE = 3;

export function formatTensor(vals: ArrayLike<number> | null, shape: readonly number[], dtype: DType): string {
  const head = `Tensor(shape=[${shape.join(', ')}], dtype=${dtype}`;
  if (vals === null) return `${head}, on an asynchronous backend: await t.data())`;
  const num = (v: number) => {
    if (Number.isInteger(v) && Math.abs(v) < 1e6) return `${v}.`;
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-4 || a >= 1e6) ? v.toExponential(4) : v.toFixed(4);
  };
  const rec = (off: number, d: number, indent: string): string => {
    if (d === shape.length) return num(vals[off]);
    const n = shape[d], step = sizeOf(shape.slice(d + 1));
    const idx = n > 2 * EDGE ? [...Array(EDGE).keys(), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)] : [...Array(n).keys()];
    const parts = idx.map((i) => (i < 0 ? '...' : rec(off + i * step, d + 1, indent + ' ')));
    const sep = d === shape.length - 1 ? ', ' : ',\n' + indent + ' ';
    return '[' + parts.join(sep) + ']';
  };
  return `${head},\n${rec(0, 0, '')})`;
}
