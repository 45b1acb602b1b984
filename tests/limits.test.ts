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

describe('wasm kernel working memory', () => {
  it('a kernel whose working memory cannot be had fails like a refused tensor, frees what it took, and the backend stays usable', async () => {
    // A backend of 64 MiB, filled in blocks of 32 MiB down to 256 KiB.
    await mg.init({ backend: 'wasm', memoryLimit: 64 * 2 ** 20 });
    try {
      expect(mg.memory().backend).toBe('wasm');
      const x = mg.ones([1, 1, 2, 2]), w = mg.ones([1, 1, 1, 1]);
      // 2002 x 2002 padded floats: 16 MB of working memory for a 3x3 output.
      const conv = () => mg.conv2d(x, w, { padding: 1000, stride: 1000 });
      const fill = (): mg.Tensor[] => {
        const held: mg.Tensor[] = [];
        for (let n = 2 ** 23; n >= 2 ** 16; n /= 2) {
          for (;;) {
            try { held.push(mg.zeros([n])); } catch (e) { expect((e as Error).message).toMatch(/^zeros: /); break; }
          }
        }
        return held;
      };
      const held = fill();
      expect(conv).toThrow(/^conv2d: wasm backend: out of memory allocating 16032016 bytes of working memory \(\d+ bytes live; the backend's memory is limited to 64 MiB\)/);
      expect(conv).toThrow(/out of memory/);
      held.forEach((t) => t.dispose());
      // Nothing of the failed calls stayed allocated: as much fits again.
      const again = fill();
      expect(again.reduce((s, t) => s + t.size, 0)).toBe(held.reduce((s, t) => s + t.size, 0));
      again.forEach((t) => t.dispose());
      expect(Array.from(await mg.tidy(() => conv().data()))).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0]);
      x.dispose(); w.dispose();
      expect(mg.memory().bytes).toBe(0);
    } finally {
      await mg.init({ backend: 'wasm' });
    }
  });

  it('a kernel that fails after taking some working memory gives it all back', async () => {
    await mg.init({ backend: 'wasm', memoryLimit: 128 * 2 ** 20 });
    try {
      const x = mg.ones([1, 8, 1001, 1001]), w = mg.ones([8, 8, 3, 3]);
      // The input gradient of a convolution dilated by 500 flips the filter into working memory,
      // then pads dy by 1000 on each side: 128 MB more than the 128 MiB hold.
      const dx = () => mg.tidy(() => mg.grad((v: mg.Tensor) => mg.conv2d(v, w, { dilation: 500 }).sum())(x));
      const fillTotal = (): number => {
        const held: mg.Tensor[] = [];
        for (let n = 2 ** 23; n >= 256; n /= 2) {
          for (;;) {
            try { held.push(mg.zeros([n])); } catch { break; }
          }
        }
        const total = held.reduce((s, t) => s + t.size, 0);
        held.forEach((t) => t.dispose());
        return total;
      };
      // The forward pass once first: its matrix product keeps packing buffers for good.
      mg.tidy(() => mg.conv2d(x, w, { dilation: 500 }).sum()).dispose();
      const before = fillTotal();
      expect(dx).toThrow(/conv2dGradInput: wasm backend: out of memory allocating 128\d{6} bytes of working memory/);
      expect(fillTotal()).toBe(before);
      x.dispose(); w.dispose();
      expect(mg.memory().bytes).toBe(0);
    } finally {
      await mg.init({ backend: 'wasm' });
    }
  });

  it('memoryLimit is a whole number of bytes from 16 MiB to 4 GiB, for the wasm backend', async () => {
    await expect(mg.init({ memoryLimit: 2 ** 20 })).rejects.toThrow('init: memoryLimit must be in [16777216, 4294967296], got 1048576');
    await expect(mg.init({ memoryLimit: 2.5e7 + 0.5 })).rejects.toThrow('init: memoryLimit must be a whole number, got 25000000.5');
    await expect(mg.init({ backend: 'ref', memoryLimit: 2 ** 26 })).rejects.toThrow("init: memoryLimit is for the wasm backend, not 'ref'");
    const b = await mg.init({ backend: 'wasm', memoryLimit: 2 ** 25 + 1000 });
    try {
      expect(b.limits.totalBytes).toBe(2 ** 25);
      expect(() => mg.zeros([2 ** 23 + 1])).toThrow(/zeros: a \[8388609\] float32 tensor needs 32\.0 MiB.* of its 32\.0 MiB free/);
    } finally {
      await mg.init({ backend: 'wasm' });
    }
  });

  it('geometry whose padded image or unfolded columns could not be addressed is refused before the kernel runs', async () => {
    await activate('wasm');
    const x = mg.ones([1, 1, 2, 2]), w = mg.ones([1, 1, 1, 1]);
    // 65536 x 65536 padded floats: 2^32 elements, which 32-bit sizes would wrap to 0.
    expect(() => mg.conv2d(x, w, { padding: 32767, stride: 32767 })).toThrow('conv2d: the wasm backend pads each image into working memory, and padding [32767, 32767] of a [1, 2, 2] image (kernel [1, 1], dilation [1, 1]) needs more than its largest block (1 GiB)');
    expect(Array.from(await mg.tidy(() => mg.conv2d(x, w, { padding: 1, stride: 2 }).data()))).toEqual([0, 0, 0, 1]);
    x.dispose(); w.dispose();
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
