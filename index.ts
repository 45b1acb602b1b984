// Public API.

import type { Backend } from './kernels/backend.js';
import { createRefBackend } from './kernels/ref/backend.js';
import { getBackend, useBackend } from './engine/runtime.js';

export * from './engine/ops.js';
export { Tensor } from './engine/tensor.js';
export { grad, valueAndGrad, vjp, jvp, hvp, jacobian, hessian, backward } from './engine/autodiff.js';
export type { GradOptions } from './engine/autodiff.js';
export { tidy, keep, noGrad, stopGradient, memory, peakMemory, resetPeakMemory, setCheckNumerics, backend } from './engine/runtime.js';
export type { MemoryInfo } from './engine/runtime.js';
export { Random, seed, rand, randn, philox } from './engine/random.js';
export { treeLeaves, treeMap, treeUnflatten, treePaths } from './engine/pytree.js';
export type { Tree } from './engine/pytree.js';
export { primitives } from './engine/primitives.js';
export type { Backend, DType, TypedArray } from './kernels/backend.js';

export type BackendName = 'wasm' | 'webgpu' | 'ref' | 'auto';

export interface InitOptions {
  /**
   * 'wasm' (default: AssemblyScript SIMD kernels), 'webgpu' (WGSL compute kernels, float32 only;
   * in Node through the optional `webgpu` package), 'auto' (WebGPU when an adapter exists, else WASM,
   * saying which it chose), or 'ref' (plain JavaScript loops in float64 precision: slow, the oracle
   * the tests compare every backend against).
   */
  backend?: BackendName;
  /** Where 'auto' reports its choice (default console.info); pass () => {} to silence it. */
  log?: (message: string) => void;
}

/**
 * Initialises a backend and makes it active. Building graphs is synchronous on every backend; only
 * reading values back (`await t.data()`) is asynchronous, so the same code runs on all of them.
 * @example await init(); const y = tensor([1, 2, 3]).mul(2);
 */
export async function init(opts: InitOptions = {}): Promise<Backend> {
  const name = opts.backend ?? 'wasm';
  let b: Backend;
  if (name === 'auto') {
    const log = opts.log ?? ((m: string) => console.info(m));
    try {
      b = getBackend('webgpu') ?? (await create('webgpu'));
      log(`metagrad: using WebGPU (${(b as any).description ?? 'adapter'})`);
    } catch (e) {
      b = getBackend('wasm') ?? (await create('wasm'));
      log(`metagrad: WebGPU unavailable (${e instanceof Error ? e.message : e}); using WASM`);
    }
  } else {
    b = getBackend(name) ?? (await create(name));
  }
  useBackend(b);
  return b;
}

async function create(name: Exclude<BackendName, 'auto'>): Promise<Backend> {
  if (name === 'ref') return createRefBackend();
  if (name === 'wasm') return (await import('./kernels/wasm/backend.js')).createWasmBackend();
  if (name === 'webgpu') return (await import('./kernels/webgpu/backend.js')).createWebGPUBackend();
  throw new Error(`init: unknown backend '${name}' (expected 'wasm', 'webgpu', 'auto' or 'ref')`);
}

export * as nn from './engine/nn.js';
export * as addressing from './engine/memory-addressing.js';
export * as optim from './engine/optim.js';
export * as algorithms from './algorithms/index.js';
