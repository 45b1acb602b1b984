// The engine's state: the active backend, the scope stack that owns tensors, whether operations are
// being recorded for autodiff, and `run`, the single entry point through which every primitive runs.

import { Backend, DType, TensorInfo, bytesPerElement } from '../kernels/backend.js';
import { sizeOf } from '../kernels/strides.js';
import { primitives } from './primitives.js';
import { Tensor, stats, internal } from './tensor.js';
import { treeLeaves } from './pytree.js';
import { show } from './validate.js';

let active: Backend | null = null;
const backends = new Map<string, Backend>();

/** Makes `b` the backend that new tensors are created on. */
export function useBackend(b: Backend): void {
  backends.set(b.name, b);
  active = b;
}

export function backend(): Backend {
  if (active === null) throw new Error('No backend is initialised: call `await init()` first');
  return active;
}

export const getBackend = (name: string): Backend | undefined => backends.get(name);

// ---------- autodiff recording ----------

export const tape = {
  /** False inside noGrad() and inside first-order backward passes. */
  recording: true,
  /** How many gradient transforms (grad, vjp, ...) are currently tracing. */
  depth: 0,
};

/** Runs fn without recording operations for differentiation. */
export function noGrad<T>(fn: () => T): T {
  const prev = tape.recording;
  tape.recording = false;
  try { return fn(); } finally { tape.recording = prev; }
}

// ---------- numerics checking ----------

let checkNumerics = false;
/**
 * When on, every kernel's output is checked and the first op producing NaN or Inf throws, naming the
 * op, the output and input shapes. Slow. On WASM and the reference backend the op itself throws. WebGPU
 * cannot read synchronously: there each output is scanned on the GPU and the error is thrown by the
 * next `await t.data()` (or any read-back) after the op, still naming the first op that failed.
 */
export function setCheckNumerics(on: boolean): void { checkNumerics = on; }

// ---------- scopes ----------

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s) { s.add(t); t._scope = s; }
}

/** Removes tensors from every scope: they live until disposed explicitly. Returns its argument. */
export function keep<T>(tree: T): T {
  for (const t of treeLeaves(tree)) { t._scope?.delete(t); t._scope = null; }
  return tree;
}

/**
 * A composite op's body: its own scope (outside any scope, disposing its result frees everything it
 * made; a recorded graph keeps what a backward pass needs) and its name on errors from its parts.
 */
export const composite = <R>(name: string, fn: () => R): R => named(name, () => tidy(fn));

/**
 * Runs fn and then disposes every tensor created during it, except those in its result (any
 * tree of tensors), which move to the enclosing scope. Works with async functions too: the scope
 * stays open across awaits, so don't interleave two async scopes (ending one that is not the
 * innermost throws).
 */
export function tidy<T>(fn: () => T): T {
  const s = new Set<Tensor>();
  scopes.push(s);
  let r: T;
  try {
    r = fn();
  } catch (e) {
    endScope(s, undefined);
    throw e;
  }
  if (r instanceof Promise) {
    return r.then(
      (v) => { endScope(s, v); return v; },
      (e) => { endScope(s, undefined); throw e; },
    ) as T;
  }
  endScope(s, r);
  return r;
}

function endScope(s: Set<Tensor>, result: unknown): void {
  if (scopes[scopes.length - 1] !== s) {
    const i = scopes.indexOf(s);
    if (i >= 0) scopes.splice(i, 1);
    for (const t of [...s]) t.dispose();
    throw new Error('tidy: scopes ended out of order (two async scopes interleaved); this scope was still cleaned up');
  }
  scopes.pop();
  const kept = new Set(treeLeaves(result));
  const parent = scopes[scopes.length - 1] ?? null;
  for (const t of [...s]) {
    if (!kept.has(t)) t.dispose();
    else { t._scope = parent; parent?.add(t); }
  }
}

// ---------- memory ----------

export interface MemoryInfo {
  /** Tensors whose user handle is held. */
  tensors: number;
  /** Tensors alive, including those kept only by a recorded graph. */
  aliveTensors: number;
  /** Bytes held by live storages on the active backend. */
  bytes: number;
  backend: string;
}

export function memory(): MemoryInfo {
  const b = backend();
  return { tensors: stats.handles, aliveTensors: stats.alive, bytes: b.bytesInUse(), backend: b.name };
}

// The high-water mark of live bytes, sampled at every tensor creation (storage is only ever
// allocated for a new tensor, so no peak is missed).
let peakBytes = 0;

/** The most bytes live storages held on the active backend since the last `resetPeakMemory()`. */
export function peakMemory(): number { return Math.max(peakBytes, backend().bytesInUse()); }

/** Starts a new high-water mark from the bytes live now (e.g. before the step to be measured). */
export function resetPeakMemory(): void { peakBytes = backend().bytesInUse(); }

// ---------- running primitives ----------

/** Wraps backend storage in a new tensor owned by the current scope. */
export function makeTensor(shape: readonly number[], dtype: DType, data: { backend: Backend; storage: any; refs: number }): Tensor {
  const t = new Tensor(shape, dtype, data);
  track(t);
  const live = data.backend.bytesInUse();
  if (live > peakBytes) peakBytes = live;
  return t;
}

