/// <reference types="@webgpu/types" />
// The WebGPU backend: float32 storages in GPU buffers, one WGSL compute kernel per primitive.
// Kernels only encode work; command buffers are submitted in batches (on read-back, on flush(), or
// every MAX_BATCH commands), so a whole forward/backward pass costs a handful of submits.

import type { Backend, DType, Kernel, OutputSpec, Storage, TensorInfo, TypedArray } from '../backend.js';
import { broadcastStrides, sizeOf, stridesOf } from '../strides.js';
import * as wgsl from './shaders.js';

export const FLOAT32_ONLY = 'webgpu backend supports float32 only';

// GPUBufferUsage / GPUMapMode values, spelled out so that Node needs no WebGPU globals installed.
const USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_MODE_READ = 1;
const STORAGE_USAGE = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;

/** Commands encoded before a submit is forced: keeps the GPU fed without one submit per kernel. */
const MAX_BATCH = 64;
/** setCheckNumerics: checks after which the flag is read back by itself (bounds the pending messages). */
const FLAG_POLL_EVERY = 4096;
/** Parameter blocks per uniform arena buffer (each block is PARAM_WORDS u32). */
const ARENA_BLOCKS = 128;
const PARAM_BYTES = wgsl.PARAM_WORDS * 4;

export interface WebGPUBackendOptions {
  /** A WebGPU entry point (navigator.gpu, or the object `create()` of the `webgpu` package returns). */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Free buffers kept for reuse, in bytes (default 256 MiB); beyond it freed buffers are destroyed. */
  poolLimitBytes?: number;
  /** Kernel-variant thresholds; tests lower them to exercise every variant at small shapes. */
  tuning?: Partial<Tuning>;
}

export interface Tuning {
  /** Smallest M*N*K, and smallest M and N, that use the tiled matmul instead of one thread per output. */
  tiledMatmulMinWork: number;
  tiledMatmulMinDim: number;
  /** Reductions over more elements than this, into fewer outputs than `reduceThreadMinOutputs`, use a workgroup per output. */
  reduceWorkgroupMinLength: number;
  reduceThreadMinOutputs: number;
  /** conv2dGradFilter sums over N*OH*OW terms; from this many on, a workgroup per filter element. */
  gradFilterWorkgroupMinLength: number;
}

const DEFAULT_TUNING: Tuning = {
  tiledMatmulMinWork: 32768,
  tiledMatmulMinDim: 8,
  reduceWorkgroupMinLength: 32,
  reduceThreadMinOutputs: 4096,
  gradFilterWorkgroupMinLength: 256,
};

export interface WebGPUBackend extends Backend {
  /** What was chosen, e.g. 'google swiftshader (SwiftShader driver 5.0.0)'. */
  readonly description: string;
  readonly device: GPUDevice;
  /** Submits the commands encoded so far. */
  flush(): void;
  /** Waits until the GPU has finished everything submitted (and reports deferred errors). */
  sync(): Promise<void>;
  /** Bytes held by free buffers waiting for reuse (not counted in bytesInUse). */
  pooledBytes(): number;
  /** Releases every GPU resource; the backend is unusable afterwards. */
  destroy(): void;
}

// Dawn's GPU object must stay reachable for the life of the process (collecting it crashes Node),
// so the one created here is kept in module scope and shared by every backend.
let nodeGPU: GPU | undefined;

async function findGPU(opts: WebGPUBackendOptions): Promise<GPU> {
  if (opts.gpu) return opts.gpu;
  const nav = (globalThis as any).navigator;
  if (nav?.gpu) return nav.gpu as GPU;
  const isNode = typeof process !== 'undefined' && !!(process as any).versions?.node;
  if (!isNode) throw new Error('webgpu backend: WebGPU is not available in this browser (navigator.gpu is undefined)');
  if (nodeGPU) return nodeGPU;
  let mod: any;
  // A variable specifier keeps bundlers and TypeScript from requiring the optional package.
  const spec = 'webgpu';
  try {
    mod = await import(/* @vite-ignore */ spec);
  } catch (e) {
    throw new Error(`webgpu backend: WebGPU is not available: the optional package 'webgpu' could not be loaded ` +
      `(npm install webgpu): ${(e as Error).message}`);
  }
  try {
    nodeGPU = mod.create([]) as GPU;
  } catch (e) {
    throw new Error(`webgpu backend: WebGPU is not available: creating the Dawn instance failed: ${(e as Error).message}`);
  }
  (globalThis as any).__metagradWebGPU = nodeGPU;
  return nodeGPU;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`webgpu backend: ${what} did not answer within ${ms / 1000} s`)), ms);
    (timer as any).unref?.();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'WebGPU adapter';
  const head = [info.vendor, info.architecture].filter(Boolean).join(' ');
  const tail = info.description || info.device;
  return [head, tail && `(${tail})`].filter(Boolean).join(' ') || 'WebGPU adapter';
}

/**
 * Creates the WebGPU backend: in browsers on navigator.gpu, in Node on the optional `webgpu`
 * package (Dawn). Rejects with a clear error when WebGPU, an adapter or a device is unavailable.
 */
