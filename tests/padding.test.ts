// 'same' and per-side padding of convolutions and pooling, against float64 references written here
// from the definitions (forward, both gradients of sum(y * R), and second order through the
// backward rules), for odd and even windows, strides 1 to 3 and dilations 1 and 2, on ref, WASM and
// WebGPU; and 'same' against TensorFlow.js (the convention it defines). With CI set a missing WebGPU
// adapter fails; elsewhere it skips.

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import { useBackend } from '../engine/runtime.js';
import type { Backend } from '../kernels/backend.js';

type Pads = [number, number, number, number];   // top, bottom, left, right
interface ConvCase { n: number; c: number; h: number; w: number; o: number; kh: number; kw: number; s: [number, number]; d: [number, number]; padding: mg.Padding; pads: Pads }

/** The padding a 'same' window of extent k needs at this stride: ceil(size / stride) outputs, the odd row or column at the end. */
function samePads(h: number, w: number, ek: [number, number], s: [number, number]): Pads {
  const t = [h, w].map((n, i) => Math.max((Math.ceil(n / s[i]) - 1) * s[i] + ek[i] - n, 0));
  return [Math.floor(t[0] / 2), t[0] - Math.floor(t[0] / 2), Math.floor(t[1] / 2), t[1] - Math.floor(t[1] / 2)];
}
const outSize = (n: number, ek: number, s: number, a: number, b: number) => Math.floor((n + a + b - ek) / s) + 1;

/** Every (output, input, filter tap) triple of the convolution, from its definition. */
function convTriples(c: ConvCase, f: (yi: number, xi: number, wi: number) => void): number[] {
  const [t, , l] = c.pads;
  const oh = outSize(c.h, c.d[0] * (c.kh - 1) + 1, c.s[0], c.pads[0], c.pads[1]), ow = outSize(c.w, c.d[1] * (c.kw - 1) + 1, c.s[1], c.pads[2], c.pads[3]);
  for (let n = 0; n < c.n; n++) for (let o = 0; o < c.o; o++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    for (let ch = 0; ch < c.c; ch++) for (let p = 0; p < c.kh; p++) for (let q = 0; q < c.kw; q++) {
      const hh = i * c.s[0] - t + p * c.d[0], ww = j * c.s[1] - l + q * c.d[1];
      if (hh < 0 || hh >= c.h || ww < 0 || ww >= c.w) continue;
      f(((n * c.o + o) * oh + i) * ow + j, ((n * c.c + ch) * c.h + hh) * c.w + ww, ((o * c.c + ch) * c.kh + p) * c.kw + q);
    }
  }
  return [c.n, c.o, oh, ow];
}

const convCases = fc.record({
  n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 2 }), h: fc.integer({ min: 1, max: 7 }), w: fc.integer({ min: 1, max: 7 }),
  o: fc.integer({ min: 1, max: 2 }), kh: fc.integer({ min: 1, max: 4 }), kw: fc.integer({ min: 1, max: 4 }),
  s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })), d: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
  sides: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
  same: fc.boolean(),
}).map((g): ConvCase => {
  const ek: [number, number] = [g.d[0] * (g.kh - 1) + 1, g.d[1] * (g.kw - 1) + 1];
  const pads = g.same ? samePads(g.h, g.w, ek, g.s) : g.sides as Pads;
  const padding: mg.Padding = g.same ? 'same' : [[pads[0], pads[1]], [pads[2], pads[3]]];
  return { n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, kh: g.kh, kw: g.kw, s: g.s, d: g.d, padding, pads };
}).filter((c) => outSize(c.h, c.d[0] * (c.kh - 1) + 1, c.s[0], c.pads[0], c.pads[1]) > 0 && outSize(c.w, c.d[1] * (c.kw - 1) + 1, c.s[1], c.pads[2], c.pads[3]) > 0);

