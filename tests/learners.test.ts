// The learner contract, for every learner: k steps, state(), through the checkpoint format, load()
// into a fresh learner (built from another seed), k more steps equals 2k steps bit for bit: the
// losses, every tensor of the state and its counters and random streams. Also: a bad state changes
// nothing, and a test enumerates the learners so none ships without this proof.

import { describe, it, expect, beforeAll } from 'vitest';
import * as mg from '../index.js';
import type { Tensor } from '../index.js';
import * as algorithms from '../algorithms/index.js';
import {
  FineTuneBaseline, LearnerBase, MAML, MatchingNet, ProtoNet, RelationNet, Reptile, SequenceTrainer, SiameseNetwork,
  Task, classificationLoss, conv4Embedding, copyLoss, initFullContext, initNTM, initRelationNet, regressionLoss,
} from '../algorithms/index.js';
import type { Learner } from '../algorithms/index.js';
import { CopyTask, copyTensors } from '../datasets/index.js';
import { decodeCheckpoint, encodeCheckpoint } from '../engine/checkpoint.js';
import { activate } from './support/backends.js';

interface Case { make: (seed: number) => Learner<any, any>; batch: (i: number) => unknown }

/** A classification task of random images: `ways` classes, `shots` support and 2 query images each. */
function imageTask(seed: number, o: { ways?: number; shots?: number; size?: number } = {}): Task {
  const ways = o.ways ?? 3, shots = o.shots ?? 1, size = o.size ?? 16, rng = new mg.Random(1000 + seed);
  const labels = (per: number) => Int32Array.from({ length: ways * per }, (_, i) => Math.floor(i / per));
  return { xs: rng.uniform([ways * shots, 1, size, size]), ys: labels(shots), xq: rng.uniform([ways * 2, 1, size, size]), yq: labels(2) };
}

function sineTask(seed: number): Task {
  const rng = new mg.Random(2000 + seed), x = rng.uniform([5, 1], { low: -5, high: 5 }), xq = rng.uniform([5, 1], { low: -5, high: 5 });
  const a = rng.uniformNumber(0.1, 5), ph = rng.uniformNumber(0, Math.PI);
  return { xs: x, ys: x.sub(ph).sin().mul(a), xq, yq: xq.sub(ph).sin().mul(a) };
}

const conv4 = (rng: mg.Random, ways: number, bnSteps?: number) => mg.nn.initConv4(rng, { ways, filters: 4, imageSize: 16, bnSteps });
const adam = () => mg.optim.adam({ lr: mg.optim.schedules.step(3e-3, 2) });