export async function createWebGPUBackend(opts: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const gpu = await findGPU(opts);
  let adapter: GPUAdapter | null;
  try {
    adapter = await withTimeout(gpu.requestAdapter({ powerPreference: opts.powerPreference }), 30_000, 'requestAdapter');
  } catch (e) {
    throw new Error(`webgpu backend: no WebGPU adapter found (requestAdapter failed: ${(e as Error).message})`);
  }
  if (!adapter) {
    throw new Error('webgpu backend: no WebGPU adapter found (no usable GPU driver; on a machine without a GPU, ' +
      'point VK_ICD_FILENAMES at a software Vulkan driver such as SwiftShader)');
  }
  const info: GPUAdapterInfo | undefined = (adapter as any).info;
  // Raise the few limits that bound tensor sizes and kernels to what the adapter allows.
  const want = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize',
    'maxStorageBuffersPerShaderStage', 'maxComputeInvocationsPerWorkgroup'] as const;
  const requiredLimits: Record<string, number> = {};
  for (const k of want) if (typeof adapter.limits[k] === 'number') requiredLimits[k] = adapter.limits[k];
  let device: GPUDevice;
  try {
    device = await withTimeout(adapter.requestDevice({ requiredLimits }), 30_000, 'requestDevice');
  } catch (e) {
    throw new Error(`webgpu backend: could not create a device on ${describeAdapter(info)}: ${(e as Error).message}`);
  }
  return new WebGPURuntime(device, describeAdapter(info), opts).backend;
}

// ---------------------------------------------------------------------------------------------

interface PooledBuffer {
  readonly buffer: GPUBuffer;
  readonly bytes: number;
  /** Serial of the last command encoder that used it (see upload). */
  lastEncoder: number;
}

class WebGPUStorage implements Storage {
  readonly dtype: DType = 'float32';
  freed = false;
  constructor(readonly size: number, public buf: PooledBuffer | null, readonly owner: WebGPURuntime) {}
}

interface Arena { buffer: GPUBuffer; words: Uint32Array }