const gib = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);

/**
 * Refuses a tensor the active backend cannot hold, before anything is allocated (a host array of
 * that size included): the message gives the bytes requested and available.
 */
export function checkAllocation(op: string, shape: readonly number[], dtype: DType): void {
  const b = backend(), lim = b.limits;
  if (!lim) return;
  const bytes = sizeOf(shape) * bytesPerElement(dtype), used = b.bytesInUse();
  if (bytes > lim.storageBytes || used + bytes > lim.totalBytes) {
    const total = Number.isFinite(lim.totalBytes) ? `, ${gib(Math.max(0, lim.totalBytes - used))} of its ${gib(lim.totalBytes)} free` : '';
    throw new RangeError(`${op}: a [${shape}] ${dtype} tensor needs ${gib(bytes)}; the ${b.name} backend holds at most ${gib(lim.storageBytes)} in one tensor${total}`);
  }
}

export function fromValues(values: ArrayLike<number>, shape: readonly number[], dtype: DType, op = 'tensor'): Tensor {
  const b = backend();
  checkAllocation(op, shape, dtype);
  return makeTensor(shape, dtype, { backend: b, storage: named(op, () => b.upload(dtype, values)), refs: 1 });
}

/**
 * Runs fn; an error from it that does not name `op` is prefixed with it (a backend's out of memory
 * or unsupported dtype; a part of a composite op: `linear: matmul: inner dimensions differ ...`).
 */
export function named<R>(op: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(`${op}:`)) {
      const E = e instanceof TypeError ? TypeError : e instanceof RangeError ? RangeError : Error;
      throw new E(`${op}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Runs primitive `name` on `inputs`: validates and infers the output, runs the active backend's
 * kernel (or shares storage for views), and records a graph node when an input is being traced.
 */
export function run(name: string, inputs: readonly Tensor[], attrs: any = {}): Tensor {
  const p = primitives[name];
  const infos: TensorInfo[] = inputs.map((x, i) => {
    if (!(x instanceof Tensor)) throw new TypeError(`${name}: input ${i} must be a Tensor, got ${show(x)}`);
    const d = x.liveData(name);
    if (d.backend !== active) {
      const other = d.backend.name === backend().name ? ` (another '${d.backend.name}' backend, created with other options such as threads)` : '';
      throw new Error(`${name}: tensor #${x.id} lives on backend '${d.backend.name}'${other} but the active backend is '${backend().name}'`);
    }
    return { storage: d.storage, shape: x.shape, dtype: x.dtype };
  });
  const spec = p.infer(inputs, attrs);
  const b = backend();
  if (!p.view) checkAllocation(name, spec.shape, spec.dtype);
  let out: Tensor;
  if (p.view) {
    const d = inputs[0]._data!;
    d.refs++;
    out = makeTensor(spec.shape, spec.dtype, d);
  } else {
    const kernel = b.kernels[name];
    if (!kernel) throw new Error(`${name}: backend '${b.name}' has no kernel for this primitive`);
    out = makeTensor(spec.shape, spec.dtype, { backend: b, storage: named(name, () => kernel(infos, attrs, spec)), refs: 1 });
    if (checkNumerics) assertFinite(out, name, inputs);
  }
  if (tape.recording && p.vjp && inputs.some((x) => x.requiresGrad)) {
    out._node = { prim: name, inputs, attrs };
    out.requiresGrad = true;
    for (const x of inputs) x._refs++;
  }
  return out;
}

function assertFinite(t: Tensor, op: string, inputs: readonly Tensor[]): void {
  const { backend: b, storage } = t._data!;
  const where = () => `of output [${t.shape}] from inputs ${inputs.map((x) => `[${x.shape}]`).join(', ')}`;
  const v = b.readSync(storage);
  if (v === null) {
    // Asynchronous backends (WebGPU) check on the device and report at the next read-back; the
    // message is built from strings only, so the pending check keeps no tensor alive.
    const w = where();
    b.checkFinite?.(storage, (i, x) => `${op}: produced ${x} at flat index ${i} ${w} ` +
      `(setCheckNumerics on ${b.name}: found on the device, reported at the first read-back after the op)`);
    return;
  }
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new Error(`${op}: produced ${v[i]} at flat index ${i} ${where()}`);
  }
}

/** A new handle on x's storage, with no history: gradients do not flow through it. */
export function stopGradient(x: Tensor): Tensor {
  const d = x.liveData('stopGradient');
  d.refs++;
  return makeTensor(x.shape, x.dtype, d);
}

/**
 * A traced alias of x for a gradient transform: it requires grad, and links back to x when x is
 * itself traced by an enclosing transform (that is how nested derivatives connect).
 */
export function watch(x: Tensor): Tensor {
  const w = stopGradient(x);
  w.requiresGrad = true;
  if (x.requiresGrad && tape.recording) {
    w._node = { prim: 'reshape', inputs: [x], attrs: { shape: x.shape } };
    x._refs++;
  }
  return w;
}

export { internal };
