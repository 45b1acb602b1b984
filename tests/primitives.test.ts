// Walks the primitive registry. For every primitive and backend: (a) the kernel agrees with the
// float64 reference backend, in float32 and float64; (b) its gradient agrees with central finite
// differences in float64; (c) its Hessian-vector product agrees with finite differences of
// gradients. A primitive without a test case, a kernel, or a rule fails the registry test.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { primitives, kernelNames } from '../engine/primitives.js';
import { run, tidy, noGrad, useBackend } from '../engine/runtime.js';
import { grad, hvp } from '../engine/autodiff.js';
import * as ops from '../engine/ops.js';
import { Tensor } from '../engine/tensor.js';
import { Random } from '../engine/random.js';
import type { DType } from '../kernels/backend.js';
import { opSpecs, Case } from './support/op-cases.js';
import { activate, backendNames } from './support/backends.js';

fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261122), numRuns: Number(process.env.FC_RUNS ?? 15) });

const names = Object.keys(primitives);
const differentiable = (n: string) => primitives[n].vjp !== undefined;
const wrtOf = (n: string, c: Case) => opSpecs[n].wrt ?? c.inputs.map((_, i) => i);

const toTensor = (values: ArrayLike<number>, shape: number[], dtype: DType) => ops.tensor(Float64Array.from(values), shape, { dtype });

/** Runs the primitive on the active backend; returns its values in float64. */
function forward(name: string, c: Case, dtype: DType): { shape: readonly number[]; values: Float64Array } {
  return tidy(() => {
    const y = run(name, c.inputs.map((x) => toTensor(x.values, x.shape, dtype)), c.attrs);
    return { shape: y.shape, values: Float64Array.from(y.dataSync()) };
  });
}

/** A scalar loss that weighs every output element: sum(op(xs) * R). */
function lossFor(name: string, c: Case) {
  const outSize = noGrad(() => tidy(() => forward(name, c, 'float64').values.length));
  const r = new Random(7).uniformValues(outSize, -1, 1);
  const wrt = wrtOf(name, c);
  return (xs: Tensor[]): Tensor => {
    const all = c.inputs.map((x, i) => (wrt.includes(i) ? xs[wrt.indexOf(i)] : toTensor(x.values, x.shape, 'float64')));
    const y = ops.cast(run(name, all, c.attrs), 'float64');
    return ops.sum(ops.mul(y, toTensor(r, [...y.shape], 'float64')));
  };
}

