// Deterministic memory: scopes free what they created, graphs free when their last holder goes,
// and a long second-order training loop keeps a flat footprint.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { activate, backendNames } from './support/backends.js';

type Params = Record<string, Tensor>;

for (const b of backendNames) {
  describe(`memory on ${b}`, () => {
    it('tidy frees everything but its result; dispose frees at once; keep survives the scope', async () => {
      await activate(b);
      const before = mg.memory();
      const kept = mg.tidy(() => {
        const x = mg.ones([100]);
        const y = x.mul(2).add(1);
        const z = mg.keep(y.exp());
        return [y.sum(), z] as const;
      });
      expect(mg.memory().tensors).toBe(before.tensors + 2);
      kept[0].dispose();
      kept[1].dispose();
      kept[1].dispose(); // idempotent
      expect(mg.memory()).toEqual(before);
    });

    it('peakMemory reports the high-water mark of live bytes since resetPeakMemory', async () => {
      await activate(b);
      const base = mg.memory().bytes;
      mg.resetPeakMemory();
      expect(mg.peakMemory()).toBe(base);
      mg.tidy(() => {
        const x = mg.zeros([1000]);           // 1000 elements
        mg.tidy(() => x.add(1).mul(2));       // two more live at once, then freed
      });
      expect(mg.memory().bytes).toBe(base);
      // Three 1000-element float32 tensors at once, plus the scalar constants 1 and 2.
      expect(mg.peakMemory() - base).toBeGreaterThanOrEqual(3000 * 4);
      expect(mg.peakMemory() - base).toBeLessThanOrEqual(3000 * 4 + 16);
      mg.resetPeakMemory();
      expect(mg.peakMemory()).toBe(base);
    });

    it('a scope spans await and still frees', async () => {
      await activate(b);
      const before = mg.memory();
      const v = await mg.tidy(async () => {
        const x = mg.arange(10).mul(3);
        const s = await x.sum().data();
        const y = x.add(s[0]);
        return (await y.data())[9];
      });
      expect(v).toBe(27 + 135);
      expect(mg.memory()).toEqual(before);
    });

    it('a gradient graph kept by vjp is freed when its output is disposed', async () => {
      await activate(b);
      const before = mg.memory();
      const x = mg.randn([5, 5]);
      const [y, back] = mg.vjp((x: Tensor) => x.tanh().matmul(x).sin(), x);
      const seed = mg.onesLike(y);
      const g = back(seed);
      expect(mg.memory().aliveTensors).toBeGreaterThan(before.aliveTensors + 4);
      for (const t of [g, y, x, seed]) t.dispose();
      expect(mg.memory()).toEqual(before);
    });

    it('10,000 second-order MAML-like steps keep live bytes and tensor counts flat', async () => {
      await activate(b);
      const rng = new mg.Random(0);
      let params: Params = {
        w1: rng.normal([1, 8], { std: 0.5 }), b1: mg.zeros([8]), w2: rng.normal([8, 1], { std: 0.5 }), b2: mg.zeros([1]),
      };
      const x = rng.uniform([10, 1], { low: -5, high: 5 }), y = x.sin();
      const loss = (p: Params, x: Tensor, y: Tensor) => mg.mse(x.matmul(p.w1).add(p.b1).tanh().matmul(p.w2).add(p.b2), y);
      const meta = (p: Params) => {
        const g = mg.grad((q: Params) => loss(q, x, y))(p);
        return loss(mg.treeMap((w, gw) => w.sub(gw.mul(0.01)), p, g), x, y);
      };
      const step = () => {
        const next = mg.tidy(() => {
          const g = mg.grad(meta)(params);
          return mg.treeMap((w, gw) => w.sub(gw.mul(0.001)), params, g);
        });
        for (const t of Object.values(params)) t.dispose();
        params = next;
      };
      step();
      const first = mg.memory();
      const iterations = b === 'ref' ? 1000 : 10_000;
      let maxBytes = 0, maxTensors = 0;
      for (let i = 0; i < iterations; i++) {
        step();
        const m = mg.memory();
        maxBytes = Math.max(maxBytes, m.bytes);
        maxTensors = Math.max(maxTensors, m.aliveTensors);
      }
      const last = mg.memory();
      expect(last).toEqual(first);
      expect(maxBytes).toBe(first.bytes);
      expect(maxTensors).toBe(first.aliveTensors);
      for (const t of [...Object.values(params), x, y]) t.dispose();
    }, 300_000);
  });
}

describe('memory limits', () => {
  it('running out of WebAssembly memory gives a clear error, and the backend keeps working', async () => {
    const b = await activate('wasm');
    const before = b.bytesInUse();
    expect(() => b.alloc('float32', 2 ** 30)).toThrow(/wasm backend: out of memory allocating 4294967296 bytes .* limited to 4 GiB/);
    expect(b.bytesInUse()).toBe(before);
    mg.tidy(() => expect(mg.ones([4]).add(1).dataSync()[0]).toBe(2));
  });
});

describe('memory limits (growth)', () => {
  it('a tensor over the 1 GiB block limit, or memory that cannot grow, give clear errors', async () => {
    const b = await activate('wasm');
    expect(() => b.alloc('float32', 2 ** 28)).toThrow('wasm backend: a [268435456] float32 tensor needs 1073741824 bytes, more than the largest single block (1 GiB)');
    const held = [];
    try {
      expect(() => { for (;;) held.push(b.alloc('float32', 2 ** 27)); }).toThrow(/wasm backend: out of memory allocating 536870912 bytes/);
      expect(held.length).toBeGreaterThanOrEqual(6);
    } finally {
      held.forEach((s) => b.free(s));
    }
    mg.tidy(() => expect(mg.ones([4]).add(1).dataSync()[0]).toBe(2));
  }, 120_000);
});