const CASES: Record<string, Case> = {
  'MAML (sine, vectorized)': {
    make: (seed) => new MAML({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(seed), { hidden: 8 }), vectorized: true, metaOptimizer: adam() }),
    batch: (i) => { const ts = [sineTask(i), sineTask(i + 50)]; const st = (k: keyof Task) => mg.stack(ts.map((t) => t[k] as Tensor)); return [{ xs: st('xs'), ys: st('ys'), xq: st('xq'), yq: st('yq') }]; },
  },
  'MAML with Meta-PCGrad (its order stream in the state)': {
    make: (seed) => new MAML({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(seed), { hidden: 8 }), metaOptimizer: adam(), pcgrad: { groups: 3, rng: new mg.Random(seed + 1) } }),
    batch: (i) => [sineTask(i), sineTask(i + 50), sineTask(i + 100)],
  },
  'MAML with Hessian regularisation (its probe stream in the state)': {
    make: (seed) => new MAML({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(seed), { hidden: 4 }), metaOptimizer: adam(), hessianReg: { coef: 0.01, probes: 1, rng: new mg.Random(seed + 2) } }),
    batch: (i) => [sineTask(i)],
  },
  'Meta-SGD (Conv4)': {
    make: (seed) => new MAML({ model: (p, x) => mg.nn.conv4(p, x), loss: classificationLoss, params: conv4(new mg.Random(seed), 3), learnedLr: 'per-parameter', innerLr: 0.1, metaOptimizer: adam() }),
    batch: (i) => [imageTask(i)],
  },
  'MAML++ (per-step batch-norm statistics as buffers)': {
    make: (seed) => {
      const bn = new mg.nn.PerStepBatchNormStats(3, 4, 4);
      return new MAML({
        model: (p, x, ctx) => mg.nn.conv4(mg.nn.conv4AtStep(p, ctx.step), x, bn.mode(ctx.step, ctx.training), bn.update(ctx.step)),
        loss: classificationLoss, params: conv4(new mg.Random(seed), 3, 3), buffers: bn, learnedLr: 'per-layer-per-step', innerSteps: 2,
        multiStepLoss: 4, secondOrderFrom: 3, adapt: (path) => !path.includes('.bn.'), metaOptimizer: adam(),
      });
    },
    batch: (i) => [imageTask(i)],
  },
  'iMAML (sine, implicit meta-gradient)': {
    make: (seed) => new algorithms.IMAML({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(seed), { hidden: 8 }), innerSteps: 3, cgSteps: 3, metaOptimizer: adam() }),
    batch: (i) => [sineTask(i), sineTask(i + 50)],
  },
  'Reptile (inner batches from its own random stream)': {
    make: (seed) => new Reptile({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(new mg.Random(seed), { hidden: 8 }), innerSteps: 3, innerBatch: 4, rng: new mg.Random(seed + 1), metaLr: 0.5, metaSteps: 10 }),
    batch: (i) => [sineTask(i), sineTask(i + 50)],
  },
  ProtoNet: {
    make: (seed) => { const { head, ...features } = conv4(new mg.Random(seed), 1); mg.treeLeaves(head).forEach((t) => t.dispose()); return new ProtoNet({ embed: (p, x) => mg.nn.conv4Features(p, x), params: features, optimizer: adam() }); },
    batch: (i) => [imageTask(i)],
  },
  'MatchingNet (full-context embeddings, learned scale)': {
    make: (seed) => {
      const rng = new mg.Random(seed), { head, ...features } = conv4(rng, 1);
      mg.treeLeaves(head).forEach((t) => t.dispose());
      return new MatchingNet({ embed: (p, x) => mg.nn.conv4Features(p, x), params: { embed: features, fce: initFullContext(rng, 4), logScale: mg.scalar(Math.log(10)) }, processingSteps: 2, optimizer: adam() });
    },
    batch: (i) => [imageTask(i)],
  },
  RelationNet: {
    make: (seed) => new RelationNet({ params: initRelationNet(new mg.Random(seed), { filters: 4 }), optimizer: adam() }),
    batch: (i) => [imageTask(i, { size: 28 })],
  },
  'SiameseNetwork (running batch-norm statistics as buffers)': {
    make: (seed) => { const rng = new mg.Random(seed); return new SiameseNetwork({ embedding: conv4Embedding(rng, { filters: 4, imageSize: 16 }), rng, optimizer: adam() }); },
    batch: (i) => { const rng = new mg.Random(3000 + i); return { x1: rng.uniform([4, 1, 16, 16]), x2: rng.uniform([4, 1, 16, 16]), same: mg.tensor([1, 0, 1, 0]) }; },
  },
  FineTuneBaseline: {
    make: (seed) => new FineTuneBaseline({ features: (p: any, x: Tensor) => mg.nn.conv4Features(p, x), featureDim: 4, params: conv4(new mg.Random(seed), 5) as any, optimizer: adam() }),
    batch: (i) => { const rng = new mg.Random(4000 + i); return { x: rng.uniform([6, 1, 16, 16]), labels: Int32Array.from([0, 1, 2, 3, 4, 0]) }; },
  },
  'LearnedOptimizerTrainer (an LSTM optimiser, one update per trajectory)': {
    make: (seed) => { const lstm = mg.optim.coordinatewiseLSTM({ layers: [4] }); return new algorithms.LearnedOptimizerTrainer({ learned: lstm, phi: lstm.init(new mg.Random(seed)), steps: 3, unroll: 3, metaOptimizer: adam() }); },
    batch: (i) => algorithms.quadratic({ rng: new mg.Random(6000 + i), batch: 4, dims: 3 }),
  },
  'RaviLarochelle (LSTM meta-learner, clipped)': {
    make: (seed) => { const rng = new mg.Random(seed); return new algorithms.RaviLarochelle({ model: (p, x) => mg.nn.sineMLP(p, x), loss: regressionLoss, params: mg.nn.initSineMLP(rng, { hidden: 8 }), metaLearner: algorithms.initMetaLearnerLSTM(rng, { hidden: 4 }), updates: 2, metaOptimizer: adam() }); },
    batch: (i) => [sineTask(i)],
  },
  'EWC (penalty sums as buffers, the sampled Fisher\'s stream in the state)': {
    make: (seed) => {
      const rng = new mg.Random(seed), data = () => { const r = new mg.Random(7000); return { x: r.normal([6, 5]), labels: Int32Array.from([0, 1, 2, 0, 1, 2]) }; };
      const ewc = new algorithms.EWC({ model: (p: any, x: Tensor) => mg.nn.linear(p.l2, mg.nn.linear(p.l1, x).tanh()), params: { l1: mg.nn.initLinear(rng, 5, 6), l2: mg.nn.initLinear(rng, 6, 3) }, lambda: 3, fisher: 'sampled', rng: new mg.Random(seed + 1), optimizer: adam() });
      ewc.consolidate(data());
      return ewc;
    },
    batch: (i) => { const r = new mg.Random(7100 + i); return { x: r.normal([6, 5]), labels: Int32Array.from([2, 1, 0, 0, 1, 2]) }; },
  },
  'SequenceTrainer (NTM, clipped)': {
    make: (seed) => new SequenceTrainer(initNTM(new mg.Random(seed), { inputSize: 5, outputSize: 4, hidden: 8, rows: 6, width: 4 }),
      (p, b: { input: Tensor; target: Tensor }) => copyLoss(p, b.input, b.target), adam(), 0.05),
    batch: (i) => copyTensors(new CopyTask({ width: 4, maxLength: 3, seed: 5000 + i }).next(3)),
  },
};

