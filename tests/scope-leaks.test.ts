// Every public op and composite, called outside any scope with its result disposed, leaves the live
// tensor count and bytes as they were: nothing hidden (a lifted scalar, a partial sum) stays alive.
// The table must name every function engine/ops.ts exports, so no op can ship without this check.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import * as ops from '../engine/ops.js';
import type { Tensor } from '../index.js';
import { activate, backendNames } from './support/backends.js';

const geo = { stride: [1, 1], pad: [1, 1], dilation: [1, 1] };
const pool = { kernel: [2, 2], stride: [2, 2], pad: [0, 0] };

/** A call of each op with valid arguments made fresh (inputs are disposed by the test, not counted). */
const CALLS: Record<string, (t: (shape: number[]) => Tensor) => unknown> = {
  tensor: () => mg.tensor([1, 2, 3]),
  scalar: () => mg.scalar(2),
  full: () => mg.full([2, 2], 3),
  zeros: () => mg.zeros([2]),
  ones: () => mg.ones([2]),
  zerosLike: (t) => mg.zerosLike(t([2])),
  onesLike: (t) => mg.onesLike(t([2])),
  arange: () => mg.arange(5),
  linspace: () => mg.linspace(0, 1, 4),
  eye: () => mg.eye(3),
  oneHot: () => mg.oneHot([0, 2], 3),
  ...Object.fromEntries(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'greater', 'greaterEqual', 'less', 'lessEqual', 'equal', 'notEqual']
    .map((n) => [n, (t: (s: number[]) => Tensor) => (ops as any)[n](t([2, 3]), 2)])),
  where: (t) => mg.where(t([3]), 1, 0),
  ...Object.fromEntries(['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'abs', 'sin', 'cos', 'sign', 'square', 'leakyRelu', 'elu', 'softplus']
    .map((n) => [n, (t: (s: number[]) => Tensor) => (ops as any)[n](t([2, 3]))])),
  ...Object.fromEntries(['sum', 'max', 'min', 'mean', 'variance', 'logSumExp'].map((n) => [n, (t: (s: number[]) => Tensor) => (ops as any)[n](t([2, 3]), 1)])),
  softmax: (t) => mg.softmax(t([2, 3])),
  logSoftmax: (t) => mg.logSoftmax(t([2, 3])),
  crossEntropy: (t) => mg.crossEntropy(t([2, 3]), [0, 2]),
  mse: (t) => mg.mse(t([2, 3]), t([2, 3])),
  matmul: (t) => mg.matmul(t([3]), t([3, 2])),
  dot: (t) => mg.dot(t([3]), t([3])),
  reshape: (t) => mg.reshape(t([2, 3]), [-1]),
  flatten: (t) => mg.flatten(t([2, 3, 2])),
  expandDims: (t) => mg.expandDims(t([2]), 0),
  squeeze: (t) => mg.squeeze(t([1, 2])),
  transpose: (t) => mg.transpose(t([2, 3])),
  permute: (t) => mg.permute(t([2, 3]), [1, 0]),
  slice: (t) => mg.slice(t([4]), [1], [2]),
  pad: (t) => mg.pad(t([2]), [[1, 1]]),
  concat: (t) => mg.concat([t([2]), t([3])]),
  stack: (t) => mg.stack([t([2]), t([2])]),
  split: (t) => mg.split(t([4]), 2),
  broadcastTo: (t) => mg.broadcastTo(t([1, 3]), [2, 3]),
  gather: (t) => mg.gather(t([4]), [0, 3]),
  scatterAdd: (t) => mg.scatterAdd(t([2]), [0, 3], 0, 4),
  cast: (t) => mg.cast(t([2]), 'float64'),
  conv2d: (t) => mg.conv2d(t([1, 1, 4, 4]), t([2, 1, 3, 3]), { padding: 'same' }),
  conv2dGradInput: (t) => mg.conv2dGradInput(t([1, 2, 4, 4]), t([2, 1, 3, 3]), [1, 1, 4, 4], geo),
  conv2dGradFilter: (t) => mg.conv2dGradFilter(t([1, 1, 4, 4]), t([1, 2, 4, 4]), [2, 1, 3, 3], geo),
  maxPool2d: (t) => mg.maxPool2d(t([1, 1, 4, 4]), 2),
  maxPool2dGrad: (t) => mg.maxPool2dGrad(t([1, 1, 4, 4]), t([1, 1, 2, 2]), pool),
  maxPool2dSelect: (t) => mg.maxPool2dSelect(t([1, 1, 4, 4]), t([1, 1, 4, 4]), pool),
  avgPool2d: (t) => mg.avgPool2d(t([1, 1, 4, 4]), 2),
  avgPool2dGrad: (t) => mg.avgPool2dGrad(t([1, 1, 2, 2]), [1, 1, 4, 4], pool),
  isFinite: (t) => mg.isFinite(t([2])),
  argMax: (t) => mg.argMax(t([2, 3])),
};

/** Transforms and layers, beside the ops. */
const MORE: Record<string, (t: (shape: number[]) => Tensor) => unknown> = {
  grad: (t) => mg.grad((x: Tensor) => x.tanh().sum())(t([3])),
  valueAndGrad: (t) => mg.valueAndGrad((x: Tensor) => x.mul(x).mean())(t([3])),
  hvp: (t) => mg.hvp((x: Tensor) => x.sin().sum(), t([3]), t([3])),
  'grad of grad': (t) => mg.grad((x: Tensor) => mg.grad((y: Tensor) => y.tanh().sum())(x).sum())(t([3])),
};

describe('outside any scope, an op leaves only its result alive', () => {
  it('the table names every function engine/ops.ts exports', () => {
    const fns = Object.entries(ops).filter(([, v]) => typeof v === 'function').map(([k]) => k).sort();
    expect(fns.filter((n) => !(n in CALLS)), 'ops without a leak check').toEqual([]);
  });

  for (const b of backendNames) {
    it(`on ${b}: every op and transform, its result disposed, changes neither the live tensors nor the bytes`, async () => {
      await activate(b);
      const m0 = mg.memory(), base = { tensors: m0.tensors, alive: m0.aliveTensors, bytes: m0.bytes };
      const r = new mg.Random(1);
      for (const [name, call] of Object.entries({ ...CALLS, ...MORE })) {
        const inputs: Tensor[] = [];
        const t = (shape: number[]) => { const x = r.uniform(shape, { low: 0.5, high: 2 }); inputs.push(x); return x; };
        // Inputs first, so what is counted is the op's doing alone.
        const made = call(t);
        const out = made instanceof Promise ? await made : made;
        mg.treeLeaves(out).forEach((x) => x.dispose());
        inputs.forEach((x) => x.dispose());
        const m = mg.memory();
        expect({ op: name, tensors: m.tensors, alive: m.aliveTensors, bytes: m.bytes }).toEqual({ op: name, tensors: base.tensors, alive: base.alive, bytes: base.bytes });
      }
    });
  }
});