const evalLoss = (f: (xs: Tensor[]) => Tensor, vals: Float64Array[], shapes: number[][]) =>
  noGrad(() => tidy(() => f(vals.map((v, i) => toTensor(v, shapes[i], 'float64'))).dataSync()[0]));

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const [a, b] = [got[i], want[i]];
    if (!Number.isFinite(b)) { expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`).toBe(true); continue; }
    if (!(Math.abs(a - b) <= tol * (1 + Math.abs(b)))) {
      expect.fail(`${what}[${i}]: got ${a}, expected ${b} (tolerance ${tol})`);
    }
  }
}

describe('primitive registry', () => {
  it('every primitive has test cases, and a rule exactly when the cases say it is differentiable', () => {
    for (const n of names) {
      expect(opSpecs[n], `no property test cases for primitive '${n}'`).toBeDefined();
      const declaredNonDiff = opSpecs[n].wrt !== undefined && opSpecs[n].wrt!.length === 0;
      expect(declaredNonDiff, `'${n}': differentiability of rule and test cases disagree`).toBe(!differentiable(n));
    }
    for (const n of Object.keys(opSpecs)) expect(primitives[n], `test cases for unknown primitive '${n}'`).toBeDefined();
  });

  for (const b of backendNames) {
    it(`every primitive has a kernel on the ${b} backend`, async () => {
      const backend = await activate(b);
      const missing = kernelNames().filter((n) => typeof backend.kernels[n] !== 'function');
      expect(missing, `primitives without a ${b} kernel`).toEqual([]);
    });
  }
});

for (const b of backendNames) {
  describe(`primitives on ${b}`, () => {
    for (const name of names) {
      const spec = opSpecs[name];
      if (!spec) continue;

      if (b !== 'ref') {
        it(`${name}: float32 and float64 kernels agree with the float64 reference`, async () => {
          const ref = await activate('ref');
          const under = await activate(b);
          fc.assert(fc.property(spec.cases, (c) => {
            for (const dtype of ['float32', 'float64'] as DType[]) {
              // Compare on the values the backend actually sees (rounded to float32 for float32).
              const rounded: Case = { attrs: c.attrs, inputs: c.inputs.map((x) => ({ shape: x.shape, values: dtype === 'float32' ? Float64Array.from(Float32Array.from(x.values)) : x.values })) };
              useBackend(ref);
              const want = forward(name, rounded, 'float64');
              useBackend(under);
              const got = forward(name, rounded, dtype);
              expect(got.shape).toEqual(want.shape);
              close(got.values, want.values, dtype === 'float32' ? 1e-4 : 1e-11, `${name} ${dtype}`);
            }
          }));
        });
      }

      if (!differentiable(name)) {
        it(`${name}: not differentiable, so gradients stop at it`, async () => {
          await activate(b);
          fc.assert(fc.property(spec.cases, (c) => tidy(() => {
            const f = (xs: Tensor[]) => ops.sum(run(name, xs, c.attrs));
            const gs = grad(f)(c.inputs.map((x) => toTensor(x.values, x.shape, 'float64')));
            for (const g of gs) expect([...g.dataSync()].every((v) => v === 0)).toBe(true);
          })));
        });
        continue;
      }

      it(`${name}: gradient agrees with central differences (float64)`, async () => {
        await activate(b);
        const h = spec.fdStep ?? 1e-5, tol = spec.fdTol ?? 1e-6;
        fc.assert(fc.property(spec.cases, (c) => {
          const wrt = wrtOf(name, c);
          const f = lossFor(name, c);
          const vals = wrt.map((i) => Float64Array.from(c.inputs[i].values));
          const shapes = wrt.map((i) => c.inputs[i].shape);
          const analytic = tidy(() => grad(f)(vals.map((v, i) => toTensor(v, shapes[i], 'float64'))).map((g) => Float64Array.from(g.dataSync())));
          vals.forEach((v, k) => {
            const fd = new Float64Array(v.length);
            for (let j = 0; j < v.length; j++) {
              const x0 = v[j];
              v[j] = x0 + h; const up = evalLoss(f, vals, shapes);
              v[j] = x0 - h; const down = evalLoss(f, vals, shapes);
              v[j] = x0;
              fd[j] = (up - down) / (2 * h);
            }
            close(analytic[k], fd, tol, `${name} d/dinput${wrt[k]}`);
          });
        }));
      });

      it(`${name}: Hessian-vector product agrees with differences of gradients (float64)`, async () => {
        await activate(b);
        const h = spec.fdStep ?? 1e-5, tol = spec.fdTol ?? 1e-6;
        fc.assert(fc.property(spec.cases, (c) => {
          const wrt = wrtOf(name, c);
          const f = lossFor(name, c);
          const rng = new Random(11);
          const vals = wrt.map((i) => c.inputs[i].values);
          const shapes = wrt.map((i) => c.inputs[i].shape);
          const dirs = vals.map((v) => rng.uniformValues(v.length, -1, 1));
          const gradAt = (sgn: number) => tidy(() => grad(f)(vals.map((v, i) => toTensor(v.map((x, j) => x + sgn * h * dirs[i][j]), shapes[i], 'float64'))).map((g) => Float64Array.from(g.dataSync())));
          const analytic = tidy(() => hvp(f, vals.map((v, i) => toTensor(v, shapes[i], 'float64')), dirs.map((d, i) => toTensor(d, shapes[i], 'float64'))).map((g) => Float64Array.from(g.dataSync())));
          const up = gradAt(1), down = gradAt(-1);
          analytic.forEach((a, k) => close(a, up[k].map((u, j) => (u - down[k][j]) / (2 * h)), tol * 10, `${name} Hv input${wrt[k]}`));
        }));
      });
    }
  });
}
