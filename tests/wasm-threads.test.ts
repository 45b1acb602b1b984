// The multi-threaded WASM backend (createWasmBackend({ threads: 2 })): every split kernel gives
// results bit-identical to the single-threaded backend, memory stays flat over a training-like
// loop, disposing stops the workers and the backend keeps working, and a process that never
// disposes still exits (the workers are unref'd).
//
// Both backends live in this process: each has its own memory (the threaded one a shared memory
// with one worker), so the same kernel is run on both and the bytes of the outputs compared.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as mg from '../index.js';
import type { DType, Storage } from '../kernels/backend.js';
import { createWasmBackend, type WasmBackend } from '../kernels/wasm/backend.js';
import { useBackend } from '../engine/runtime.js';
import { sizeOf } from '../kernels/strides.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

let one: WasmBackend;
let two: WasmBackend;

beforeAll(async () => {
  one = await createWasmBackend();
  two = await createWasmBackend({ threads: 2 });
});

afterAll(async () => {
  await two?.dispose();
});

function data(n: number, seed: number): Float64Array {
  let s = seed | 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 4;
  }
  return out;
}

type In = { shape: number[]; data?: ArrayLike<number> };

/** Runs kernel `name` on backend `be`; returns the output's bytes. */
function run(be: WasmBackend, name: string, dtype: DType, inputs: In[], attrs: any, outShape: number[]): Uint8Array {
  const st: Storage[] = inputs.map((x, i) => be.upload(dtype, x.data ?? data(sizeOf(x.shape), 7 * i + 1)));
  try {
    const out = be.kernels[name](inputs.map((x, i) => ({ storage: st[i], shape: x.shape, dtype })), attrs, { shape: outShape, dtype });
    try {
      const v = be.readSync(out)!;
      return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
    } finally {
      be.free(out);
    }
  } finally {
    st.forEach((s) => be.free(s));
  }
}

/** Runs on both backends and expects the same bytes; returns how many parallel dispatches it took. */
function same(name: string, dtype: DType, inputs: In[], attrs: any, outShape: number[]): number {
  const a = run(one, name, dtype, inputs, attrs, outShape);
  const calls = two.parallelStats().calls;
  const b = run(two, name, dtype, inputs, attrs, outShape);
  const split = two.parallelStats().calls - calls;
  expect(b.length).toBe(a.length);
  let diff = -1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { diff = i; break; }
  if (diff >= 0) {
    throw new Error(`${name} ${dtype} -> [${outShape}]: threads=2 differs from threads=1 at byte ${diff} ` +
      `(inputs ${inputs.map((x) => `[${x.shape}]`).join(' ')}, attrs ${JSON.stringify(attrs)})`);
  }
  return split;
}

const DTYPES: DType[] = ['float32', 'float64'];

