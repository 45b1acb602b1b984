// Every public op called with arguments drawn from valid and invalid domains (wrong types; negative,
// fractional, NaN and huge shapes, axes and sizes; out-of-range indices; mismatched shapes; bad
// convolution and pooling geometry) on ref, WASM and WebGPU. Each call either returns the ref
// backend's values or throws an Error whose message names the op; after every case the backend
// still computes a known result; WASM runs in bounds mode (no kernel writes outside its tensors).
// With CI set a missing WebGPU adapter fails; elsewhere it skips.

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as mg from '../index.js';
import { Tensor } from '../index.js';
import { useBackend } from '../engine/runtime.js';
import type { Backend } from '../kernels/backend.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);

/** A tensor argument, made on the backend under test from a seed (always a valid shape). */
interface TArg { t: number[]; seed: number; positive?: boolean }
const isT = (v: unknown): v is TArg => typeof v === 'object' && v !== null && 't' in v && 'seed' in v;

const junk = fc.constantFrom<unknown>('x', null, undefined, {}, [1, 2], true, NaN, 3.5, () => 1);
const smallShape = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 });
const tensorArg = (shape: fc.Arbitrary<number[]> = smallShape): fc.Arbitrary<TArg> => fc.record({ t: shape, seed: fc.nat(1000) });
const tensorOrJunk = (shape?: fc.Arbitrary<number[]>) => fc.oneof({ weight: 9, arbitrary: tensorArg(shape) }, { weight: 1, arbitrary: junk });
/** Whole numbers near the valid range, and the classic bad ones. */
const int = (lo: number, hi: number) => fc.oneof({ weight: 6, arbitrary: fc.integer({ min: lo, max: hi }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, -7, 1.5, NaN, Infinity, 2 ** 31, '1', null) });
const shapeArg = fc.oneof({ weight: 6, arbitrary: smallShape },
  { weight: 3, arbitrary: fc.array(fc.constantFrom<unknown>(-2, -1, 0, 2.5, NaN, 2 ** 31, 2 ** 53, '3', 3), { maxLength: 3 }) },
  { weight: 1, arbitrary: junk });
const axisArg = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: -5, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(1.5, NaN, '0', {}, null) });
const pairArg = (lo: number, hi: number) => fc.oneof(int(lo, hi), fc.tuple(int(lo, hi), int(lo, hi)), fc.constantFrom<unknown>('same', 'valid', 'bogus', [1, 2, 3]));

/** Deterministic values for a tensor argument: in [-2, 2], or [0.25, 2] where the op needs positives. */
function values(a: TArg): Float64Array {
  const r = new mg.Random(a.seed);
  const n = a.t.reduce((p, d) => p * d, 1);
  return Float64Array.from(r.uniformValues(n, a.positive ? 0.25 : -2, 2));
}
const make = (v: unknown): unknown => (isT(v) ? mg.tensor(values(v), v.t, { dtype: 'float32' }) : Array.isArray(v) ? v.map(make) : v);
const positive = (v: unknown) => (isT(v) ? { ...v, positive: true } : v);

interface OpFuzz { name: string; args: fc.Arbitrary<unknown[]>; call: (...a: any[]) => unknown }
const m = mg as any;
const unary = ['neg', 'exp', 'tanh', 'sigmoid', 'relu', 'abs', 'sin', 'cos', 'sign', 'square', 'softplus', 'elu', 'leakyRelu'];
const positiveUnary = ['log', 'sqrt'];
const binary = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'greater', 'greaterEqual', 'less', 'lessEqual', 'equal', 'notEqual'];
const reductions = ['sum', 'max', 'min', 'mean', 'variance', 'logSumExp'];
const imageShape = fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })).map((s) => [...s]);
const filterShape = fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })).map((s) => [...s]);

