// The WebAssembly backend: storages live in the module's linear memory, kernels are the
// AssemblyScript functions of ./assembly (compiled by scripts/build-wasm.mjs and inlined as base64
// in ./wasm-binary.ts). This file only does host-side bookkeeping: shape arithmetic, collapsing
// dimensions so the kernels see long contiguous runs, and passing shapes/strides/indices through a
// scratch block in WASM memory.
//
// Memory notes: the module imports its memory (so memoryLimit can cap it); its heap (TLSF,
// `--runtime minimal`) grows that memory on demand, which detaches
// every ArrayBuffer view, so views are made on demand and never kept. Pointers are read `>>> 0`
// (they would come back negative above 2 GiB).
//
// Threads (opt-in, Node only): createWasmBackend({ threads: n }) instantiates the threaded build of
// the kernels over a shared memory (maximum 4 GiB) on this thread and in n - 1 worker threads
// (./threads.ts); large GEMMs and convolutions are then split across them inside the kernel calls,
// which stay synchronous. A shared memory's buffer is a SharedArrayBuffer that growth replaces
// without detaching the old one, so the make-views-on-demand rule covers it too. See THREADING.md.

import type { Backend, DType, Kernel, OutputSpec, Storage, TensorInfo, TypedArray } from '../backend.js';
import { bytesPerElement } from '../backend.js';
import { broadcastStrides, forEachStrided, sizeOf, stridesOf } from '../strides.js';
import { wasmBase64, wasmThreadsBase64 } from './wasm-binary.js';
import { nodeThreadsAvailable, startPool, type Pool } from './threads.js';

/** Op codes of the `unary_*` export (order matters: see assembly/elementwise.ts). */
export const UNARY_OPS = ['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'abs', 'sin', 'cos', 'sign'] as const;
/** Op codes of the `binary_*` export (order matters: see assembly/elementwise.ts). */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'greater', 'greaterEqual', 'less',
  'lessEqual', 'equal', 'notEqual'] as const;

type WasmFn = (...args: number[]) => number;
type Exports = Record<string, WasmFn>;

class WasmStorage implements Storage {
  live = true;
  constructor(readonly dtype: DType, readonly size: number, readonly ptr: number) {}
}

/** Bounds mode: bytes of a known pattern on each side of every storage, checked after each kernel. */
const GUARD = 64, GUARD_BYTE = 0xa5;

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  // atob rather than Buffer so this also runs in browsers.
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const modulePromises: [Promise<WebAssembly.Module> | null, Promise<WebAssembly.Module> | null] = [null, null];

/**
 * Compiles the kernels once per process (asynchronously: browsers refuse large sync compiles): the
 * default build, or the threaded one (shared imported memory).
 */
function compiledModule(threaded = false): Promise<WebAssembly.Module> {
  const i = threaded ? 1 : 0;
  let p = modulePromises[i];
  if (!p) {
    p = WebAssembly.compile(decodeBase64(threaded ? wasmThreadsBase64 : wasmBase64));
    p.catch(() => { modulePromises[i] = null; });
    modulePromises[i] = p;
  }
  return p;
}

/** The allocator's largest block (TLSF, 1 GiB). */
const LARGEST_BLOCK = 2 ** 30;

/** Pages of the imported memory: initial (4 MiB), maximum (4 GiB, as compiled; memoryLimit may lower it). */
const INITIAL_PAGES = 64;
const MAX_PAGES = 65536;
const PAGE = 65536;
/** Bytes per job slot, jobs per thread (assembly/parallel.ts JOB_BYTES, JOBS_PER_THREAD). */
const JOB_BYTES = 384;
const JOBS_PER_THREAD = 4;

/**
 * The thread count to use for `requested`: more than 1 only where worker threads can share memory
 * (Node); elsewhere says why through `log` and returns 1.
 */