describe('wasm threads: 2 is bit-identical to 1 thread', () => {
  it('starts one worker', () => {
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
  });

  it('matmul: square, odd edges, transposes, M > N, batches of small products, tiny (inline)', () => {
    for (const dtype of DTYPES) {
      expect(same('matmul', dtype, [{ shape: [256, 256] }, { shape: [256, 256] }], {}, [256, 256])).toBeGreaterThan(0);
      expect(same('matmul', dtype, [{ shape: [37, 301] }, { shape: [301, 133] }], {}, [37, 133])).toBeGreaterThan(0);
      expect(same('matmul', dtype, [{ shape: [301, 37] }, { shape: [133, 301] }], { transA: true, transB: true }, [37, 133])).toBeGreaterThan(0);
      expect(same('matmul', dtype, [{ shape: [999, 64] }, { shape: [64, 12] }], {}, [999, 12])).toBeGreaterThan(0);
      expect(same('matmul', dtype, [{ shape: [12, 40, 48] }, { shape: [48, 36] }], {}, [12, 40, 36])).toBeGreaterThan(0);
      expect(same('matmul', dtype, [{ shape: [3, 5] }, { shape: [5, 4] }], {}, [3, 4])).toBe(0);
    }
  });

  // [x shape, w shape, attrs]: Winograd (float32), im2col with padding, stride 2, pointwise 1x1,
  // direct small filters (Conv4's first layer), dilation.
  const CONVS: [number[], number[], any][] = [
    [[10, 32, 14, 14], [32, 32, 3, 3], { pad: [1, 1] }],
    [[6, 16, 15, 15], [24, 16, 3, 3], { stride: [2, 2], pad: [1, 1] }],
    [[4, 64, 12, 12], [32, 64, 1, 1], {}],
    [[40, 1, 28, 28], [64, 1, 3, 3], { pad: [1, 1] }],
    [[5, 8, 20, 20], [16, 8, 3, 3], { dilation: [2, 2] }],
    [[3, 20, 9, 9], [20, 20, 3, 3], { pad: [1, 1] }],
  ];
  const outShape = (x: number[], w: number[], a: any) => {
    const [s, p, d] = [a.stride ?? [1, 1], a.pad ?? [0, 0], a.dilation ?? [1, 1]];
    const o = (i: number) => Math.floor((x[2 + i] + 2 * p[i] - d[i] * (w[2 + i] - 1) - 1) / s[i]) + 1;
    return [x[0], w[0], o(0), o(1)];
  };

  for (const dtype of DTYPES) {
    it(`conv2d, conv2dGradInput, conv2dGradFilter ${dtype}`, () => {
      let splits = 0;
      for (const [xs, ws, attrs] of CONVS) {
        const ys = outShape(xs, ws, attrs);
        splits += same('conv2d', dtype, [{ shape: xs }, { shape: ws }], attrs, ys);
        splits += same('conv2dGradInput', dtype, [{ shape: ys }, { shape: ws }], attrs, xs);
        splits += same('conv2dGradFilter', dtype, [{ shape: xs }, { shape: ys }], attrs, ws);
      }
      expect(splits).toBeGreaterThan(10);
    });
  }

  it('elementwise: unary and broadcasting binary ops, large (split) and small (inline)', () => {
    for (const dtype of DTYPES) {
      for (const op of ['exp', 'tanh', 'relu', 'neg', 'sigmoid']) {
        expect(same(op, dtype, [{ shape: [100_003] }], {}, [100_003])).toBe(1);
        expect(same(op, dtype, [{ shape: [1000] }], {}, [1000])).toBe(0);
      }
      for (const op of ['add', 'mul', 'sub', 'div', 'maximum', 'greater']) {
        expect(same(op, dtype, [{ shape: [70_001] }, { shape: [70_001] }], {}, [70_001])).toBe(1);
        expect(same(op, dtype, [{ shape: [300, 257] }, { shape: [257] }], {}, [300, 257])).toBe(1);
        expect(same(op, dtype, [{ shape: [3, 1, 20000] }, { shape: [1, 2, 20000] }], {}, [3, 2, 20000])).toBe(1);
      }
      const pos = { shape: [50_000], data: data(50_000, 3).map(Math.abs) };
      expect(same('pow', dtype, [pos, { shape: [50_000] }], {}, [50_000])).toBe(1);
    }
  });

  it('max pooling (forward, gradient, select) split over planes; strided copies split along the outer axis', () => {
    const geo = { kernel: [2, 2], stride: [2, 2], pad: [0, 0] };
    for (const dtype of DTYPES) {
      expect(same('maxPool2d', dtype, [{ shape: [8, 64, 28, 28] }], geo, [8, 64, 14, 14])).toBe(1);
      expect(same('maxPool2dGrad', dtype, [{ shape: [8, 64, 28, 28] }, { shape: [8, 64, 14, 14] }], geo, [8, 64, 28, 28])).toBe(1);
      expect(same('maxPool2dSelect', dtype, [{ shape: [8, 64, 28, 28] }, { shape: [8, 64, 28, 28] }], geo, [8, 64, 14, 14])).toBe(1);
      // Overlapping windows clipped at the padded edges (not the 2x2 SIMD path), odd plane count.
      const odd = { kernel: [3, 3], stride: [2, 2], pad: [1, 1] };
      expect(same('maxPool2d', dtype, [{ shape: [3, 41, 27, 27] }], odd, [3, 41, 14, 14])).toBe(1);
      expect(same('maxPool2dGrad', dtype, [{ shape: [3, 41, 27, 27] }, { shape: [3, 41, 14, 14] }], odd, [3, 41, 27, 27])).toBe(1);
      expect(same('maxPool2d', dtype, [{ shape: [1, 2, 8, 8] }], geo, [1, 2, 4, 4])).toBe(0);
      expect(same('broadcastTo', dtype, [{ shape: [1, 64, 1, 1] }], { shape: [75, 64, 14, 14] }, [75, 64, 14, 14])).toBe(1);
      expect(same('transpose', dtype, [{ shape: [64, 75, 14, 14] }], { perm: [1, 0, 2, 3] }, [75, 64, 14, 14])).toBe(1);
      expect(same('transpose', dtype, [{ shape: [300, 700] }], { perm: [1, 0] }, [700, 300])).toBe(1);
      expect(same('broadcastTo', dtype, [{ shape: [1, 8] }], { shape: [4, 8] }, [4, 8])).toBe(0);
    }
  });

  it('reductions split over kept outputs only: rows, columns, per-channel, max', () => {
    for (const dtype of DTYPES) {
      for (const op of ['sum', 'max']) {
        expect(same(op, dtype, [{ shape: [3000, 70] }], {}, [3000, 1])).toBe(1);
        expect(same(op, dtype, [{ shape: [700, 301] }], {}, [1, 301])).toBe(1);
        expect(same(op, dtype, [{ shape: [16, 64, 14, 14] }], {}, [1, 64, 1, 1])).toBe(1);
        expect(same(op, dtype, [{ shape: [5, 4, 3000] }], {}, [5, 1, 3000])).toBe(1);
        // A single output: nothing to split.
        expect(same(op, dtype, [{ shape: [200_000] }], {}, [1])).toBe(0);
      }
    }
  });
});