const OPS: OpFuzz[] = [
  ...unary.map((name) => ({ name, args: fc.tuple(tensorOrJunk()), call: (x: any) => m[name](x) })),
  ...positiveUnary.map((name) => ({ name, args: fc.tuple(tensorOrJunk().map(positive)), call: (x: any) => m[name](x) })),
  ...binary.map((name) => ({ name, args: fc.tuple(fc.oneof(tensorOrJunk(), fc.double({ min: -3, max: 3, noNaN: true })), tensorOrJunk()), call: (a: any, b: any) => m[name](a, b) })),
  { name: 'pow', args: fc.tuple(tensorOrJunk().map(positive), fc.oneof(tensorOrJunk(), fc.constant(2))), call: (a, b) => mg.pow(a, b) },
  { name: 'where', args: fc.tuple(tensorOrJunk(), tensorOrJunk(), tensorOrJunk()), call: (c, a, b) => mg.where(c, a, b) },
  ...reductions.map((name) => ({ name, args: fc.tuple(tensorOrJunk(), fc.oneof(axisArg, fc.array(axisArg, { maxLength: 3 }), fc.constant(undefined)), fc.boolean()), call: (x: any, ax: any, k: any) => m[name](x, ax, k) })),
  { name: 'softmax', args: fc.tuple(tensorOrJunk(), axisArg), call: (x, a) => mg.softmax(x, a) },
  { name: 'logSoftmax', args: fc.tuple(tensorOrJunk(), axisArg), call: (x, a) => mg.logSoftmax(x, a) },
  { name: 'crossEntropy', args: fc.tuple(tensorOrJunk(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 })).map((s) => [...s])), fc.array(int(0, 3), { maxLength: 4 })), call: (l, y) => mg.crossEntropy(l, y) },
  { name: 'mse', args: fc.tuple(tensorOrJunk(), tensorOrJunk()), call: (a, b) => mg.mse(a, b) },
  { name: 'matmul', args: fc.tuple(tensorOrJunk(), tensorOrJunk(), fc.record({ transA: fc.boolean(), transB: fc.boolean() })), call: (a, b, o) => mg.matmul(a, b, o) },
  { name: 'dot', args: fc.tuple(tensorOrJunk(), tensorOrJunk()), call: (a, b) => mg.dot(a, b) },
  { name: 'reshape', args: fc.tuple(tensorOrJunk(), shapeArg), call: (x, s) => mg.reshape(x, s) },
  { name: 'flatten', args: fc.tuple(tensorOrJunk(), axisArg), call: (x, a) => mg.flatten(x, a) },
  { name: 'expandDims', args: fc.tuple(tensorOrJunk(), axisArg), call: (x, a) => mg.expandDims(x, a) },
  { name: 'squeeze', args: fc.tuple(tensorOrJunk(fc.array(fc.integer({ min: 1, max: 2 }), { maxLength: 4 })), fc.oneof(fc.array(axisArg, { maxLength: 2 }), fc.constant(undefined))), call: (x, a) => mg.squeeze(x, a) },
  { name: 'transpose', args: fc.tuple(tensorOrJunk(), fc.oneof(fc.array(axisArg, { maxLength: 4 }), fc.constant(undefined))), call: (x, p) => mg.transpose(x, p) },
  { name: 'slice', args: fc.tuple(tensorOrJunk(), fc.array(int(0, 4), { maxLength: 4 }), fc.oneof(fc.array(int(-1, 4), { maxLength: 4 }), fc.constant(undefined))), call: (x, b, s) => mg.slice(x, b, s) },
  { name: 'pad', args: fc.tuple(tensorOrJunk(), fc.oneof(fc.array(fc.tuple(int(0, 2), int(0, 2)), { maxLength: 4 }), fc.array(fc.array(int(0, 2), { maxLength: 3 }), { maxLength: 4 }), junk)), call: (x, p) => mg.pad(x, p) },
  { name: 'concat', args: fc.tuple(fc.array(tensorOrJunk(), { maxLength: 3 }), axisArg), call: (xs, a) => mg.concat(xs, a) },
  { name: 'stack', args: fc.tuple(fc.array(tensorOrJunk(), { maxLength: 3 }), axisArg), call: (xs, a) => mg.stack(xs, a) },
  { name: 'split', args: fc.tuple(tensorOrJunk(), fc.oneof(int(1, 4), fc.array(int(0, 4), { maxLength: 3 })), axisArg), call: (x, s, a) => mg.split(x, s, a) },
  { name: 'broadcastTo', args: fc.tuple(tensorOrJunk(), shapeArg), call: (x, s) => mg.broadcastTo(x, s) },
  { name: 'gather', args: fc.tuple(tensorOrJunk(), fc.oneof(fc.array(int(0, 4), { maxLength: 4 }), junk), axisArg), call: (x, i, a) => mg.gather(x, i, a) },
  { name: 'scatterAdd', args: fc.tuple(tensorOrJunk(), fc.array(int(0, 4), { maxLength: 4 }), axisArg, int(0, 5)), call: (g, i, a, n) => mg.scatterAdd(g, i, a, n) },
  { name: 'cast', args: fc.tuple(tensorOrJunk(), fc.constantFrom<unknown>('float32', 'float64', 'int32', 7)), call: (x, d) => mg.cast(x, d) },
  { name: 'tensor', args: fc.tuple(fc.oneof(fc.array(fc.double({ noNaN: true, min: -5, max: 5 }), { maxLength: 6 }), junk), fc.oneof(shapeArg, fc.constant(undefined)), fc.constantFrom<unknown>(undefined, { dtype: 'float64' }, { dtype: 'int32' }, 'float32')), call: (v, s, o) => mg.tensor(v, s, o) },
  { name: 'full', args: fc.tuple(shapeArg, fc.oneof(fc.double({ min: -3, max: 3 }), junk)), call: (s, v) => mg.full(s, v) },
  { name: 'zeros', args: fc.tuple(shapeArg), call: (s) => mg.zeros(s) },
  { name: 'ones', args: fc.tuple(fc.oneof(shapeArg, fc.constant([2 ** 29, 4]))), call: (s) => mg.ones(s) },
  { name: 'arange', args: fc.tuple(int(-3, 3), fc.oneof(int(-3, 8), fc.constant(undefined)), fc.oneof(int(-2, 2), fc.constant(0.5))), call: (a, b, s) => mg.arange(a, b, s) },
  { name: 'linspace', args: fc.tuple(fc.double({ min: -2, max: 2, noNaN: true }), fc.double({ min: -2, max: 2, noNaN: true }), int(0, 6)), call: (a, b, n) => mg.linspace(a, b, n) },
  { name: 'eye', args: fc.tuple(int(0, 4)), call: (n) => mg.eye(n) },
  { name: 'oneHot', args: fc.tuple(fc.array(int(0, 4), { maxLength: 4 }), int(0, 5)), call: (l, d) => mg.oneHot(l, d) },
  { name: 'Random.normal', args: fc.tuple(shapeArg), call: (s) => new mg.Random(1).normal(s) },
  { name: 'grad', args: fc.tuple(tensorOrJunk()), call: (x) => mg.grad((t: Tensor) => mg.sum(mg.tanh(t)))(x) },
  { name: 'hvp', args: fc.tuple(tensorOrJunk(), tensorOrJunk()), call: (x, v) => mg.hvp((t: Tensor) => mg.sum(mg.sin(t)), x, v) },
  { name: 'jvp', args: fc.tuple(tensorOrJunk(), tensorOrJunk()), call: (x, v) => mg.jvp((t: Tensor) => mg.tanh(t), x, v) },
  { name: 'vjp', args: fc.tuple(tensorOrJunk(), tensorOrJunk()), call: (x, c) => mg.vjp((t: Tensor) => mg.sin(t), x)[1](c) },
  {
    name: 'conv2d',
    args: fc.tuple(tensorOrJunk(imageShape), tensorOrJunk(filterShape), fc.record({ stride: pairArg(1, 3), padding: pairArg(0, 2), dilation: pairArg(1, 2) }, { requiredKeys: [] })),
    call: (x, w, o) => mg.conv2d(x, w, o),
  },
  { name: 'maxPool2d', args: fc.tuple(tensorOrJunk(imageShape), pairArg(1, 3), fc.record({ stride: pairArg(1, 3), padding: pairArg(0, 1) }, { requiredKeys: [] })), call: (x, k, o) => mg.maxPool2d(x, k, o) },
  { name: 'avgPool2d', args: fc.tuple(tensorOrJunk(imageShape), pairArg(1, 3), fc.record({ stride: pairArg(1, 3), padding: pairArg(0, 1) }, { requiredKeys: [] })), call: (x, k, o) => mg.avgPool2d(x, k, o) },
];