const values = (seed: number, n: number) => new mg.Random(seed).uniformValues(n, -1, 1);
const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `${what}: element ${i}: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(tol * (1 + Math.abs(want[i])));
};

let ref: Backend;
const gpu: { b: Backend | null; why: string } = { b: null, why: '' };
beforeAll(async () => {
  try { gpu.b = await mg.init({ backend: 'webgpu' }); } catch (e) { gpu.why = e instanceof Error ? e.message : String(e); }
  await mg.init({ backend: 'wasm' });
  ref = await mg.init({ backend: 'ref' });
  await tf.setBackend('cpu');
}, 60_000);

async function backendFor(name: string, ctx: { skip: (note?: string) => void }): Promise<Backend> {
  if (name === 'ref') return ref;
  if (name === 'wasm') return mg.init({ backend: 'wasm' });
  if (gpu.b) return gpu.b;
  if (process.env.CI) throw new Error(`WebGPU is not available in CI: ${gpu.why}`);
  ctx.skip(`no WebGPU adapter here (${gpu.why})`);
  throw new Error('unreachable');
}

describe("padding: 'same' and per side", () => {
  for (const name of ['ref', 'wasm', 'webgpu']) {
    it(`conv2d on ${name}: forward and both gradients equal the definition`, async (ctx) => {
      const b = await backendFor(name, ctx);
      const dtype = name === 'ref' ? 'float64' : 'float32', tol = name === 'ref' ? 1e-12 : 1e-5;
      await fc.assert(fc.asyncProperty(convCases, fc.nat(1000), async (c, seed) => {
        const xv = values(seed, c.n * c.c * c.h * c.w), wv = values(seed + 1, c.o * c.c * c.kh * c.kw);
        const yShape = convTriples(c, () => {});
        const rv = values(seed + 2, yShape.reduce((p, q) => p * q, 1));
        const y = new Float64Array(rv.length), dx = new Float64Array(xv.length), dw = new Float64Array(wv.length);
        convTriples(c, (yi, xi, wi) => { y[yi] += xv[xi] * wv[wi]; dx[xi] += rv[yi] * wv[wi]; dw[wi] += rv[yi] * xv[xi]; });
        useBackend(b);
        await mg.tidy(async () => {
          const x = mg.tensor(xv, [c.n, c.c, c.h, c.w], { dtype }), w = mg.tensor(wv, [c.o, c.c, c.kh, c.kw], { dtype }), r = mg.tensor(rv, yShape, { dtype });
          const opts = { stride: c.s, dilation: c.d, padding: c.padding };
          const out = mg.conv2d(x, w, opts);
          expect(out.shape, JSON.stringify(c)).toEqual(yShape);
          if (c.padding === 'same') expect(out.shape.slice(2)).toEqual([Math.ceil(c.h / c.s[0]), Math.ceil(c.w / c.s[1])]);
          close(await out.data(), y, tol, `y ${JSON.stringify(c)}`);
          const [gx, gw] = mg.grad(([a, v]: Tensor[]) => mg.sum(mg.mul(mg.conv2d(a, v, opts), r)))([x, w]);
          close(await gx.data(), dx, tol, `dx ${JSON.stringify(c)}`);
          close(await gw.data(), dw, tol, `dw ${JSON.stringify(c)}`);
        });
      }), { numRuns: name === 'webgpu' ? 25 : 60, seed: 7 });
    }, 240_000);
  }

  it('conv2d second order through the backward rules (float64, ref): HVP against central differences of the gradient', async () => {
    useBackend(ref);
    await fc.assert(fc.asyncProperty(convCases, fc.nat(1000), async (c, seed) => {
      const f64 = { dtype: 'float64' as const };
      const x = mg.tensor(values(seed, c.n * c.c * c.h * c.w), [c.n, c.c, c.h, c.w], f64), w = mg.tensor(values(seed + 1, c.o * c.c * c.kh * c.kw), [c.o, c.c, c.kh, c.kw], f64);
      const opts = { stride: c.s, dilation: c.d, padding: c.padding };
      const loss = ([a, v]: Tensor[]) => mg.sum(mg.tanh(mg.conv2d(a, v, opts)));
      const vx = mg.tensor(values(seed + 3, x.size), x.shape as number[], f64), vw = mg.tensor(values(seed + 4, w.size), w.shape as number[], f64);
      const hv = mg.hvp(loss, [x, w], [vx, vw]).map((t) => t.dataSync());
      const h = 1e-5;
      const gradAt = (e: number) => mg.grad(loss)([mg.add(x, mg.mul(vx, e)), mg.add(w, mg.mul(vw, e))]).map((t) => t.dataSync());
      const [plus, minus] = [gradAt(h), gradAt(-h)];
      hv.forEach((got, k) => close(got, plus[k].map((p, i) => (p - minus[k][i]) / (2 * h)), 1e-6, `hvp ${k} ${JSON.stringify(c)}`));
    }), { numRuns: 25, seed: 11 });
  }, 120_000);

  for (const name of ['ref', 'wasm', 'webgpu']) {
    it(`maxPool2d and avgPool2d on ${name}: forward and gradient equal the definition`, async (ctx) => {
      const b = await backendFor(name, ctx);
      const dtype = name === 'ref' ? 'float64' : 'float32', tol = name === 'ref' ? 1e-12 : 1e-5;
      const cases = fc.record({
        nc: fc.integer({ min: 1, max: 3 }), h: fc.integer({ min: 1, max: 7 }), w: fc.integer({ min: 1, max: 7 }), k: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
        s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })), same: fc.boolean(), sides: fc.tuple(fc.nat(3), fc.nat(3), fc.nat(3), fc.nat(3)),
      }).map((g) => {
        const pads = (g.same ? samePads(g.h, g.w, g.k, g.s) : g.sides.map((p, i) => Math.min(p, g.k[i < 2 ? 0 : 1] - 1))) as Pads;
        return { ...g, pads, padding: (g.same ? 'same' : [[pads[0], pads[1]], [pads[2], pads[3]]]) as mg.Padding };
      }).filter((g) => outSize(g.h, g.k[0], g.s[0], g.pads[0], g.pads[1]) > 0 && outSize(g.w, g.k[1], g.s[1], g.pads[2], g.pads[3]) > 0);
      await fc.assert(fc.asyncProperty(cases, fc.nat(1000), async (g, seed) => {
        const oh = outSize(g.h, g.k[0], g.s[0], g.pads[0], g.pads[1]), ow = outSize(g.w, g.k[1], g.s[1], g.pads[2], g.pads[3]);
        const xv = values(seed, g.nc * g.h * g.w), rv = values(seed + 1, g.nc * oh * ow);
        const mx = new Float64Array(rv.length), av = new Float64Array(rv.length), dmx = new Float64Array(xv.length), dav = new Float64Array(xv.length);
        for (let p = 0; p < g.nc; p++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
          const yi = (p * oh + i) * ow + j;
          let best = -1, sum = 0;
          for (let a = 0; a < g.k[0]; a++) for (let c = 0; c < g.k[1]; c++) {
            const hh = i * g.s[0] - g.pads[0] + a, ww = j * g.s[1] - g.pads[2] + c;
            if (hh < 0 || hh >= g.h || ww < 0 || ww >= g.w) continue;
            const xi = (p * g.h + hh) * g.w + ww;
            if (best < 0 || xv[xi] > xv[best]) best = xi;   // the first maximum in row-major order
            sum += xv[xi];
            dav[xi] += rv[yi] / (g.k[0] * g.k[1]);
          }
          mx[yi] = xv[best]; dmx[best] += rv[yi];
          av[yi] = sum / (g.k[0] * g.k[1]);                 // padding counts as zeros in the average
        }
        useBackend(b);
        await mg.tidy(async () => {
          const x = mg.tensor(xv, [1, g.nc, g.h, g.w], { dtype }), r = mg.tensor(rv, [1, g.nc, oh, ow], { dtype });
          for (const [op, want, dwant] of [[mg.maxPool2d, mx, dmx], [mg.avgPool2d, av, dav]] as const) {
            const opts = { stride: g.s, padding: g.padding };
            close(await op(x, g.k, opts).data(), want, tol, `${op.name} ${JSON.stringify(g)}`);
            close(await mg.grad((a: Tensor) => mg.sum(mg.mul(op(a, g.k, opts), r)))(x).data(), dwant, tol, `d ${op.name} ${JSON.stringify(g)}`);
          }
        });
      }), { numRuns: name === 'webgpu' ? 25 : 60, seed: 5 });
    }, 240_000);
  }

  it("'same' agrees with TensorFlow.js (conv2d and maxPool, even and odd windows, strides 1 to 3)", async () => {
    useBackend(ref);
    for (const k of [1, 2, 3, 4]) for (const s of [1, 2, 3]) for (const [h, w] of [[5, 6], [4, 7]]) {
      const xv = values(k * 10 + s, h * w * 2), wv = values(k + s, k * k * 2 * 3);
      const ours = mg.conv2d(mg.tensor(xv, [1, 2, h, w], { dtype: 'float64' }), mg.tensor(wv, [3, 2, k, k], { dtype: 'float64' }), { stride: s, padding: 'same' });
      // tfjs: NHWC input, [kh, kw, in, out] filter.
      const x = tf.transpose(tf.tensor4d(Float32Array.from(xv), [1, 2, h, w]), [0, 2, 3, 1]), f = tf.transpose(tf.tensor4d(Float32Array.from(wv), [3, 2, k, k]), [2, 3, 1, 0]);
      const theirs = tf.transpose(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, s, 'same'), [0, 3, 1, 2]);
      expect(ours.shape, `conv k=${k} s=${s}`).toEqual(theirs.shape);
      close(ours.dataSync(), theirs.dataSync(), 1e-5, `conv2d 'same' k=${k} s=${s} [${h},${w}]`);
      const mp = mg.maxPool2d(mg.tensor(xv, [1, 2, h, w], { dtype: 'float64' }), k, { stride: s, padding: 'same' });
      const tp = tf.transpose(tf.maxPool(x as tf.Tensor4D, k, s, 'same'), [0, 3, 1, 2]);
      expect(mp.shape).toEqual(tp.shape);
      close(mp.dataSync(), tp.dataSync(), 1e-6, `maxPool 'same' k=${k} s=${s}`);
      tf.dispose([x, f, theirs, tp]);
      ours.dispose(); mp.dispose();
    }
  });

  it('bad padding is refused naming the op and the value', () => {
    useBackend(ref);
    const x = mg.ones([1, 1, 4, 4]), w = mg.ones([1, 1, 2, 2]);
    expect(() => mg.conv2d(x, w, { padding: -1 })).toThrow(/conv2d: padding must be >= 0, got -1/);
    expect(() => mg.conv2d(x, w, { padding: [[1, 2], [1]] as any })).toThrow(/conv2d: padding \[\[top, bottom\], \[left, right\]\] needs pairs/);
    expect(() => mg.conv2d(x, w, { padding: 'full' as any })).toThrow(/conv2d: padding must be 'same', 'valid'/);
    expect(() => mg.maxPool2d(x, 2, { padding: [[2, 0], [0, 0]] })).toThrow(/maxPool2d: padding \[2, 0\] x \[0, 0\] must be smaller than the window \[2,2\] on every side/);
    expect(() => mg.conv2d(x, w, { stride: 0 })).toThrow(/conv2d: stride must be >= 1, got 0/);
    expect(() => mg.conv2d(x, w, { dilation: 1.5 })).toThrow(/conv2d: dilation must be a whole number, got 1.5/);
    x.dispose(); w.dispose();
  });
});
