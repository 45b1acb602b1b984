// Argument checks at the API boundary, shared by every op: shapes, axes, indices, sizes, geometry,
// dtypes and argument types. A bad argument never reaches a kernel (where a negative or fractional
// size could write outside a tensor): it is refused here with a message naming the op, the
// argument and the value. Wrong types are TypeErrors, wrong values RangeErrors.

import type { DType } from '../kernels/backend.js';
import { Tensor } from './tensor.js';

/** A short rendering of any value for an error message. */
export function show(v: unknown): string {
  if (v instanceof Tensor) return `a Tensor [${v.shape}] ${v.dtype}`;
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined || typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return v.length > 8 ? `[${v.slice(0, 8).map(show).join(', ')}, ... (${v.length})]` : `[${v.map(show).join(', ')}]`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<number>).length}`;
  return `an object ${(() => { try { return JSON.stringify(v)?.slice(0, 40) ?? ''; } catch { return ''; } })()}`.trimEnd();
}

const isArrayLike = (v: unknown): v is ArrayLike<unknown> =>
  Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));

export function checkTensor(op: string, arg: string, v: unknown): Tensor {
  if (!(v instanceof Tensor)) throw new TypeError(`${op}: ${arg} must be a Tensor, got ${show(v)}`);
  return v;
}

export function checkTensors(op: string, arg: string, v: unknown): Tensor[] {
  if (!Array.isArray(v)) throw new TypeError(`${op}: ${arg} must be an array of Tensors, got ${show(v)}`);
  return v.map((t, i) => checkTensor(op, `${arg}[${i}]`, t));
}

/** A whole number in [min, max]. */
export function checkInt(op: string, arg: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number') throw new TypeError(`${op}: ${arg} must be a whole number, got ${show(v)}`);
  if (!Number.isSafeInteger(v)) throw new RangeError(`${op}: ${arg} must be a whole number, got ${v}`);
  if (v < min || v > max) throw new RangeError(`${op}: ${arg} must be ${max === Infinity ? `>= ${min}` : min === -Infinity ? `<= ${max}` : `in [${min}, ${max}]`}, got ${v}`);
  return v;
}

/** A finite number. */
export function checkNumber(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${op}: ${arg} must be a number, got ${show(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${op}: ${arg} must be finite, got ${v}`);
  return v;
}

/** Whole numbers, as an array (from an array or typed array). */
export function checkInts(op: string, arg: string, v: unknown, min = -Infinity, max = Infinity): number[] {
  if (!isArrayLike(v)) throw new TypeError(`${op}: ${arg} must be an array of whole numbers, got ${show(v)}`);
  const out = Array.from(v as ArrayLike<unknown>);
  out.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) {
      const E = typeof x === 'number' ? RangeError : TypeError;
      throw new E(`${op}: ${arg} must hold whole numbers${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}, got ${show(x)} at ${i} in ${show(out)}`);
    }
  });
  return out as number[];
}

/** A shape: non-negative whole numbers (with `hole`, one -1 is allowed, as reshape takes). */
export function checkShape(op: string, arg: string, v: unknown, o: { hole?: boolean } = {}): number[] {
  const s = checkInts(op, arg, v, o.hole ? -1 : 0);
  if (o.hole && s.filter((d) => d === -1).length > 1) throw new RangeError(`${op}: ${arg} may have one -1, got ${show(s)}`);
  return s;
}

/**
 * An axis of a rank-`rank` tensor, negative counting from the end as in numpy, normalised to
 * 0..rank-1. `extra` widens the range (expandDims and stack insert an axis: rank + 1 positions).
 */
export function checkAxis(op: string, arg: string, v: unknown, rank: number, extra = 0): number {
  const n = rank + extra;
  if (typeof v !== 'number') throw new TypeError(`${op}: ${arg} must be a whole number, got ${show(v)}`);
  if (!Number.isInteger(v) || v < -n || v >= n) throw new RangeError(`${op}: ${arg} ${v} is out of range for rank ${rank} (${-n}..${n - 1})`);
  return v < 0 ? v + n : v;
}

export function checkDtype(op: string, v: unknown): DType {
  if (v !== 'float32' && v !== 'float64') throw new TypeError(`${op}: dtype must be 'float32' or 'float64', got ${show(v)}`);
  return v;
}

/** Options must be a plain object (or absent). */
export function checkOptions<T extends object>(op: string, v: T | undefined): T {
  if (v === undefined) return {} as T;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${op}: options must be an object, got ${show(v)}`);
  return v;
}