type Outcome = { values: Float64Array[]; shapes: number[][] } | { error: Error };

/** Runs one case on the active backend: its values (every tensor of the result) or its error. */
async function outcome(op: OpFuzz, args: unknown[]): Promise<Outcome> {
  return mg.tidy(async () => {
    let r: unknown;
    try {
      r = op.call(...args.map(make));
    } catch (e) {
      return { error: e as Error };
    }
    const ts = (Array.isArray(r) ? r : [r]) as Tensor[];
    expect(ts.every((t) => t instanceof Tensor), `${op.name} returned a non-tensor`).toBe(true);
    return { values: await Promise.all(ts.map(async (t) => Float64Array.from(await t.data()))), shapes: ts.map((t) => [...t.shape]) };
  });
}

/** A known result, to prove the backend still works after a case. */
async function healthy(): Promise<void> {
  const v = await mg.tidy(() => mg.matmul(mg.tensor([[1, 2], [3, 4]]), mg.add(mg.tensor([[1], [1]]), 1)).data());
  expect(Array.from(v)).toEqual([6, 14]);
}

const same = (a: number, b: number, tol: number) => (Number.isNaN(a) && Number.isNaN(b)) || a === b || Math.abs(a - b) <= tol * (1 + Math.abs(b));

let ref: Backend;
const others: Record<string, Backend | string> = {};

