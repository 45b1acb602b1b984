// The Tensor handle: shape, dtype, a reference-counted storage on one backend, and (when recorded
// for autodiff) the node that created it. Lifetimes are deterministic: a tensor stays alive while
// its user handle is held or while a recorded graph node still needs it for a backward pass.

import type { Backend, DType, Storage, TypedArray } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';
import * as ops from './ops.js';
import { formatTensor } from './format.js';

/** Storage shared by views (reshape), freed when the last tensor using it goes. */
export interface DataRef {
  readonly backend: Backend;
  readonly storage: Storage;
  refs: number;
}

/** How a recorded tensor was made: the primitive, its inputs, its attributes. */
export interface Node {
  readonly prim: string;
  readonly inputs: readonly Tensor[];
  readonly attrs: any;
}

export const stats = { handles: 0, alive: 0 };
let nextId = 1;
/** Ids are handed out in increasing order: tensors made after this call have ids >= its value. */
export const peekNextId = (): number => nextId;

/** Set while the engine itself replays recorded graphs, which may hold tensors the user released. */
export const internal = { replaying: 0 };

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  /** @internal */ _node: Node | null = null;
  /** True when a gradient transform is tracing through this tensor. */
  requiresGrad = false;
  /** @internal holders: the user handle plus each recorded node that uses this tensor */
  _refs = 1;
  /** @internal */ _handle = true;
  /** @internal the scope that will dispose this tensor, if any */
  _scope: Set<Tensor> | null = null;

  constructor(readonly shape: readonly number[], readonly dtype: DType, /** @internal */ public _data: DataRef | null) {
    this.size = sizeOf(shape);
    stats.handles++;
    stats.alive++;
  }

  get rank(): number { return this.shape.length; }
  get isDisposed(): boolean { return !this._handle; }
  get backendName(): string { return this.liveData('backendName').backend.name; }

  /** @internal Throws the error users see when they touch a released tensor. */
  liveData(op: string): DataRef {
    if (this._data === null || (!this._handle && internal.replaying === 0)) {
      throw new Error(`${op}: tensor #${this.id} [${this.shape}] ${this.dtype} was disposed`);
    }
    return this._data;
  }

  /** Releases the user handle. Memory is freed now, or when the last graph node needing it goes. */
  dispose(): void {
    if (!this._handle) return;
    this._handle = false;
    stats.handles--;
    this._scope?.delete(this);
    this._scope = null;
    release(this);
  }

  /** Values, copied out; works on every backend. */
  async data(): Promise<TypedArray> {
    const d = this.liveData('data');
    return d.backend.read(d.storage);
  }

  /** Values, copied out synchronously; throws on backends that cannot (WebGPU). */
  dataSync(): TypedArray {
    const d = this.liveData('dataSync');
    const r = d.backend.readSync(d.storage);
    if (r === null) throw new Error(`dataSync: backend '${d.backend.name}' cannot read synchronously; use await t.data()`);
    return r;
  }

  /** Nested arrays, as numpy's tolist. */
  async array(): Promise<any> { return nest(await this.data(), this.shape); }
  arraySync(): any { return nest(this.dataSync(), this.shape); }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has shape [${this.shape}], not one element`);
    return (await this.data())[0];
  }

  toString(): string {
    if (this._data === null) return `Tensor(disposed, shape=[${this.shape}], dtype=${this.dtype})`;
    const vals = this._data.backend.readSync(this._data.storage);
    return formatTensor(vals, this.shape, this.dtype);
  }

  // Method forms of the ops (see ops.ts for documentation).
  add(b: Tensor | number) { return ops.add(this, b); }
  sub(b: Tensor | number) { return ops.sub(this, b); }
  mul(b: Tensor | number) { return ops.mul(this, b); }
  div(b: Tensor | number) { return ops.div(this, b); }
  pow(b: Tensor | number) { return ops.pow(this, b); }
  maximum(b: Tensor | number) { return ops.maximum(this, b); }
  minimum(b: Tensor | number) { return ops.minimum(this, b); }
  neg() { return ops.neg(this); }
  exp() { return ops.exp(this); }
  log() { return ops.log(this); }
  sqrt() { return ops.sqrt(this); }
  square() { return ops.square(this); }
  tanh() { return ops.tanh(this); }
  sigmoid() { return ops.sigmoid(this); }
  relu() { return ops.relu(this); }
  abs() { return ops.abs(this); }
  sin() { return ops.sin(this); }
  cos() { return ops.cos(this); }
  sign() { return ops.sign(this); }
  greater(b: Tensor | number) { return ops.greater(this, b); }
  less(b: Tensor | number) { return ops.less(this, b); }
  equal(b: Tensor | number) { return ops.equal(this, b); }
  sum(axes?: number | number[], keepdims = false) { return ops.sum(this, axes, keepdims); }
  mean(axes?: number | number[], keepdims = false) { return ops.mean(this, axes, keepdims); }
  max(axes?: number | number[], keepdims = false) { return ops.max(this, axes, keepdims); }
  min(axes?: number | number[], keepdims = false) { return ops.min(this, axes, keepdims); }
  matmul(b: Tensor, opts?: ops.MatmulOptions) { return ops.matmul(this, b, opts); }
  reshape(shape: readonly number[]) { return ops.reshape(this, shape); }
  flatten(startAxis = 1) { return ops.flatten(this, startAxis); }
  expandDims(axis: number) { return ops.expandDims(this, axis); }
  transpose(perm?: readonly number[]) { return ops.transpose(this, perm); }
  get T() { return ops.transpose(this); }
  slice(begin: readonly number[], size?: readonly number[]) { return ops.slice(this, begin, size); }
  cast(dtype: DType) { return ops.cast(this, dtype); }
}

/** @internal Drops one holder; frees storage and the graph behind it when none remain. */
export function release(t: Tensor): void {
  const work = [t];
  while (work.length) {
    const x = work.pop()!;
    if (--x._refs > 0) continue;
    stats.alive--;
    const d = x._data!;
    x._data = null;
    if (--d.refs === 0) d.backend.free(d.storage);
    if (x._node) {
      for (const i of x._node.inputs) work.push(i);
      x._node = null;
    }
  }
}

function nest(v: TypedArray, shape: readonly number[]): any {
  if (shape.length === 0) return v[0];
  const step = sizeOf(shape.slice(1));
  return Array.from({ length: shape[0] }, (_, i) => nest(v.subarray(i * step, (i + 1) * step), shape.slice(1)));
}
