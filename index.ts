// Public API.

import type { Backend } from './kernels/backend.js';
import type { WasmBackend } from './kernels/wasm/backend.js';
import { createRefBackend } from './kernels/ref/backend.js';
import { getBackend, useBackend } from './engine/runtime.js';
import { checkInt, checkOptions, show } from './engine/validate.js';

export * from './engine/ops.js';
export { Tensor } from './engine/tensor.js';
export { grad, valueAndGrad, vjp, jvp, hvp, jacobian, hessian, backward } from './engine/autodiff.js';
export type { GradOptions } from './engine/autodiff.js';
export { tidy, keep, noGrad, stopGradient, memory, peakMemory, resetPeakMemory, setCheckNumerics, backend } from './engine/runtime.js';
export type { MemoryInfo } from './engine/runtime.js';
export { Random, seed, rand, randn, philox } from './engine/random.js';
export type { RandomState } from './engine/random.js';
export { treeLeaves, treeMap, treeUnflatten, treePaths } from './engine/pytree.js';
export type { Tree } from './engine/pytree.js';
export { primitives } from './engine/primitives.js';
export type { Backend, DType, TypedArray } from './kernels/backend.js';
export type { WasmBackend, WasmBackendOptions } from './kernels/wasm/backend.js';

export type BackendName = 'wasm' | 'webgpu' | 'ref' | 'auto';

/** The most threads `init({ threads })` starts: more only add start-up time and memory on any machine we know. */
export const MAX_THREADS = 64;

export interface InitOptions {
  /**
   * 'wasm' (default: AssemblyScript SIMD kernels), 'webgpu' (WGSL compute kernels, float32 only;
   * in Node through the optional `webgpu` package), 'auto' (WebGPU when an adapter exists, else WASM,
   * saying which it chose), or 'ref' (plain JavaScript loops in float64 precision: slow, the oracle
   * the tests compare every backend against).
   */
  backend?: BackendName;
  /** Where 'auto' reports its choice (default console.info) and a `threads` fallback is reported (default console.warn); pass () => {} to silence both. */
  log?: (message: string) => void;
  /**
   * WASM backend only: threads to run large kernels (matmul, convolutions) on, the calling one
   * included (default 1). n > 1 starts n - 1 worker threads sharing the backend's memory; results
   * are bit-identical to 1 thread. Node only: elsewhere it says why and runs on 1 thread.
   * `(await init({ threads: 2 })).dispose()` stops the workers (optional: they never keep Node alive).
   * A whole number from 1 to MAX_THREADS (64); the other backends have no threads.
   */
  threads?: number;
  /**
   * 'bounds' (WASM): guard bytes around every tensor, checked after every kernel, which then throws
   * naming itself if it wrote outside a tensor; slower, for tests and debugging. On the other
   * backends memory safety is the platform's (JavaScript arrays, WebGPU's robust buffer access).
   */
  checks?: 'bounds';
  /**
   * WASM backend only: the bytes of memory it may grow to, from 16 MiB to 4 GiB (the default, and
   * WebAssembly's limit). Tensors and kernels past it fail with the bytes requested and live.
   */
  memoryLimit?: number;
}

/**
 * Initialises a backend and makes it active. Building graphs is synchronous on every backend; only
 * reading values back (`await t.data()`) is asynchronous, so the same code runs on all of them.
 * @example await init(); const y = tensor([1, 2, 3]).mul(2);
 */
export function init(opts?: InitOptions & { backend?: 'wasm' }): Promise<WasmBackend>;
export function init(opts?: InitOptions): Promise<Backend>;
export async function init(opts: InitOptions = {}): Promise<Backend> {
  checkOptions('init', opts);
  const name = opts.backend ?? 'wasm';
  if (!['wasm', 'webgpu', 'ref', 'auto'].includes(name)) throw new TypeError(`init: backend must be 'wasm', 'webgpu', 'ref' or 'auto', got ${show(name)}`);
  if (opts.threads !== undefined) {
    checkInt('init', 'threads', opts.threads, 1, MAX_THREADS);
    if (opts.threads > 1 && (name === 'ref' || name === 'webgpu')) throw new RangeError(`init: the ${name} backend has no threads (threads: ${opts.threads} is for 'wasm')`);
  }
  if (opts.memoryLimit !== undefined) {
    checkInt('init', 'memoryLimit', opts.memoryLimit, 2 ** 24, 2 ** 32);
    if (name !== 'wasm' && name !== 'auto') throw new RangeError(`init: memoryLimit is for the wasm backend, not '${name}'`);
  }
  if (opts.checks !== undefined && opts.checks !== 'bounds') throw new TypeError(`init: checks must be 'bounds' or absent, got ${show(opts.checks)}`);
  let b: Backend;
  if (name === 'auto') {
    const log = opts.log ?? ((m: string) => console.info(m));
    try {
      b = getBackend('webgpu') ?? (await create('webgpu'));
      log(`metagrad: using WebGPU (${(b as any).description ?? 'adapter'})`);
    } catch (e) {
      b = reusable('wasm', opts) ?? (await create('wasm', opts));
      log(`metagrad: WebGPU unavailable (${e instanceof Error ? e.message : e}); using WASM`);
    }
  } else {
    b = reusable(name, opts) ?? (await create(name, opts));
  }
  useBackend(b);
  return b;
}

/** The options the wasm backends were created with (threads as requested: a fallback may run fewer). */
const wasmOptions = new WeakMap<Backend, string>();
const wasmKey = (opts: InitOptions) => `${opts.threads ?? 1}/${opts.checks ?? ''}/${opts.memoryLimit ?? ''}`;

/** The initialised backend `name`, unless it is a wasm backend made with other options. */
function reusable(name: string, opts: InitOptions): Backend | undefined {
  const b = getBackend(name);
  if (b && name === 'wasm' && (wasmOptions.get(b) ?? '1//') !== wasmKey(opts)) return undefined;
  return b;
}

async function create(name: Exclude<BackendName, 'auto'>, opts: InitOptions = {}): Promise<Backend> {
  if (name === 'ref') return createRefBackend();
  if (name === 'wasm') {
    const b = await (await import('./kernels/wasm/backend.js')).createWasmBackend({ threads: opts.threads, log: opts.log, checks: opts.checks, memoryLimit: opts.memoryLimit });
    wasmOptions.set(b, wasmKey(opts));
    return b;
  }
  if (name === 'webgpu') return (await import('./kernels/webgpu/backend.js')).createWebGPUBackend();
  throw new Error(`init: unknown backend '${name}' (expected 'wasm', 'webgpu', 'auto' or 'ref')`);
}

export * as nn from './engine/nn.js';
export * as addressing from './engine/memory-addressing.js';
export * as optim from './engine/optim.js';
export * as linalg from './engine/linalg.js';
export * as algorithms from './algorithms/index.js';
export { saveCheckpoint, loadCheckpoint, encodeCheckpoint, decodeCheckpoint, encodeSafetensors, decodeSafetensors } from './engine/checkpoint.js';
export type { RawTensor } from './engine/checkpoint.js';
