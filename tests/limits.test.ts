// Requests larger than a backend can hold fail at once, before any host array is built, with the
// bytes requested and available; a kernel whose output would not fit fails the same way and the
// backend stays usable; `threads` is checked.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { useBackend } from '../engine/runtime.js';
import type { Backend } from '../kernels/backend.js';
import { activate } from './support/backends.js';

describe('memory limits', () => {
  it('wasm: a tensor past the largest block is refused at once, naming the op and the bytes', async () => {
    await activate('wasm');
    const t0 = performance.now();
    expect(() => mg.zeros([2 ** 29])).toThrow('zeros: a [536870912] float32 tensor needs 2.00 GiB; the wasm backend holds at most 1.00 GiB in one tensor');
    expect(() => mg.ones([2 ** 31], { dtype: 'float64' })).toThrow(/ones: a \[2147483648\] float64 tensor needs 16\.00 GiB/);
    expect(() => new mg.Random(0).normal([2 ** 16, 2 ** 16])).toThrow(/normal: a \[65536,65536\] float32 tensor needs 16\.00 GiB/);
    expect(() => mg.eye(2 ** 15)).toThrow(/eye: a \[32768,32768\] float32 tensor needs 4\.00 GiB/);
    expect(performance.now() - t0, 'refused before building anything').toBeLessThan(1000);
    expect(await mg.tidy(() => mg.ones([3]).add(1).data())).toEqual(new Float32Array([2, 2, 2]));
  });

  it('a backend that is nearly full refuses creations and kernel outputs with the bytes free, and stays usable', async () => {
    const ref = await activate('ref');
    // The ref backend with small limits: 4 KiB per tensor, 16 KiB in all.
    const small: Backend = { ...ref, limits: { storageBytes: 4096, totalBytes: 16384 } };
    useBackend(small);
    try {
      const a = mg.ones([256, 2]);                                       // 2 KiB (float32)
      expect(() => mg.matmul(a, a, { transB: true })).toThrow('matmul: a [256,256] float32 tensor needs 262144 bytes; the ref backend holds at most 4096 bytes in one tensor');
      const held = [mg.ones([1024]), mg.ones([1024]), mg.ones([1024])];   // 12 KiB more: 14 KiB in use
      expect(() => mg.ones([1024])).toThrow(/ones: a \[1024\] float32 tensor needs 4096 bytes; the ref backend holds at most 4096 bytes in one tensor, 2048 bytes of its 16384 bytes free/);
      held.forEach((t) => t.dispose());
      expect(Array.from(await mg.tidy(() => a.sum(0).data()))).toEqual([256, 256]);
      a.dispose();
    } finally {
      useBackend(ref);
    }
  });
});

describe("bounds mode (init({ checks: 'bounds' }))", () => {
  it('a kernel that writes outside its tensor is caught, named, and the backend stays usable', async () => {
    const b = await mg.init({ backend: 'wasm', checks: 'bounds' });
    try {
      const x = mg.ones([64]);
      const info = { storage: x._data!.storage, shape: x.shape, dtype: x.dtype };
      // Called directly with a negative offset (the engine's checks never let one through).
      expect(() => b.kernels.pad([info], { before: [-2], after: [2] }, { shape: [64], dtype: 'float32' })).toThrow(/^pad: wrote outside a tensor \(byte -8 from the start of a \[64\] float32 storage\): bounds check failed$/);
      expect(Array.from(await mg.tidy(() => x.add(1).sum().data()))).toEqual([128]);
      x.dispose();
      expect(mg.memory().bytes).toBe(0);
    } finally {
      await mg.init({ backend: 'wasm' });
    }
  });
});

describe('threads', () => {
  it('must be a whole number from 1 to MAX_THREADS; the other backends have none', async () => {
    expect(mg.MAX_THREADS).toBe(64);
    await expect(mg.init({ threads: 0 })).rejects.toThrow('init: threads must be in [1, 64], got 0');
    await expect(mg.init({ threads: 1.5 })).rejects.toThrow('init: threads must be a whole number, got 1.5');
    await expect(mg.init({ threads: 128 })).rejects.toThrow('init: threads must be in [1, 64], got 128');
    await expect(mg.init({ backend: 'ref', threads: 2 })).rejects.toThrow("init: the ref backend has no threads (threads: 2 is for 'wasm')");
    await expect(mg.init({ backend: 'cuda' as any })).rejects.toThrow("init: backend must be 'wasm', 'webgpu', 'ref' or 'auto', got 'cuda'");
  });
});
