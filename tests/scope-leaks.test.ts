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

const nn = mg.nn, ad = mg.addressing;
const rng = () => new mg.Random(3);
/** The layers (nn) and the memory-addressing pieces: every function that computes (the init* ones make parameters). */
const LAYERS: Record<string, (t: (shape: number[]) => Tensor) => unknown> = {
  'nn.linear': (t) => nn.linear({ w: t([3, 2]), b: t([2]) }, t([4, 3])),
  'nn.binaryCrossEntropyWithLogits': (t) => nn.binaryCrossEntropyWithLogits(t([4]), t([4])),
  'nn.conv2dLayer': (t) => nn.conv2dLayer({ w: t([2, 1, 3, 3]), b: t([2]) }, t([1, 1, 5, 5]), { padding: 1 }),
  'nn.convBlock': (t) => nn.convBlock({ conv: { w: t([2, 1, 3, 3]), b: t([2]) }, bn: { scale: t([2]), shift: t([2]) } }, t([2, 1, 6, 6])),
  'nn.convBlockTail': (t) => nn.convBlockTail({ conv: { w: t([2, 1, 3, 3]), b: t([2]) }, bn: { scale: t([2]), shift: t([2]) } }, t([2, 2, 6, 6])),
  'nn.batchNorm': (t) => nn.batchNorm({ scale: t([2]), shift: t([2]) }, t([3, 2, 2, 2]), { stats: 'running', running: { mean: t([2]), variance: t([2]) }, training: true }),
  'nn.dropout': (t) => nn.dropout(t([4, 3]), 0.5, rng(), true),
  'nn.lstmCell': (t) => nn.lstmCell({ wx: t([3, 8]), wh: t([2, 8]), b: t([8]) }, t([1, 3]), { h: t([1, 2]), c: t([1, 2]) }),
  'nn.biLSTM': (t) => nn.biLSTM({ forward: { wx: t([3, 8]), wh: t([2, 8]), b: t([8]) }, backward: { wx: t([3, 8]), wh: t([2, 8]), b: t([8]) } }, t([4, 1, 3])),
  'nn.squaredDistances': (t) => nn.squaredDistances(t([3, 2]), t([4, 2])),
  'nn.l2Normalize': (t) => nn.l2Normalize(t([3, 2])),
  'nn.cosineSimilarity': (t) => nn.cosineSimilarity(t([3, 2]), t([4, 2])),
  'nn.attention': (t) => nn.attention(t([3, 4]), t([4, 2])),
  'nn.sineMLP': (t) => nn.sineMLP({ l1: { w: t([1, 4]), b: t([4]) }, l2: { w: t([4, 4]), b: t([4]) }, l3: { w: t([4, 1]), b: t([1]) } }, t([5, 1])),
  'nn.conv4': (t) => { const p = nn.initConv4(rng(), { ways: 2, filters: 2, imageSize: 16 }); const y = nn.conv4(p, t([2, 1, 16, 16])); mg.treeLeaves(p).forEach((x) => x.dispose()); return y; },
  'nn.conv4Features': (t) => { const p = nn.initConv4(rng(), { ways: 2, filters: 2, imageSize: 16 }); const y = nn.conv4Features(p, t([2, 1, 16, 16])); mg.treeLeaves(p).forEach((x) => x.dispose()); return y; },
  'nn.conv4AtStep': () => { const p = nn.initConv4(rng(), { ways: 2, filters: 2, imageSize: 16, bnSteps: 3 }); const q = nn.conv4AtStep(p, 1); const fresh = mg.treeLeaves(q).filter((x) => !mg.treeLeaves(p).includes(x)); mg.treeLeaves(p).forEach((x) => x.dispose()); return fresh; },
  'addressing.cosineSimilarity': (t) => ad.cosineSimilarity(t([2, 5, 3]), t([2, 3])),
  'addressing.contentAddressing': (t) => ad.contentAddressing(t([2, 5, 3]), t([2, 3]), t([2, 1])),
  'addressing.interpolate': (t) => ad.interpolate(t([2, 5]), t([2, 5]), t([2, 1])),
  'addressing.roll': (t) => ad.roll(t([2, 5]), 2),
  'addressing.circularShift': (t) => ad.circularShift(t([2, 5]), t([2, 3])),
  'addressing.sharpen': (t) => ad.sharpen(t([2, 5]), t([2, 1])),
  'addressing.ntmAddressing': (t) => ad.ntmAddressing(t([2, 5, 3]), t([2, 5]), { key: t([2, 3]), beta: t([2, 1]), g: t([2, 1]), shift: t([2, 3]), gamma: t([2, 1]) }),
  'addressing.ntmHeadParams': (t) => ad.ntmHeadParams(t([2, 9]), 3),
  'addressing.read': (t) => ad.read(t([2, 5, 3]), t([2, 5])),
  'addressing.write': (t) => ad.write(t([2, 5, 3]), t([2, 5]), t([2, 3]), t([2, 3])),
  'addressing.usageRank': (t) => ad.usageRank(t([2, 5])),
  'addressing.leastUsed': (t) => ad.leastUsed(t([2, 5]), 2),
};

/** Transforms, beside the ops and layers. */
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
    const computing = (mod: object, prefix: string) => Object.entries(mod)
      .filter(([k, v]) => typeof v === 'function' && !/^init|^[A-Z]/.test(k)).map(([k]) => `${prefix}.${k}`);
    expect([...computing(nn, 'nn'), ...computing(ad, 'addressing')].filter((n) => !(n in LAYERS)), 'layers without a leak check').toEqual([]);
  });

  for (const b of backendNames) {
    it(`on ${b}: every op and transform, its result disposed, changes neither the live tensors nor the bytes`, async () => {
      await activate(b);
      const m0 = mg.memory(), base = { tensors: m0.tensors, alive: m0.aliveTensors, bytes: m0.bytes };
      const r = new mg.Random(1);
      for (const [name, call] of Object.entries({ ...CALLS, ...LAYERS, ...MORE })) {
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