function resolveThreads(requested: number | undefined, log: (m: string) => void): number {
  const n = requested ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`wasm backend: threads must be a positive integer, got ${n}`);
  if (n === 1) return 1;
  if (nodeThreadsAvailable()) return n;
  const g = globalThis as { crossOriginIsolated?: boolean; Worker?: unknown };
  const why = !g.crossOriginIsolated
    ? 'the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and ' +
      'Cross-Origin-Embedder-Policy: require-corp), so SharedArrayBuffer is unavailable'
    : typeof g.Worker !== 'function'
      ? 'this environment has no Worker'
      : 'multi-threaded kernels are implemented for Node (worker_threads) only so far';
  log(`metagrad: wasm threads: ${n} requested, but ${why}; running on 1 thread`);
  return 1;
}

/**
 * Drops size-1 dimensions and merges neighbours that every operand walks contiguously
 * (stride[i-1] == stride[i] * shape[i] for all operands, broadcast zeros included). The result has
 * rank >= 1; all-ones shapes become [1] with zero strides.
 */
export function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    const n = shape[i];
    if (n === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[i] * n)) {
      outShape[last] *= n;
      strides.forEach((s, k) => { outStrides[k][last] = s[i]; });
    } else {
      outShape.push(n);
      strides.forEach((s, k) => outStrides[k].push(s[i]));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  // The kernels keep one index counter per dimension in a fixed block (assembly/common.ts MAX_RANK).
  if (outShape.length > 32) throw new RangeError(`wasm backend: rank ${outShape.length} after collapsing exceeds 32`);
  return { shape: outShape, strides: outStrides };
}

const gib = (bytes: number) => (bytes >= 2 ** 30 ? `${+(bytes / 2 ** 30).toFixed(2)} GiB` : `${+(bytes / 2 ** 20).toFixed(2)} MiB`);

const pair = (v: unknown, dflt: number): [number, number] => {
  if (v === undefined || v === null) return [dflt, dflt];
  if (typeof v === 'number') return [v, v];
  const a = v as number[];
  return [a[0], a.length > 1 ? a[1] : a[0]];
};

/** The Backend, plus the size of the module's linear memory (for leak checks and benchmarks). */
export interface WasmBackend extends Backend {
  memoryBytes(): number;
  /** Threads the kernels run on, the calling one included (1 unless created with `threads`). */
  readonly threads: number;
  /**
   * Stops the worker threads, if any; the backend stays usable, on the calling thread only. (The
   * workers never keep a Node process alive, so this is optional.)
   */
  dispose(): Promise<void>;
  /**
   * Diagnostics for tests and benchmarks: kernel calls split across threads so far, and how many of
   * their jobs worker threads (rather than the calling one) ran.
   */
  parallelStats(): { calls: number; workerJobs: number };
}

export interface WasmBackendOptions {
  /**
   * Threads to run large kernels on, the calling one included (default 1). n > 1 starts n - 1
   * worker threads over a shared memory (Node only: elsewhere it logs why and uses 1).
   */
  threads?: number;
  /** Where a fallback to 1 thread is reported (default console.warn). */
  log?: (message: string) => void;
  /**
   * 'bounds': every storage gets guard bytes on both sides, checked after every kernel, which then
   * throws naming itself if it wrote outside a tensor. For tests and debugging: slower.
   */
  checks?: 'bounds';
  /**
   * Bytes of WebAssembly memory the backend may grow to (default and most: 4 GiB), rounded down to
   * whole 64 KiB pages; at least 16 MiB. A browser tab that must share its memory sets this lower.
   */
  memoryLimit?: number;
}

