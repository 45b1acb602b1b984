// The backends every backend-parameterised test runs on. A backend that fails to initialise fails
// the tests (it is never skipped): CI builds all of them.

import { init } from '../../index.js';
import type { Backend } from '../../kernels/backend.js';
import { useBackend } from '../../engine/runtime.js';

export const backendNames = (process.env.TEST_BACKENDS?.split(',') ?? ['ref', 'wasm']) as ('ref' | 'wasm')[];
export type TestBackend = 'ref' | 'wasm';

const cache = new Map<string, Backend>();

/** Initialises (once) and activates a backend. */
export async function activate(name: TestBackend): Promise<Backend> {
  let b = cache.get(name);
  if (!b) {
    b = await init({ backend: name });
    cache.set(name, b);
  }
  useBackend(b);
  return b;
}