/** Byte size class of a pooled buffer: quarter steps between powers of two (at most 25% slack). */
function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const step = 2 ** (Math.ceil(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

/** A strided operand of an elementwise kernel: its buffer, base offset and strides over the iteration shape. */
interface Operand { buf: GPUBuffer | PooledBuffer | null; base: number; strides: number[] }

/**
 * Merges adjacent axes that every operand walks contiguously (and drops size-1 axes): a broadcast
 * add of [8, 4, 3] and [3] becomes rank 2, a plain copy rank 1.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  // A single element: any stride reads it; 1 keeps it on the contiguous fast paths.
  if (dims.length === 0) return { shape: [1], strides: strides.map(() => [1]) };
  const last = dims[dims.length - 1];
  const outShape = [shape[last]];
  const outStrides = strides.map((s) => [s[last]]);
  for (let k = dims.length - 2; k >= 0; k--) {
    const d = dims[k];
    if (strides.every((s, j) => s[d] === outStrides[j][0] * outShape[0])) {
      outShape[0] *= shape[d];
    } else {
      outShape.unshift(shape[d]);
      strides.forEach((s, j) => outStrides[j].unshift(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

class WebGPURuntime {
  readonly backend: WebGPUBackend;
  private readonly queue: GPUQueue;
  private readonly tuning: Tuning;
  private readonly maxBytes: number;
  private readonly poolLimit: number;
  private readonly pool = new Map<number, PooledBuffer[]>();
  private poolBytes = 0;
  private liveBytes = 0;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly dummy: GPUBuffer;
  // Batching state.
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private encoderSerial = 1;
  private commands = 0;
  private readonly arenas: Arena[] = [];
  private arenaBlock = 0;
  private transients: GPUBuffer[] = [];
  // Error state.
  private lostInfo: GPUDeviceLostInfo | null = null;
  private destroyed = false;
  private readonly lostPromise: Promise<void>;
  private pendingError: string | null = null;
  private scopeChecks: Promise<void>[] = [];
  // setCheckNumerics (see checkFinite): the flag buffer, the number of the last check issued, the
  // messages of the checks not yet known to have passed, the first failure found, a flag read-back
  // in flight.
  private flagBuf: GPUBuffer | null = null;
  private checkSerial = 0;
  private readonly checks = new Map<number, (index: number, value: number) => string>();
  private numericsError: Error | null = null;
  private flagPoll: Promise<void> | null = null;

  constructor(readonly device: GPUDevice, readonly description: string, opts: WebGPUBackendOptions) {
    this.queue = device.queue;
    this.tuning = { ...DEFAULT_TUNING, ...opts.tuning };
    this.maxBytes = Math.min(device.limits.maxBufferSize, device.limits.maxStorageBufferBindingSize);
    this.poolLimit = opts.poolLimitBytes ?? 256 * 2 ** 20;
    this.lostPromise = device.lost.then((info) => { this.lostInfo = info; });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.pendingError ??= `webgpu backend: GPU error: ${ev.error.message}`;
    };
    // Bound wherever a tensor has no elements: bindings need a real, nonzero buffer.
    this.dummy = device.createBuffer({ size: 16, usage: STORAGE_USAGE });
    this.backend = {
      name: 'webgpu',
      description,
      device,
      kernels: makeKernels(this),
      alloc: (dtype, size) => this.alloc(dtype, size),
      upload: (dtype, data) => this.upload(dtype, data),
      free: (s) => this.free(s),
      readSync: () => null,
      read: (s) => this.read(s),
      checkFinite: (s, describe) => this.checkFinite(s, describe),
      bytesInUse: () => this.liveBytes,
      limits: { storageBytes: this.maxBytes, totalBytes: Infinity },
      flush: () => { this.check(); this.flush(); },
      sync: () => this.sync(),
      pooledBytes: () => this.poolBytes,
      destroy: () => this.destroy(),
    } satisfies WebGPUBackend;
  }

  // ----- errors -----

  private lostError(): Error {
    if (this.destroyed) return new Error('webgpu backend: used after destroy()');
    const i = this.lostInfo!;
    return new Error(`webgpu backend: the GPU device was lost (${i.reason}${i.message ? `: ${i.message}` : ''}); ` +
      'create a new backend');
  }

  /** Throws if the device is gone, or reports (once) an error the GPU raised asynchronously. */
  check(): void {
    if (this.destroyed || this.lostInfo) throw this.lostError();
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      throw new Error(e);
    }
  }

  /** Runs fn inside an error scope; a failure is reported by the next call (creation is synchronous). */
  private scoped<T>(filter: GPUErrorFilter, what: () => string, fn: () => T): T {
    this.device.pushErrorScope(filter);
    const r = fn();
    this.scopeChecks.push(this.device.popErrorScope().then(
      (e) => {
        if (!e) return;
        this.pendingError ??= `webgpu backend: ${what()}: ${e.message}`;
        if (filter === 'out-of-memory') this.trimPool();
      },
      () => {}, // popErrorScope rejects only when the device is lost, which is reported on its own.
    ));
    if (this.scopeChecks.length > 256) this.scopeChecks = [Promise.all(this.scopeChecks).then(() => {})];
    return r;
  }

  // ----- memory -----

  private createBuffer(bytes: number, usage: number, mappedAtCreation = false): GPUBuffer {
    return this.scoped('out-of-memory', () => `out of GPU memory allocating ${bytes} bytes`,
      () => this.device.createBuffer({ size: bytes, usage, mappedAtCreation }));
  }

  /** A buffer for `elements` float32 values; `zero` clears a reused one (fresh buffers start zeroed). */
  private acquire(elements: number, zero = false): PooledBuffer {
    const bytes = elements * 4;
    if (bytes > this.maxBytes) {
      throw new Error(`webgpu backend: out of memory: a tensor of ${elements} elements (${bytes} bytes) exceeds ` +
        `this device's largest storage buffer (${this.maxBytes} bytes)`);
    }
    const cls = Math.min(sizeClass(bytes), this.maxBytes);
    const free = this.pool.get(cls);
    const hit = free?.pop();
    if (hit) {
      this.poolBytes -= cls;
      if (zero) this.clear(hit);
      return hit;
    }
    return { buffer: this.createBuffer(cls, STORAGE_USAGE), bytes: cls, lastEncoder: 0 };
  }

  private release(b: PooledBuffer): void {
    if (this.poolBytes + b.bytes > this.poolLimit) {
      b.buffer.destroy(); // destruction waits for submitted work that still uses it
      return;
    }
    let list = this.pool.get(b.bytes);
    if (!list) this.pool.set(b.bytes, (list = []));
    list.push(b);
    this.poolBytes += b.bytes;
  }

  private trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) b.buffer.destroy();
    this.pool.clear();
    this.poolBytes = 0;
  }

  /** A new storage of `size` elements, zeroed or (for kernels that overwrite every element) undefined. */
  newStorage(size: number, zero = false): WebGPUStorage {
    const s = new WebGPUStorage(size, size > 0 ? this.acquire(size, zero) : null, this);
    this.liveBytes += size * 4;
    return s;
  }

  private alloc(dtype: DType, size: number): Storage {
    this.check();
    if (dtype !== 'float32') throw new Error(FLOAT32_ONLY);
    return this.newStorage(size, true);
  }

  clear(b: PooledBuffer): void {
    const enc = this.copyEncoder();
    enc.clearBuffer(b.buffer, 0, b.bytes);
    b.lastEncoder = this.encoderSerial;
    this.counted();
  }

  private upload(dtype: DType, data: ArrayLike<number>): Storage {
    this.check();
    if (dtype !== 'float32') throw new Error(FLOAT32_ONLY);
    const s = this.newStorage(data.length);
    if (s.buf) {
      // writeBuffer runs on the queue before the commands still being encoded: if this reused buffer
      // is read or written by one of them, submit those first.
      if (this.encoder && s.buf.lastEncoder === this.encoderSerial) this.flush();
      const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
      this.queue.writeBuffer(s.buf.buffer, 0, f32.buffer, f32.byteOffset, f32.byteLength);
      s.buf.lastEncoder = 0; // its last GPU use is now queued ahead of everything encoded later
    }
    return s;
  }

  private free(st: Storage): void {
    const s = this.own(st);
    if (s.freed) throw new Error('webgpu backend: storage freed twice');
    s.freed = true;
    this.liveBytes -= s.size * 4;
    if (s.buf && !this.destroyed && !this.lostInfo) this.release(s.buf);
    s.buf = null;
  }

  private own(st: Storage): WebGPUStorage {
    if (!(st instanceof WebGPUStorage) || st.owner !== this) {
      throw new Error('webgpu backend: storage belongs to another backend');
    }
    return st;
  }

  /** The buffer behind a kernel input (the dummy for empty tensors). */
  input(t: TensorInfo): GPUBuffer | PooledBuffer {
    if (t.dtype !== 'float32' || t.storage.dtype !== 'float32') throw new Error(FLOAT32_ONLY);
    const s = this.own(t.storage);
    if (s.freed) throw new Error('webgpu backend: kernel input storage was already freed');
    return s.buf ?? this.dummy;
  }

  private async read(st: Storage): Promise<TypedArray> {
    this.check();
    const s = this.own(st);
    if (s.freed) throw new Error('webgpu backend: read of a freed storage');
    const flag = this.flagRead();
    if (!s.buf) {
      await flag;
      this.throwNumerics();
      return new Float32Array(0);
    }
    const bytes = s.size * 4;
    const staging = this.createBuffer(bytes, USAGE.MAP_READ | USAGE.COPY_DST);
    this.copyEncoder().copyBufferToBuffer(s.buf.buffer, 0, staging, 0, bytes);
    s.buf.lastEncoder = this.encoderSerial;
    this.flush();
    try {
      await this.mapOrLost(staging);
      const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      await flag;
      await this.settleScopes();
      this.check();
      this.throwNumerics();
      return out;
    } finally {
      staging.destroy();
    }
  }

  // ----- setCheckNumerics -----
  //
  // The engine's contract is that the first op producing NaN or Inf throws, naming the op and the
  // shapes. WebGPU cannot read back synchronously, so here each checked output is scanned on the GPU
  // (one extra dispatch per op, wgsl.finiteScan) into a two-word flag that keeps the first failing
  // check and its first bad element; the host reads the flag with the next read-back (read() or
  // sync()), which then rejects with that check's message. What differs from WASM: the op itself
  // does not throw, the ops after it still run (on NaN inputs), and the error surfaces at the await.
  // Pending messages are dropped once a flag read-back covering them comes back clean; a read-back is
  // also started by itself every FLAG_POLL_EVERY checks, so a long loop without reads stays bounded.

  private checkFinite(st: Storage, describe: (index: number, value: number) => string): void {
    this.check();
    const s = this.own(st);
    if (!s.buf || s.size === 0) return;
    if (!this.flagBuf) this.flagBuf = this.createBuffer(16, STORAGE_USAGE); // zeroed: no failure
    const k = ++this.checkSerial;
    this.checks.set(k, describe);
    this.dispatch('finiteScan', wgsl.finiteScan, [s.buf, this.flagBuf], [s.size, k], Math.ceil(s.size / wgsl.WG));
    if (this.checks.size >= FLAG_POLL_EVERY && !this.flagPoll) {
      this.flagPoll = this.flagRead()!.catch(() => {}).finally(() => { this.flagPoll = null; });
    }
  }

  /**
   * Copies the flag (when checks are pending), submits everything encoded so far, and returns the
   * promise of the flag's value, which records a failure in numericsError and forgets the checks it
   * covers. Null when nothing is pending.
   */
  private flagRead(): Promise<void> | null {
    if (!this.flagBuf || (this.checks.size === 0 && !this.flagPoll)) return this.flagPoll;
    const upTo = this.checkSerial;
    const flagBuf = this.flagBuf;
    const staging = this.createBuffer(16, USAGE.MAP_READ | USAGE.COPY_DST);
    this.copyEncoder().copyBufferToBuffer(flagBuf, 0, staging, 0, 16);
    this.flush();
    const prior = this.flagPoll;
    return (async () => {
      try {
        await this.mapOrLost(staging);
        const [first, elem] = new Uint32Array(staging.getMappedRange(0, 8).slice(0));
        staging.unmap();
        await prior; // an earlier read-back settles the older checks first
        if (first !== 0) {
          const k = ~first >>> 0, packed = ~elem >>> 0;
          const value = [NaN, Infinity, -Infinity][packed & 3];
          const describe = this.checks.get(k);
          this.numericsError ??= new Error(describe ? describe(packed >>> 2, value)
            : `webgpu backend: a checked kernel produced ${value} at flat index ${packed >>> 2}`);
          // Clear the flag for the checks still to come; checks that ran before the clear, after the
          // failing one, are dropped (they come after the first failure).
          this.queue.writeBuffer(flagBuf, 0, new Uint32Array(4));
        }
        for (const key of this.checks.keys()) {
          if (key > upTo) break;
          this.checks.delete(key);
        }
      } finally {
        staging.destroy();
      }
    })();
  }

  private throwNumerics(): void {
    const e = this.numericsError;
    if (e) {
      this.numericsError = null;
      throw e;
    }
  }

  private async mapOrLost(b: GPUBuffer): Promise<void> {
    const mapped = b.mapAsync(MAP_MODE_READ);
    mapped.catch(() => {}); // when the device is lost the race below reports it
    await Promise.race([mapped, this.lostPromise.then(() => { throw this.lostError(); })]);
  }

  private async settleScopes(): Promise<void> {
    const checks = this.scopeChecks;
    this.scopeChecks = [];
    await Promise.all(checks);
  }

  private async sync(): Promise<void> {
    this.check();
    const flag = this.flagRead();
    this.flush();
    await Promise.race([this.queue.onSubmittedWorkDone(), this.lostPromise.then(() => { throw this.lostError(); })]);
    await flag;
    await this.settleScopes();
    this.check();
    this.throwNumerics();
  }

  private destroy(): void {
    if (this.destroyed) return;
    try { if (!this.lostInfo) this.flush(); } catch { /* destroying anyway */ }
    this.destroyed = true;
    this.trimPool();
    this.flagBuf?.destroy();
    this.checks.clear();
    for (const a of this.arenas) a.buffer.destroy();
    this.dummy.destroy();
    this.device.destroy();
  }

  // ----- command batching -----

  private ensureEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  /** The encoder, outside any compute pass (copies and clears cannot be recorded inside one). */
  copyEncoder(): GPUCommandEncoder {
    if (this.pass) { this.pass.end(); this.pass = null; }
    return this.ensureEncoder();
  }

  private counted(): void {
    if (++this.commands >= MAX_BATCH) this.flush();
  }

  /** Submits everything encoded so far, with its parameter blocks. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) { this.pass.end(); this.pass = null; }
    // Parameter arenas are written just before the submit that reads them; queue order makes reusing
    // them for the next batch safe even while this one still runs.
    for (let a = 0; a * ARENA_BLOCKS < this.arenaBlock; a++) {
      const used = Math.min(ARENA_BLOCKS, this.arenaBlock - a * ARENA_BLOCKS) * wgsl.PARAM_WORDS;
      this.queue.writeBuffer(this.arenas[a].buffer, 0, this.arenas[a].words.buffer, 0, used * 4);
    }
    this.queue.submit([this.encoder.finish()]);
    for (const t of this.transients) t.destroy(); // deferred by WebGPU until the submit completes
    this.transients = [];
    this.encoder = null;
    this.encoderSerial++;
    this.commands = 0;
    this.arenaBlock = 0;
  }

  private paramBlock(params: readonly number[]): { buffer: GPUBuffer; offset: number } {
    if (params.length > wgsl.PARAM_WORDS) throw new Error(`webgpu backend: too many kernel parameters (${params.length}); rank too high`);
    const a = Math.floor(this.arenaBlock / ARENA_BLOCKS);
    if (a === this.arenas.length) {
      this.arenas.push({
        buffer: this.createBuffer(ARENA_BLOCKS * PARAM_BYTES, USAGE.UNIFORM | USAGE.COPY_DST),
        words: new Uint32Array(ARENA_BLOCKS * wgsl.PARAM_WORDS),
      });
    }
    const slot = this.arenaBlock % ARENA_BLOCKS;
    const words = this.arenas[a].words;
    for (let k = 0; k < params.length; k++) {
      const v = params[k];
      if (!(v >= 0 && v <= 0xffffffff && Number.isInteger(v))) throw new Error(`webgpu backend: kernel parameter ${v} does not fit in u32`);
      words[slot * wgsl.PARAM_WORDS + k] = v;
    }
    this.arenaBlock++;
    return { buffer: this.arenas[a].buffer, offset: slot * PARAM_BYTES };
  }

  /** A read-only storage buffer holding `data` (indices), destroyed after the batch's submit. */
  tempInts(data: Uint32Array | Int32Array): GPUBuffer {
    const bytes = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
    const b = this.createBuffer(bytes, USAGE.STORAGE, true);
    new Uint32Array(b.getMappedRange()).set(new Uint32Array(data.buffer, data.byteOffset, data.length));
    b.unmap();
    this.transients.push(b);
    return b;
  }

  /** A pooled scratch buffer; release it once its last dispatch is encoded (command order protects it). */
  scratch(elements: number): PooledBuffer {
    return this.acquire(Math.max(1, elements));
  }

  releaseScratch(b: PooledBuffer): void {
    this.release(b);
  }

  private pipeline(key: string, source: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const code = source();
      p = this.scoped('validation', () => `kernel '${key}' failed to compile`, () => {
        const module = this.device.createShaderModule({ code, label: key });
        return this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Encodes one dispatch: binding 0 gets the parameters, bindings 1.. the buffers (null: dummy).
   * `groups` is a workgroup count, spread over x and y beyond the 65535-per-dimension limit, or an
   * explicit [x, y, z] grid.
   */
  dispatch(key: string, source: () => string, buffers: readonly (GPUBuffer | PooledBuffer | null)[],
    params: readonly number[], groups: number | [number, number, number]): void {
    const pipeline = this.pipeline(key, source);
    const pb = this.paramBlock(params);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: pb.buffer, offset: pb.offset, size: PARAM_BYTES } }];
    buffers.forEach((b, k) => {
      let buffer: GPUBuffer;
      if (b === null) buffer = this.dummy;
      else if ('lastEncoder' in b) { buffer = b.buffer; b.lastEncoder = this.encoderSerial; } else buffer = b;
      entries.push({ binding: k + 1, resource: { buffer } });
    });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const enc = this.ensureEncoder();
    const pass = (this.pass ??= enc.beginComputePass());
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    if (typeof groups === 'number') {
      const x = Math.min(groups, 65535);
      pass.dispatchWorkgroups(x, Math.ceil(groups / x), 1);
    } else {
      pass.dispatchWorkgroups(...groups);
    }
    this.counted();
  }

  /** Copies `elements` contiguous float32 values between buffers (in command order). */
  copy(src: GPUBuffer | PooledBuffer, srcAt: number, dst: PooledBuffer, dstAt: number, elements: number): void {
    const enc = this.copyEncoder();
    const s = 'lastEncoder' in src ? src.buffer : src;
    if ('lastEncoder' in src) src.lastEncoder = this.encoderSerial;
    dst.lastEncoder = this.encoderSerial;
    enc.copyBufferToBuffer(s, srcAt * 4, dst.buffer, dstAt * 4, elements * 4);
    this.counted();
  }

  /**
   * out = f(inputs) elementwise over `shape`, every operand strided (broadcast, permuted, sliced or
   * embedded into a larger output).
   */
  elementwise(name: string, shape: readonly number[], inputs: Operand[], out: { buf: PooledBuffer; base: number; strides: number[] }): void {
    const n = sizeOf(shape);
    if (n === 0) return;
    const ops = [...inputs, out];
    const c = coalesce(shape, ops.map((o) => o.strides));
    const expr = wgsl.ELEMENTWISE_EXPR[name];
    const nIn = inputs.length;
    const R = c.shape.length;
    if (name === 'copy' && R === 1 && c.strides[0][0] === 1 && c.strides[1][0] === 1 && inputs[0].buf) {
      this.copy(inputs[0].buf, inputs[0].base, out.buf, out.base, n);
      return;
    }
    const flat = R === 1 && out.base === 0 && c.strides[nIn][0] === 1 &&
      inputs.every((o, k) => o.base === 0 && (c.strides[k][0] === 1 || c.strides[k][0] === 0));
    const groups = Math.ceil(n / wgsl.WG);
    if (flat) {
      const mask = inputs.reduce((m, _, k) => m | (c.strides[k][0] === 0 ? 1 << k : 0), 0);
      this.dispatch(`ew-flat:${name}:${mask}`, () => wgsl.elementwiseFlat(expr, nIn, mask),
        [...inputs.map((o) => o.buf), out.buf], [n], groups);
      return;
    }
    const params = [n, R, ...c.shape];
    ops.forEach((o, k) => params.push(o.base, ...c.strides[k]));
    this.dispatch(`ew:${name}`, () => wgsl.elementwiseStrided(expr, nIn), [...inputs.map((o) => o.buf), out.buf], params, groups);
  }

  get tune(): Tuning { return this.tuning; }
}

