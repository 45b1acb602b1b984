// Public API.

import type { Backend } from './kernels/backend.js';
import { createRefBackend } from './kernels/ref/backend.js';
import { getBackend, useBackend } from './engine/runtime.js';

export * from './engine/ops.js';
export { Tensor } from './engine/tensor.js';
export { grad, valueAndGrad, vjp, jvp, hvp, jacobian, hessian, backward } from './engine/autodiff.js';
export type { GradOptions } from './engine/autodiff.js';
export { tidy, keep, noGrad, stopGradient, memory, setCheckNumerics, backend } from './engine/runtime.js';
export type { MemoryInfo } from './engine/runtime.js';
export { Random, seed, rand, randn, philox } from './engine/random.js';
export { treeLeaves, treeMap, treeUnflatten, treePaths } from './engine/pytree.js';
export type { Tree } from './engine/pytree.js';
export { primitives } from './engine/primitives.js';
export type { Backend, DType, TypedArray } from './kernels/backend.js';

export type BackendName = 'wasm' | 'ref';

/**
 * Initialises a backend and makes it active: 'wasm' (default: the AssemblyScript SIMD kernels) or
 * 'ref' (plain JavaScript loops in float64 precision: slow, used as the test oracle).
 * @example await init(); const y = tensor([1, 2, 3]).mul(2);
 */
export async function init(opts: { backend?: BackendName } = {}): Promise<Backend> {
  const name = opts.backend ?? 'wasm';
  const b = getBackend(name) ?? (await create(name));
  useBackend(b);
  return b;
}

async function create(name: BackendName): Promise<Backend> {
  if (name === 'ref') return createRefBackend();
  if (name === 'wasm') return (await import('./kernels/wasm/backend.js')).createWasmBackend();
  throw new Error(`init: unknown backend '${name}' (expected 'wasm' or 'ref')`);
}

export * as nn from './engine/nn.js';
export * as optim from './engine/optim.js';
export * as algorithms from './algorithms/index.js';