describe('wasm threads: the worker took part', () => {
  // Threads take jobs as they come, so the main thread could in principle run them all; over the
  // hundreds of split calls above the worker must have run some (else nothing above tested it).
  it('ran jobs on the worker thread', () => {
    const s = two.parallelStats();
    expect(s.calls).toBeGreaterThan(100);
    expect(s.workerJobs).toBeGreaterThan(0);
  });
});

describe('wasm threads: memory and lifetime', () => {
  it('a training-like second-order loop keeps live bytes and the memory size flat', () => {
    useBackend(two);
    try {
      const rng = new mg.Random(1);
      let params = { w: rng.normal([16, 1, 3, 3], { std: 0.3 }), v: rng.normal([16 * 14 * 14, 5], { std: 0.05 }) };
      const x = rng.normal([24, 1, 28, 28]);
      const y = rng.normal([24, 5]);
      type P = typeof params;
      const loss = (p: P) => mg.mse(mg.maxPool2d(mg.conv2d(x, p.w, { padding: 1 }).relu(), 2).reshape([24, -1]).matmul(p.v), y);
      const meta = (p: P) => {
        const g = mg.grad(loss)(p);
        return loss({ w: p.w.sub(g.w.mul(0.1)), v: p.v.sub(g.v.mul(0.1)) });
      };
      const step = () => {
        const next = mg.tidy(() => {
          const g = mg.grad(meta)(params);
          return { w: params.w.sub(g.w.mul(0.01)), v: params.v.sub(g.v.mul(0.01)) };
        });
        params.w.dispose(); params.v.dispose();
        params = next;
      };
      const calls = two.parallelStats().calls;
      step(); step();
      const bytes = two.bytesInUse(), mem = two.memoryBytes(), m0 = mg.memory();
      for (let i = 0; i < 15; i++) step();
      expect(two.bytesInUse()).toBe(bytes);
      expect(two.memoryBytes()).toBe(mem);
      expect(mg.memory()).toEqual(m0);
      expect(two.parallelStats().calls - calls).toBeGreaterThan(15);
      for (const t of [params.w, params.v, x, y]) t.dispose();
    } finally {
      useBackend(one);
    }
  });

  it('growing the shared memory keeps earlier storages readable, and workers see the new pages', () => {
    const d = data(1000, 5);
    const s = two.upload('float32', d);
    const before = two.memoryBytes();
    const big = two.alloc('float32', 48 << 20); // 192 MiB: the memory must grow
    expect(two.memoryBytes()).toBeGreaterThan(before + (190 << 20));
    expect(Array.from(two.readSync(s)!)).toEqual(Array.from(Float32Array.from(d)));
    two.free(big);
    // The inputs now sit in the grown part (the freed block is reused), where the worker reads them.
    const jobs = two.parallelStats().workerJobs;
    // Threads take jobs as they come: repeat until the worker has run some (at most 100 calls).
    for (let i = 0; i < 100 && two.parallelStats().workerJobs === jobs; i++) {
      expect(same('matmul', 'float32', [{ shape: [300, 200] }, { shape: [200, 300] }], {}, [300, 300])).toBe(1);
    }
    expect(two.parallelStats().workerJobs).toBeGreaterThan(jobs);
    two.free(s);
  });

  it('dispose stops the workers; the backend keeps working on one thread', async () => {
    const b = await createWasmBackend({ threads: 2 });
    const ref = run(one, 'matmul', 'float32', [{ shape: [128, 128] }, { shape: [128, 128] }], {}, [128, 128]);
    expect(run(b, 'matmul', 'float32', [{ shape: [128, 128] }, { shape: [128, 128] }], {}, [128, 128])).toEqual(ref);
    const live = b.bytesInUse();
    await b.dispose();
    await b.dispose();
    expect(b.threads).toBe(1);
    const stats = b.parallelStats();
    expect(stats.calls).toBeGreaterThan(0);
    expect(run(b, 'matmul', 'float32', [{ shape: [128, 128] }, { shape: [128, 128] }], {}, [128, 128])).toEqual(ref);
    expect(b.parallelStats()).toEqual(stats);
    expect(b.bytesInUse()).toBe(live);
  });

  it('init({ threads }) picks the threaded backend; a process that never disposes it exits', async (ctx) => {
    if (!existsSync(ROOT + 'dist/index.js')) {
      if (process.env.CI) throw new Error('dist/ is not built');
      ctx.skip();
    }
    const script = `
      const mg = await import(${JSON.stringify(ROOT + 'dist/index.js')});
      const b = await mg.init({ backend: 'wasm', threads: 2 });
      const r = mg.tidy(() => mg.ones([300, 300]).matmul(mg.ones([300, 300])).sum().dataSync()[0]);
      console.log(JSON.stringify({ threads: b.threads, r }));`;
    const t0 = Date.now();
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(JSON.parse(out.trim())).toEqual({ threads: 2, r: 300 ** 3 });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });
});