// ---------------------------------------------------------------------------------------------
// Kernels: host-side index arithmetic and dispatch; the arithmetic itself is in shaders.ts.

function makeKernels(rt: WebGPURuntime): Record<string, Kernel> {
  const k: Record<string, Kernel> = {};

  // The output of the kernel running now, freed again if the kernel throws after allocating it.
  let current: WebGPUStorage | null = null;
  /** Checks the device and dtypes, then allocates the output. */
  const begin = (inputs: readonly TensorInfo[], o: OutputSpec, zero = false): WebGPUStorage => {
    rt.check();
    if (o.dtype !== 'float32') throw new Error(FLOAT32_ONLY);
    for (const t of inputs) rt.input(t); // validates every input
    return (current = rt.newStorage(sizeOf(o.shape), zero));
  };
  const operand = (t: TensorInfo, strides: number[], base = 0): Operand => ({ buf: rt.input(t), base, strides });

  const unary = ['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'abs', 'sin', 'cos', 'sign'];
  for (const name of unary) {
    k[name] = ([x], _a, o) => {
      const r = begin([x], o);
      if (r.buf) rt.elementwise(name, o.shape, [operand(x, stridesOf(o.shape))], { buf: r.buf, base: 0, strides: stridesOf(o.shape) });
      return r;
    };
  }
  const binary = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'greater', 'greaterEqual', 'less',
    'lessEqual', 'equal', 'notEqual', 'where'];
  for (const name of binary) {
    k[name] = (inputs, _a, o) => {
      const r = begin(inputs, o);
      if (r.buf) {
        rt.elementwise(name, o.shape, inputs.map((t) => operand(t, broadcastStrides(t.shape, o.shape))),
          { buf: r.buf, base: 0, strides: stridesOf(o.shape) });
      }
      return r;
    };
  }

  const reduce = (op: 'sum' | 'max'): Kernel => ([x], { axes }, o) => {
    const r = begin([x], o);
    if (!r.buf) return r;
    const xst = stridesOf(x.shape);
    const red = new Set<number>(axes);
    const keptDims = x.shape.map((_, d) => d).filter((d) => !red.has(d));
    const redDims = x.shape.map((_, d) => d).filter((d) => red.has(d));
    const kept = coalesce(keptDims.map((d) => x.shape[d]), [keptDims.map((d) => xst[d])]);
    const rd = coalesce(redDims.map((d) => x.shape[d]), [redDims.map((d) => xst[d])]);
    const nOut = r.size;
    const R = sizeOf(redDims.map((d) => x.shape[d]));
    const params = [nOut, R, kept.shape.length, rd.shape.length, ...kept.shape, ...kept.strides[0], ...rd.shape, ...rd.strides[0]];
    const bufs = [rt.input(x), r.buf];
    if (R > rt.tune.reduceWorkgroupMinLength && nOut < rt.tune.reduceThreadMinOutputs) {
      rt.dispatch(`reduce-wg:${op}`, () => wgsl.reduceWorkgroup(op), bufs, params, nOut);
    } else {
      rt.dispatch(`reduce:${op}`, () => wgsl.reduceThread(op), bufs, params, Math.ceil(nOut / wgsl.WG));
    }
    return r;
  };
  k.sum = reduce('sum');
  k.max = reduce('max');

  k.matmul = ([a, b], { transA, transB }, o) => {
    const r = begin([a, b], o);
    if (!r.buf) return r;
    const M = o.shape[o.shape.length - 2], N = o.shape[o.shape.length - 1];
    const K = transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    const batchShape = o.shape.slice(0, -2);
    const batch = sizeOf(batchShape);
    const aB = broadcastStrides(a.shape.slice(0, -2), batchShape).map((s) => s * M * K);
    const bB = broadcastStrides(b.shape.slice(0, -2), batchShape).map((s) => s * K * N);
    const c = coalesce(batchShape, [aB, bB]);
    const params = [r.size, M, N, K, transA ? 1 : 0, transB ? 1 : 0, batch, c.shape.length, ...c.shape, ...c.strides[0], ...c.strides[1]];
    const bufs = [rt.input(a), rt.input(b), r.buf];
    if (Math.min(M, N) >= rt.tune.tiledMatmulMinDim && M * N * K >= rt.tune.tiledMatmulMinWork) {
      const grid: [number, number, number] = [Math.ceil(N / wgsl.MM_BN), Math.ceil(M / wgsl.MM_BM), Math.min(batch, 65535)];
      if (grid[0] > 65535 || grid[1] > 65535) throw new Error(`webgpu backend: matmul of ${M}x${N} outputs is too large for one dispatch`);
      rt.dispatch('matmul-tiled', wgsl.matmulTiled, bufs, params, grid);
    } else {
      rt.dispatch('matmul', wgsl.matmulNaive, bufs, params, Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };

  // ----- layout: every one is a strided elementwise copy -----
  const copyInto = (x: TensorInfo, shape: readonly number[], inStrides: number[], inBase: number,
    out: WebGPUStorage, outStrides: number[], outBase: number) =>
    rt.elementwise('copy', shape, [operand(x, inStrides, inBase)], { buf: out.buf!, base: outBase, strides: outStrides });

  k.transpose = ([x], { perm }, o) => {
    const r = begin([x], o);
    const xst = stridesOf(x.shape);
    if (r.buf) copyInto(x, o.shape, perm.map((p: number) => xst[p]), 0, r, stridesOf(o.shape), 0);
    return r;
  };
  k.slice = ([x], { begin: at }, o) => {
    const r = begin([x], o);
    const xst = stridesOf(x.shape);
    const base = at.reduce((s: number, b: number, d: number) => s + b * xst[d], 0);
    if (r.buf) copyInto(x, o.shape, xst, base, r, stridesOf(o.shape), 0);
    return r;
  };
  k.pad = ([x], { before }, o) => {
    const r = begin([x], o, true);
    if (!r.buf) return r;
    const ost = stridesOf(o.shape);
    const base = before.reduce((s: number, b: number, d: number) => s + b * ost[d], 0);
    copyInto(x, x.shape, stridesOf(x.shape), 0, r, ost, base);
    return r;
  };
  k.concat = (xs, { axis }, o) => {
    const r = begin(xs, o);
    if (!r.buf) return r;
    const ost = stridesOf(o.shape);
    let at = 0;
    for (const x of xs) {
      copyInto(x, x.shape, stridesOf(x.shape), 0, r, ost, at * ost[axis]);
      at += x.shape[axis];
    }
    return r;
  };
  k.broadcastTo = ([x], _a, o) => {
    const r = begin([x], o);
    if (r.buf) copyInto(x, o.shape, broadcastStrides(x.shape, o.shape), 0, r, stridesOf(o.shape), 0);
    return r;
  };
  k.cast = ([x], { dtype }, o) => {
    if (dtype !== undefined && dtype !== 'float32') throw new Error(FLOAT32_ONLY);
    const r = begin([x], o);
    if (r.buf) rt.copy(rt.input(x), 0, r.buf, 0, r.size);
    return r;
  };

  const axisSplit = (shape: readonly number[], axis: number) =>
    [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
  k.gather = ([x], { axis, indices }, o) => {
    const r = begin([x], o);
    if (!r.buf) return r;
    const [, n, inner] = axisSplit(x.shape, axis);
    const idx = Int32Array.from(indices as ArrayLike<number>);
    rt.dispatch('gather', wgsl.gather, [rt.input(x), rt.tempInts(idx), r.buf], [r.size, n, inner, idx.length],
      Math.ceil(r.size / wgsl.WG));
    return r;
  };
  k.scatterAdd = ([g], { axis, indices }, o) => {
    const r = begin([g], o);
    if (!r.buf) return r;
    const [, n, inner] = axisSplit(o.shape, axis);
    const J = indices.length;
    // Invert the index list: for each target k, the j's that land on it, in increasing j (the
    // reference's summation order).
    const csr = new Uint32Array(n + 1 + J);
    for (let j = 0; j < J; j++) csr[indices[j] + 1]++;
    for (let t = 0; t < n; t++) csr[t + 1] += csr[t];
    const fill = csr.slice(0, n);
    for (let j = 0; j < J; j++) csr[n + 1 + fill[indices[j]]++] = j;
    rt.dispatch('scatterAdd', wgsl.scatterAdd, [rt.input(g), rt.tempInts(csr), r.buf], [r.size, n, inner, J],
      Math.ceil(r.size / wgsl.WG));
    return r;
  };

  // ----- convolution -----
  const convParams = (total: number, x: readonly number[], w: readonly number[], y: readonly number[], g: any) =>
    [total, x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], g.stride[0], g.stride[1], g.pad[0], g.pad[1],
      g.dilation[0], g.dilation[1]];
  k.conv2d = ([x, w], g, o) => {
    const r = begin([x, w], o);
    if (r.buf) {
      rt.dispatch('conv2d', wgsl.conv2d, [rt.input(x), rt.input(w), r.buf], convParams(r.size, x.shape, w.shape, o.shape, g),
        Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };
  k.conv2dGradInput = ([dy, w], g, o) => {
    const r = begin([dy, w], o);
    if (r.buf) {
      rt.dispatch('conv2dGradInput', wgsl.conv2dGradInput, [rt.input(dy), rt.input(w), r.buf],
        convParams(r.size, o.shape, w.shape, dy.shape, g), Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };
  k.conv2dGradFilter = ([x, dy], g, o) => {
    const r = begin([x, dy], o);
    if (!r.buf) return r;
    const params = convParams(r.size, x.shape, o.shape, dy.shape, g);
    const bufs = [rt.input(x), rt.input(dy), r.buf];
    const L = dy.shape[0] * dy.shape[2] * dy.shape[3];
    if (L >= rt.tune.gradFilterWorkgroupMinLength) {
      rt.dispatch('conv2dGradFilter-wg', wgsl.conv2dGradFilterWorkgroup, bufs, params, r.size);
    } else {
      rt.dispatch('conv2dGradFilter', wgsl.conv2dGradFilterThread, bufs, params, Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };

  // ----- pooling -----
  const poolParams = (total: number, x: readonly number[], y: readonly number[], g: any) =>
    [total, x[0] * x[1], x[2], x[3], y[2], y[3], g.kernel[0], g.kernel[1], g.stride[0], g.stride[1], g.pad[0], g.pad[1]];
  k.maxPool2d = ([x], g, o) => {
    const r = begin([x], o);
    if (r.buf) {
      rt.dispatch('maxPoolPick', wgsl.maxPoolPick, [rt.input(x), rt.input(x), r.buf], poolParams(r.size, x.shape, o.shape, g),
        Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };
  k.maxPool2dSelect = ([x, gx], g, o) => {
    const r = begin([x, gx], o);
    if (r.buf) {
      rt.dispatch('maxPoolPick', wgsl.maxPoolPick, [rt.input(x), rt.input(gx), r.buf], poolParams(r.size, x.shape, o.shape, g),
        Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };
  k.maxPool2dGrad = ([x, dy], g, o) => {
    const nOut = sizeOf(dy.shape);
    const r = begin([x, dy], o, nOut === 0);
    if (!r.buf || nOut === 0) return r;
    // Two passes: each window's argmax once, then each input gathers the windows that chose it.
    const arg = rt.scratch(nOut);
    rt.dispatch('maxPoolArgmax', wgsl.maxPoolArgmax, [rt.input(x), arg], poolParams(nOut, x.shape, dy.shape, g),
      Math.ceil(nOut / wgsl.WG));
    rt.dispatch('maxPoolGrad', wgsl.maxPoolGrad, [arg, rt.input(dy), r.buf], poolParams(r.size, x.shape, dy.shape, g),
      Math.ceil(r.size / wgsl.WG));
    rt.releaseScratch(arg);
    return r;
  };
  k.avgPool2d = ([x], g, o) => {
    const r = begin([x], o);
    if (r.buf) {
      rt.dispatch('avgPool', wgsl.avgPool, [rt.input(x), r.buf], poolParams(r.size, x.shape, o.shape, g), Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };
  k.avgPool2dGrad = ([dy], g, o) => {
    const r = begin([dy], o);
    if (r.buf) {
      rt.dispatch('avgPoolGrad', wgsl.avgPoolGrad, [rt.input(dy), r.buf], poolParams(r.size, o.shape, dy.shape, g),
        Math.ceil(r.size / wgsl.WG));
    }
    return r;
  };

  for (const [name, f] of Object.entries(k)) {
    k[name] = (inputs, attrs, o) => {
      current = null;
      try {
        return f(inputs, attrs, o);
      } catch (e) {
        const out = current as WebGPUStorage | null; // assigned inside f, which TypeScript cannot see
        if (out && !out.freed) rt.backend.free(out);
        throw e;
      }
    };
  }
  return k;
}