beforeAll(async () => {
  // In bounds mode: a kernel that wrote outside its tensors would fail the case that made it.
  others.wasm = await mg.init({ backend: 'wasm', checks: 'bounds' });
  try { others.webgpu = await mg.init({ backend: 'webgpu' }); } catch (e) { others.webgpu = e instanceof Error ? e.message : String(e); }
  ref = await mg.init({ backend: 'ref' });
}, 60_000);

for (const name of ['ref', 'wasm', 'webgpu']) {
  describe(`API fuzz on ${name}`, () => {
    it(`${OPS.length} ops, valid and invalid arguments: the ref backend's values or an error naming the op`, async (ctx) => {
      const b = name === 'ref' ? null : others[name];
      if (typeof b === 'string') {
        if (process.env.CI) throw new Error(`${name} backend unavailable in CI: ${b}`);
        ctx.skip(`no ${name} backend here: ${b}`);
      }
      let cases = 0, errors = 0;
      for (const op of OPS) {
        await fc.assert(fc.asyncProperty(op.args, async (args) => {
          useBackend(ref);
          const want = await outcome(op, args);
          if (b) useBackend(b as Backend);
          const got = b ? await outcome(op, args) : want;
          cases++;
          const what = `${op.name}(${JSON.stringify(args)?.slice(0, 200)}) on ${name}`;
          if ('error' in got) {
            errors++;
            expect(got.error, what).toBeInstanceOf(Error);
            expect(got.error.message, `${what}: ${got.error.message}`).toContain(op.name.replace('Random.', ''));
            // WebGPU has no float64 (WGSL has none): the one refusal the reference does not share.
            const f64 = name === 'webgpu' && /float32 only/.test(got.error.message);
            expect('error' in want || f64, `${what}: failed where ref succeeded: ${got.error.message}`).toBe(true);
          } else {
            expect('error' in want, `${what}: succeeded where ref failed: ${'error' in want ? want.error.message : ''}`).toBe(false);
            if ('error' in want) return;
            expect(got.shapes, what).toEqual(want.shapes);
            got.values.forEach((v, i) => v.forEach((x, j) => expect(same(x, want.values[i][j], 2e-4), `${what}: element ${j}: ${x} vs ${want.values[i][j]}`).toBe(true)));
          }
          await healthy();
        }), { numRuns: RUNS, seed: 42 });
      }
      expect(cases).toBe(OPS.length * RUNS);
      expect(errors, 'the domains include invalid arguments').toBeGreaterThan(cases / 10);
      useBackend(ref);
    }, 600_000);
  });
}