export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  let threads = resolveThreads(opts.threads, opts.log ?? ((m) => console.warn(m)));
  let pool: Pool | null = null;
  const env: Record<string, WebAssembly.ImportValue> = {
    abort(msg: number, file: number, line: number, col: number) {
      throw new Error(`wasm kernel abort: ${readString(msg)} at ${readString(file)}:${line}:${col}`);
    },
  };
  const limit = opts.memoryLimit ?? MAX_PAGES * PAGE;
  if (!(typeof limit === 'number' && limit >= 256 * PAGE && limit <= MAX_PAGES * PAGE)) {
    throw new RangeError(`wasm backend: memoryLimit must be a number of bytes from 16 MiB to 4 GiB, got ${limit}`);
  }
  const maxPages = Math.floor(limit / PAGE);
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: maxPages, shared: threads > 1 } as WebAssembly.MemoryDescriptor);
  env.memory = memory;
  let module: WebAssembly.Module;
  if (threads > 1) {
    module = await compiledModule(true);
    // Only called from kernels once setThreads(n > 1) below has run, i.e. with the pool started.
    env.parallelFor = (n: number) => pool!.run(n);
  } else {
    module = await compiledModule();
  }
  const instance = await WebAssembly.instantiate(module, { env });
  const ex = instance.exports as unknown as Exports;
  let threadStates: number[] = [];
  let jobSlots = 0;
  let statsBefore = { calls: 0, workerJobs: 0 };
  if (threads > 1) {
    // Everything a worker instance needs is allocated here, by the main instance: workers never
    // touch the allocator.
    threadStates = Array.from({ length: threads - 1 }, () => ex.allocThreadState() >>> 0);
    jobSlots = ex.alloc((threads * JOBS_PER_THREAD + 16) * JOB_BYTES) >>> 0;
    try {
      pool = await startPool(module, memory, threadStates, jobSlots, (slot) => { ex.runSlot(slot); });
    } catch (e) {
      threadStates.forEach((p) => ex.free(p));
      ex.free(jobSlots);
      throw e;
    }
    ex.setThreads(threads, jobSlots);
  }

  function readString(ptr: number): string {
    ptr >>>= 0;
    if (ptr === 0) return '';
    const bytes = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
    const units = new Uint16Array(memory.buffer, ptr, bytes >>> 1);
    let s = '';
    for (let i = 0; i < units.length; i++) s += String.fromCharCode(units[i]);
    return s;
  }

  // ---- storages -------------------------------------------------------------------------------
  let bytesLive = 0;

  const bounds = opts.checks === 'bounds';
  const guarded = new Set<WasmStorage>();
  const guards = (s: WasmStorage): [number, number][] => {
    const bytes = s.size * bytesPerElement(s.dtype);
    return [[s.ptr - GUARD, s.ptr], [s.ptr + bytes, s.ptr + bytes + GUARD]];
  };
  /** Throws if a guard of a live storage has changed: `name` wrote outside a tensor. */
  function checkGuards(name: string): void {
    const mem = new Uint8Array(memory.buffer);
    for (const s of guarded) {
      for (const [a, b] of guards(s)) {
        for (let i = a; i < b; i++) {
          if (mem[i] !== GUARD_BYTE) {
            mem.fill(GUARD_BYTE, a, b);   // once reported, the backend stays usable
            throw new Error(`${name}: wrote outside a tensor (byte ${i - s.ptr} from the start of a [${s.size}] ${s.dtype} storage): bounds check failed`);
          }
        }
      }
    }
  }

  function newStorage(dtype: DType, size: number, zero: boolean): WasmStorage {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`wasm backend: bad storage size ${size}`);
    const bytes = size * bytesPerElement(dtype);
    // Size-0 storages own no memory (ptr 0 is never dereferenced for them).
    const outOfMemory = () => new Error(`wasm backend: out of memory allocating ${bytes} bytes for a [${size}] ${dtype} tensor ` +
      `(${bytesLive} bytes live; the backend's memory is limited to ${gib(maxPages * PAGE)}): free tensors (tidy, dispose) or use smaller batches`);
    // Sizes past 32 bits would wrap around in the allocator's usize argument and "succeed".
    if (bytes >= 2 ** 32 - 65536) throw outOfMemory();
    let ptr = 0;
    const pad = bounds && bytes > 0 ? 2 * GUARD : 0;
    try {
      if (bytes > 0) ptr = (zero ? ex.allocZeroed(bytes + pad) : ex.alloc(bytes + pad)) >>> 0;
    } catch (e) {
      // The allocator traps (`unreachable`) when linear memory cannot grow, and aborts on a block
      // larger than its largest size class: say what happened.
      if (e instanceof WebAssembly.RuntimeError) throw outOfMemory();
      if (e instanceof Error && e.message.includes('Allocation too large')) {
        throw new Error(`wasm backend: a [${size}] ${dtype} tensor needs ${bytes} bytes, more than the largest single block (1 GiB)`);
      }
      throw e;
    }
    bytesLive += bytes;
    if (!pad) return new WasmStorage(dtype, size, ptr);
    const s = new WasmStorage(dtype, size, ptr + GUARD);
    const mem = new Uint8Array(memory.buffer);
    for (const [a, b] of guards(s)) mem.fill(GUARD_BYTE, a, b);
    guarded.add(s);
    return s;
  }

  function release(s: WasmStorage): void {
    if (!s.live) throw new Error('wasm backend: storage freed twice');
    s.live = false;
    if (guarded.delete(s)) ex.free(s.ptr - GUARD);
    else if (s.ptr !== 0) ex.free(s.ptr);
    bytesLive -= s.size * bytesPerElement(s.dtype);
  }

  function view(s: WasmStorage): TypedArray {
    return s.dtype === 'float32'
      ? new Float32Array(memory.buffer, s.ptr, s.size)
      : new Float64Array(memory.buffer, s.ptr, s.size);
  }

  function asStorage(s: Storage): WasmStorage {
    if (!(s instanceof WasmStorage)) throw new TypeError('wasm backend: storage from another backend');
    if (!s.live) throw new Error('wasm backend: use of a freed storage');
    return s;
  }

  /** Pointer of a kernel input, after checking that the storage can hold the tensor. */
  function ptrOf(t: TensorInfo, dtype?: DType): number {
    const s = asStorage(t.storage);
    if (s.dtype !== t.dtype) throw new TypeError(`wasm backend: tensor says ${t.dtype}, storage holds ${s.dtype}`);
    if (dtype && s.dtype !== dtype) throw new TypeError(`wasm backend: expected ${dtype} input, got ${s.dtype}`);
    if (s.size < sizeOf(t.shape)) throw new RangeError(`wasm backend: storage of ${s.size} for shape [${t.shape}]`);
    return s.ptr;
  }

  // ---- argument scratch (shapes, strides, offsets, indices as i32) -----------------------------
  let argPtr = ex.alloc(4096) >>> 0;
  let argCap = 1024; // in i32

  /** Writes the arrays one after another into the scratch block; returns their addresses. */
  function args(...arrays: ArrayLike<number>[]): number[] {
    let total = 0;
    for (const a of arrays) total += a.length;
    if (total > argCap) {
      ex.free(argPtr);
      argCap = Math.max(total, argCap * 2);
      argPtr = ex.alloc(argCap * 4) >>> 0;
    }
    const mem = new Int32Array(memory.buffer, argPtr, argCap);
    const ptrs: number[] = [];
    let at = 0;
    for (const a of arrays) {
      ptrs.push(argPtr + at * 4);
      for (let i = 0; i < a.length; i++) mem[at + i] = a[i];
      at += a.length;
    }
    return ptrs;
  }

  const sfx = (d: DType) => (d === 'float32' ? 'f32' : 'f64');
  const bits = (d: DType) => (d === 'float32' ? 'b32' : 'b64');

  /** Allocates the output, runs `fill` on it, and frees it again if the kernel throws. */
  function produce(o: OutputSpec, zero: boolean, fill: (out: WasmStorage) => void): WasmStorage {
    const r = newStorage(o.dtype, sizeOf(o.shape), zero);
    if (r.size === 0) return r;
    try {
      fill(r);
    } catch (e) {
      release(r);
      throw e;
    }
    return r;
  }

  /** dst (over `shape`, with dst/src element strides and base offsets) = src, bitwise. */
  function copy(dtype: DType, shape: readonly number[], dstPtr: number, dstStrides: readonly number[], dstBase: number,
    srcPtr: number, srcStrides: readonly number[], srcBase: number): void {
    if (sizeOf(shape) === 0) return;
    const c = collapse(shape, [dstStrides, srcStrides]);
    const [ps, pd, pss] = args(c.shape, c.strides[0], c.strides[1]);
    const bpe = bytesPerElement(dtype);
    ex[`copy_${bits(dtype)}`](c.shape.length, ps, pd, pss, dstPtr + dstBase * bpe, srcPtr + srcBase * bpe);
  }

  // ---- kernels --------------------------------------------------------------------------------
  const k: Record<string, Kernel> = {};

  UNARY_OPS.forEach((name, op) => {
    k[name] = ([x], _attrs, o) => {
      const px = ptrOf(x, o.dtype);
      return produce(o, false, (r) => { ex[`unary_${sfx(o.dtype)}`](op, px, r.ptr, r.size); });
    };
  });

  BINARY_OPS.forEach((name, op) => {
    k[name] = ([a, b], _attrs, o) => {
      const pa = ptrOf(a, o.dtype), pb = ptrOf(b, o.dtype);
      return produce(o, false, (r) => {
        const c = collapse(o.shape, [broadcastStrides(a.shape, o.shape), broadcastStrides(b.shape, o.shape)]);
        const [ps, psa, psb] = args(c.shape, c.strides[0], c.strides[1]);
        ex[`binary_${sfx(o.dtype)}`](op, c.shape.length, ps, psa, psb, pa, pb, r.ptr);
      });
    };
  });

  k.where = ([cond, a, b], _attrs, o) => {
    const pc = ptrOf(cond, o.dtype), pa = ptrOf(a, o.dtype), pb = ptrOf(b, o.dtype);
    return produce(o, false, (r) => {
      const c = collapse(o.shape, [cond, a, b].map((t) => broadcastStrides(t.shape, o.shape)));
      const [ps, p0, p1, p2] = args(c.shape, c.strides[0], c.strides[1], c.strides[2]);
      ex[`where_${sfx(o.dtype)}`](c.shape.length, ps, p0, p1, p2, pc, pa, pb, r.ptr);
    });
  };

  // Reductions keep reduced axes as size 1 in out.shape (same rank as the input).
  const reduce = (op: number, init: number): Kernel => ([x], _attrs, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      if (sizeOf(x.shape) === 0) {
        view(r).fill(init);
        return;
      }
      const c = collapse(x.shape, [stridesOf(x.shape), broadcastStrides(o.shape, x.shape)]);
      const [ps, pos] = args(c.shape, c.strides[1]);
      ex[`reduce_${sfx(o.dtype)}`](op, c.shape.length, ps, pos, px, r.ptr, r.size);
    });
  };
  k.sum = reduce(0, 0);
  k.max = reduce(1, -Infinity);

  k.matmul = ([a, b], attrs, o) => {
    const transA = !!attrs?.transA, transB = !!attrs?.transB;
    const pa = ptrOf(a, o.dtype), pb = ptrOf(b, o.dtype);
    return produce(o, false, (r) => {
      const rank = o.shape.length;
      const M = o.shape[rank - 2], N = o.shape[rank - 1];
      const K = transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
      const batch = o.shape.slice(0, -2);
      const aB = broadcastStrides(a.shape.slice(0, -2), batch).map((s) => s * M * K);
      const bB = broadcastStrides(b.shape.slice(0, -2), batch).map((s) => s * K * N);
      const nb = sizeOf(batch);
      const offs = new Int32Array(2 * nb);
      forEachStrided(batch, [aB, bB], (i, [ia, ib]) => { offs[2 * i] = ia; offs[2 * i + 1] = ib; });
      const [po] = args(offs);
      ex[`matmul_${sfx(o.dtype)}`](nb, po, M, N, K, pa, transA ? 1 : K, transA ? M : 1, pb, transB ? 1 : N,
        transB ? K : 1, r.ptr);
    });
  };

  k.transpose = ([x], { perm }, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      const xst = stridesOf(x.shape);
      copy(o.dtype, o.shape, r.ptr, stridesOf(o.shape), 0, px, perm.map((p: number) => xst[p]), 0);
    });
  };

  k.slice = ([x], { begin }, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      const xst = stridesOf(x.shape);
      const base = (begin as number[]).reduce((s, b, d) => s + b * xst[d], 0);
      copy(o.dtype, o.shape, r.ptr, stridesOf(o.shape), 0, px, xst, base);
    });
  };

  k.pad = ([x], { before }, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, true, (r) => {
      const ost = stridesOf(o.shape);
      const base = (before as number[]).reduce((s, b, d) => s + b * ost[d], 0);
      copy(o.dtype, x.shape, r.ptr, ost, base, px, stridesOf(x.shape), 0);
    });
  };

  k.concat = (xs, { axis }, o) => {
    const ptrs = xs.map((x) => ptrOf(x, o.dtype));
    return produce(o, false, (r) => {
      const ost = stridesOf(o.shape);
      let at = 0;
      xs.forEach((x, i) => {
        copy(o.dtype, x.shape, r.ptr, ost, at * ost[axis], ptrs[i], stridesOf(x.shape), 0);
        at += x.shape[axis];
      });
    });
  };

  k.broadcastTo = ([x], _attrs, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      copy(o.dtype, o.shape, r.ptr, stridesOf(o.shape), 0, px, broadcastStrides(x.shape, o.shape), 0);
    });
  };

  // gather: out[.., j, ..] = x[.., indices[j], ..] along `axis`; scatterAdd is its adjoint.
  const axisSplit = (shape: readonly number[], axis: number) =>
    [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
  const checkIndices = (indices: ArrayLike<number>, n: number) => {
    for (let j = 0; j < indices.length; j++) {
      const v = indices[j];
      if (!Number.isInteger(v) || v < 0 || v >= n) throw new RangeError(`wasm backend: index ${v} out of range [0, ${n})`);
    }
  };
  k.gather = ([x], { axis, indices }, o) => {
    const px = ptrOf(x, o.dtype);
    const [outer, n, inner] = axisSplit(x.shape, axis);
    checkIndices(indices, n);
    return produce(o, false, (r) => {
      const [pi] = args(indices);
      ex[`gather_${bits(o.dtype)}`](px, r.ptr, outer, n, inner, pi, indices.length);
    });
  };
  k.scatterAdd = ([g], { axis, indices }, o) => {
    const pg = ptrOf(g, o.dtype);
    const [outer, n, inner] = axisSplit(o.shape, axis);
    checkIndices(indices, n);
    return produce(o, false, (r) => {
      const [pi] = args(indices);
      ex[`scatterAdd_${sfx(o.dtype)}`](pg, r.ptr, outer, n, inner, pi, indices.length);
    });
  };

  k.cast = ([x], _attrs, o) => {
    const px = ptrOf(x);
    return produce(o, false, (r) => {
      if (x.dtype === o.dtype) {
        const bytes = r.size * bytesPerElement(o.dtype);
        new Uint8Array(memory.buffer).copyWithin(r.ptr, px, px + bytes);
      } else if (x.dtype === 'float32') {
        ex.cast_f32_f64(px, r.ptr, r.size);
      } else {
        ex.cast_f64_f32(px, r.ptr, r.size);
      }
    });
  };

  // Convolutions: NCHW input, OIHW filter; attrs stride/pad/dilation as [h, w].
  const convGeo = (attrs: any) => [...pair(attrs?.stride, 1), ...pair(attrs?.pad, 0), ...pair(attrs?.dilation, 1)];
  /**
   * The kernels copy an image into a zero-padded buffer (for the input gradient, dy padded by the
   * dilated kernel), index it with 32-bit offsets, and may unfold one image into columns: refuse
   * geometry whose buffers could not be addressed, before any size wraps around.
   */
  function checkWorkspace(name: string, [C, H, W]: number[], [O, KH, KW]: number[], [OH, OW]: number[], attrs: any): void {
    const [, , ph, pw, dh, dw] = convGeo(attrs);
    const padded = Math.max(C, O) * (H + 2 * ph + 2 * (KH - 1) * dh) * (W + 2 * pw + 2 * (KW - 1) * dw + 8) * 8;
    if (padded > LARGEST_BLOCK) {
      throw new Error(`${name}: the wasm backend pads each image into working memory, and padding [${ph}, ${pw}] of a ` +
        `[${C}, ${H}, ${W}] image (kernel [${KH}, ${KW}], dilation [${dh}, ${dw}]) needs more than its largest block (1 GiB)`);
    }
    const columns = C * KH * KW * OH * OW * 8;
    if (columns >= 2 ** 32) {
      throw new Error(`${name}: the wasm backend unfolds each image into ${C * KH * KW} x ${OH * OW} columns, ` +
        `more than WebAssembly's 4 GiB of memory: use smaller images or fewer channels`);
    }
  }
  k.conv2d = ([x, w], attrs, o) => {
    const px = ptrOf(x, o.dtype), pw = ptrOf(w, o.dtype);
    checkWorkspace('conv2d', x.shape.slice(1), [w.shape[0], w.shape[2], w.shape[3]], o.shape.slice(2), attrs);
    return produce(o, false, (r) => {
      const [N, C, H, W] = x.shape, [O, , KH, KW] = w.shape, [, , OH, OW] = o.shape;
      ex[`conv2d_${sfx(o.dtype)}`](px, pw, r.ptr, N, C, H, W, O, KH, KW, OH, OW, ...convGeo(attrs));
    });
  };
  k.conv2dGradInput = ([dy, w], attrs, o) => {
    const pdy = ptrOf(dy, o.dtype), pw = ptrOf(w, o.dtype);
    checkWorkspace('conv2dGradInput', o.shape.slice(1), [w.shape[0], w.shape[2], w.shape[3]], dy.shape.slice(2), attrs);
    return produce(o, false, (r) => {
      const [N, C, H, W] = o.shape, [O, , KH, KW] = w.shape, [, , OH, OW] = dy.shape;
      ex[`conv2dGradInput_${sfx(o.dtype)}`](pdy, pw, r.ptr, N, C, H, W, O, KH, KW, OH, OW, ...convGeo(attrs));
    });
  };
  k.conv2dGradFilter = ([x, dy], attrs, o) => {
    const px = ptrOf(x, o.dtype), pdy = ptrOf(dy, o.dtype);
    checkWorkspace('conv2dGradFilter', x.shape.slice(1), [o.shape[0], o.shape[2], o.shape[3]], dy.shape.slice(2), attrs);
    return produce(o, false, (r) => {
      const [N, C, H, W] = x.shape, [O, , KH, KW] = o.shape, [, , OH, OW] = dy.shape;
      ex[`conv2dGradFilter_${sfx(o.dtype)}`](px, pdy, r.ptr, N, C, H, W, O, KH, KW, OH, OW, ...convGeo(attrs));
    });
  };

  // Pooling over NCHW; attrs kernel/stride/pad as [h, w].
  const poolGeo = (attrs: any) => [...pair(attrs?.kernel, 1), ...pair(attrs?.stride, 1), ...pair(attrs?.pad, 0)];
  const planes = (shape: readonly number[]) => [shape[0] * shape[1], shape[2], shape[3]];
  k.maxPool2d = ([x], attrs, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      ex[`maxPool2d_${sfx(o.dtype)}`](px, r.ptr, ...planes(x.shape), o.shape[2], o.shape[3], ...poolGeo(attrs));
    });
  };
  k.maxPool2dGrad = ([x, dy], attrs, o) => {
    const px = ptrOf(x, o.dtype), pdy = ptrOf(dy, o.dtype);
    return produce(o, false, (r) => {
      ex[`maxPool2dGrad_${sfx(o.dtype)}`](px, pdy, r.ptr, ...planes(x.shape), dy.shape[2], dy.shape[3], ...poolGeo(attrs));
    });
  };
  k.maxPool2dSelect = ([x, gx], attrs, o) => {
    const px = ptrOf(x, o.dtype), pg = ptrOf(gx, o.dtype);
    return produce(o, false, (r) => {
      ex[`maxPool2dSelect_${sfx(o.dtype)}`](px, pg, r.ptr, ...planes(x.shape), o.shape[2], o.shape[3], ...poolGeo(attrs));
    });
  };
  k.avgPool2d = ([x], attrs, o) => {
    const px = ptrOf(x, o.dtype);
    return produce(o, false, (r) => {
      ex[`avgPool2d_${sfx(o.dtype)}`](px, r.ptr, ...planes(x.shape), o.shape[2], o.shape[3], ...poolGeo(attrs));
    });
  };
  k.avgPool2dGrad = ([dy], attrs, o) => {
    const pdy = ptrOf(dy, o.dtype);
    return produce(o, false, (r) => {
      ex[`avgPool2dGrad_${sfx(o.dtype)}`](pdy, r.ptr, ...planes(o.shape), dy.shape[2], dy.shape[3], ...poolGeo(attrs));
    });
  };

  // A kernel's working memory that cannot be had (memory cannot grow: the allocator traps) fails
  // inside the call: free what the call had taken and report it as a refused tensor is reported.
  for (const [name, kernel] of Object.entries(k)) {
    k[name] = (inputs, attrs, o) => {
      try {
        return kernel(inputs, attrs, o);
      } catch (e) {
        const tooLarge = e instanceof Error && e.message.includes('Allocation too large');
        if (!(e instanceof WebAssembly.RuntimeError && e.message === 'unreachable') && !tooLarge) throw e;
        const bytes = ex.scratchRequest() >>> 0;
        ex.releaseScratch();
        if (tooLarge) throw new Error(`${name}: wasm backend: ${bytes} bytes of working memory are more than the largest block (1 GiB)`);
        throw new Error(`${name}: wasm backend: out of memory allocating ${bytes} bytes of working memory ` +
          `(${bytesLive} bytes live; the backend's memory is limited to ${gib(maxPages * PAGE)}): free tensors (tidy, dispose) or use smaller batches`);
      }
    };
  }

  if (bounds) {
    for (const [name, kernel] of Object.entries(k)) {
      k[name] = (inputs, attrs, o) => {
        const r = kernel(inputs, attrs, o) as WasmStorage;
        try { checkGuards(name); } catch (e) { release(r); throw e; }
        return r;
      };
    }
  }

  return {
    name: 'wasm',
    kernels: k,
    alloc: (dtype, size) => newStorage(dtype, size, true),
    upload(dtype, data) {
      const s = newStorage(dtype, data.length, false);
      if (s.size > 0) view(s).set(data as ArrayLike<number>);
      return s;
    },
    free(s) {
      if (!(s instanceof WasmStorage)) throw new TypeError('wasm backend: storage from another backend');
      release(s);
    },
    readSync: (s) => view(asStorage(s)).slice(),
    read: async (s) => view(asStorage(s)).slice(),
    bytesInUse: () => bytesLive,
    // The allocator's largest block, and WebAssembly's 4 GiB of memory.
    limits: { storageBytes: LARGEST_BLOCK, totalBytes: maxPages * PAGE },
    memoryBytes: () => memory.buffer.byteLength,
    get threads() { return threads; },
    parallelStats: () => ({
      calls: statsBefore.calls + (pool ? pool.calls : 0),
      workerJobs: statsBefore.workerJobs + (pool ? pool.workerJobs : 0),
    }),
    async dispose() {
      if (!pool) return;
      const p = pool;
      statsBefore = { calls: statsBefore.calls + p.calls, workerJobs: statsBefore.workerJobs + p.workerJobs };
      pool = null;
      ex.setThreads(1, 0);
      threads = 1;
      await p.dispose();
      threadStates.forEach((s) => ex.free(s));
      ex.free(jobSlots);
      threadStates = [];
    },
  };
}