/** Every tensor of a state as bytes (bit-exact comparison), by name. */
async function bytesOf(s: { tensors: Record<string, Tensor> }): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(s.tensors)) out[k] = Array.from(new Uint8Array((await t.data()).slice().buffer));
  return out;
}

const steps = async (l: Learner<any, any>, c: Case, from: number, to: number) => {
  const losses: number[] = [];
  for (let i = from; i < to; i++) losses.push(await mg.tidy(() => l.step(c.batch(i))));
  return losses;
};

describe('learner contract (wasm)', () => {
  beforeAll(async () => { await activate('wasm'); });

  it('every learner class algorithms/ exports has a case here', async () => {
    const classes = Object.entries(algorithms).filter(([n, v]) => typeof v === 'function' && v.prototype instanceof LearnerBase && n !== 'MetricLearner');
    expect(classes.map(([n]) => n).sort()).toEqual(['EWC', 'FineTuneBaseline', 'IMAML', 'LearnedOptimizerTrainer', 'MAML', 'MatchingNet', 'ProtoNet', 'RaviLarochelle', 'RelationNet', 'Reptile', 'SequenceTrainer', 'SiameseNetwork']);
    const covered = new Set(Object.values(CASES).map((c) => { const l = c.make(0); const ctor = l.constructor; l.dispose(); return ctor; }));
    for (const [n, cls] of classes) expect(covered.has(cls as any), `${n} has no state round-trip case`).toBe(true);
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: k steps, state() through the checkpoint format, load() into a fresh learner, k more = 2k steps, bit for bit`, async () => {
      const k = 3;
      const whole = c.make(1);
      const wholeLosses = await steps(whole, c, 0, 2 * k);
      const half = c.make(1);
      const firstLosses = await steps(half, c, 0, k);
      const bytes = await encodeCheckpoint(half.state().tensors, { info: half.state().info });
      half.dispose();
      const resumed = c.make(7);   // another initialisation: load() must replace all of it
      const mem = mg.memory();
      const decoded = decodeCheckpoint(bytes, name);
      resumed.load({ tensors: decoded.tensors, info: decoded.metadata.info as any });
      Object.values(decoded.tensors).forEach((t) => t.dispose());
      expect(mg.memory().tensors, 'load() keeps no extra tensors').toBe(mem.tensors);
      const restLosses = await steps(resumed, c, k, 2 * k);
      expect([...firstLosses, ...restLosses]).toEqual(wholeLosses);
      expect(resumed.iteration).toBe(2 * k);
      const [a, b] = [whole.state(), resumed.state()];
      expect(b.info).toEqual(a.info);
      expect(Object.keys(b.tensors).sort()).toEqual(Object.keys(a.tensors).sort());
      expect(await bytesOf(b)).toEqual(await bytesOf(a));
      // Names: parameters under params., optimiser slots under optimizer.
      expect(Object.keys(a.tensors).some((n) => n.startsWith('params.'))).toBe(true);
      whole.dispose();
      resumed.dispose();
    }, 60_000);
  }

  it('load() of a state with a missing, misshapen or wrongly typed tensor throws naming it, and changes nothing', async () => {
    const c = CASES.ProtoNet;
    const a = c.make(1), b = c.make(2);
    await steps(a, c, 0, 1);
    const before = await bytesOf(b.state());
    const good = a.state();
    const name = 'params.blocks.0.conv.w';
    const { [name]: _, ...missing } = good.tensors;
    expect(() => b.load({ ...good, tensors: missing })).toThrow(`ProtoNet.load: the state has no tensor '${name}'`);
    const wrong = mg.zeros([2, 2]);
    expect(() => b.load({ ...good, tensors: { ...good.tensors, [name]: wrong } })).toThrow(/'params\.blocks\.0\.conv\.w' is float32 \[2,2\], the learner has float32 \[4,1,3,3\]/);
    const f64 = mg.zeros([4, 1, 3, 3], { dtype: 'float64' });
    expect(() => b.load({ ...good, tensors: { ...good.tensors, [name]: f64 } })).toThrow(/is float64 \[4,1,3,3\], the learner has float32/);
    expect(() => b.load({ ...good, info: { iteration: 1 } })).toThrow(/no optimiser step count/);
    expect(await bytesOf(b.state())).toEqual(before);
    expect(b.iteration).toBe(0);
    [wrong, f64].forEach((t) => t.dispose());
    a.dispose(); b.dispose();
  });

  it('Reptile refuses a state without its random stream', async () => {
    const c = CASES['Reptile (inner batches from its own random stream)'];
    const a = c.make(1), b = c.make(2);
    const s = a.state();
    expect(s.info.rng).toBeDefined();
    expect(() => b.load({ ...s, info: { iteration: 0 } })).toThrow(/no random-stream position/);
    a.dispose(); b.dispose();
  });

  it('evaluate() draws tasks one at a time: 200 tasks need the memory of one', async () => {
    const c = CASES.ProtoNet;
    const l = c.make(1) as ProtoNet<any>;
    let drawn = 0, peakLive = 0;
    const base = mg.memory().tensors;
    function* tasks() { for (let i = 0; i < 200; i++) { drawn++; peakLive = Math.max(peakLive, mg.memory().tensors - base); yield imageTask(i); } }
    const r = await l.evaluate(tasks());
    expect(drawn).toBe(200);
    expect(r.accuracy.n).toBe(200);
    expect(peakLive, 'no task is alive when the next is drawn').toBe(0);
    expect(mg.memory().tensors).toBe(base);
    l.dispose();
  });
});
