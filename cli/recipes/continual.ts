// Continual learning on permuted MNIST (Kirkpatrick et al. 2017): an MLP learns --tasks pixel
// permutations of MNIST one after another, --steps-per-task minibatches each, with elastic weight
// consolidation (or, with --lambda 0, plain SGD; --dropout for SGD with dropout; --l2 for the
// penalty with every weight equally important). After each task it is scored on the test sets of
// every task so far: the rows of the accuracy matrix R, reported with average accuracy and
// backward transfer.

import { EWC } from '../../algorithms/ewc.js';
import { averageAccuracy, averageAccuracyAfterEach, backwardTransfer } from '../../algorithms/continual-metrics.js';
import { loadMnist } from '../../datasets/index.js';
import { PermutedTasks, pixelPermutations } from '../../datasets/permuted.js';
import * as nn from '../../engine/nn.js';
import * as ops from '../../engine/ops.js';
import * as optim from '../../engine/optim.js';
import { Random } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import { checkMnistFolder } from '../tasks.js';
import type { Config, Recipe, Run } from '../recipe.js';

export const continual: Recipe = {
  algorithms: { ewc: 'elastic weight consolidation (Kirkpatrick et al. 2017) on permuted MNIST; --lambda 0 is plain SGD, --dropout adds dropout, --l2 weighs every parameter alike' },
  flags: {
    tasks: { type: 'int', min: 1, arg: 'T', help: 'ewc: permutations learned in sequence (default 10; the first is the identity)' },
    'steps-per-task': { type: 'int', min: 1, arg: 'S', help: 'ewc: minibatches of 128 per task (default 2000)' },
    lambda: { type: 'number', min: 0, arg: 'L', help: 'ewc: strength of the penalty (default 10; 0 = plain SGD). Plain SGD on the penalty is stable only while lr x lambda x the largest Fisher entry (summed over tasks) stays below 2' },
    fisher: { type: 'string', arg: 'KIND', choices: ['exact', 'sampled', 'empirical'], help: 'ewc: how the Fisher diagonal is computed (default exact: the expectation over the model\'s labels)' },
    'fisher-samples': { type: 'int', min: 1, arg: 'N', help: 'ewc: training images of the task the Fisher is averaged over (default 200)' },
    l2: { type: 'bool', help: 'ewc: the L2 baseline: the penalty with every parameter\'s importance 1 instead of its Fisher information' },
    dropout: { type: 'number', min: 0, arg: 'P', help: 'ewc: dropout rate on the hidden layers in training (default 0)' },
    hidden: { type: 'int', min: 1, arg: 'H', help: 'ewc: hidden units per layer (default 400)' },
    layers: { type: 'int', min: 1, arg: 'L', help: 'ewc: hidden layers (default 2)' },
    lr: { type: 'number', above: 0, arg: 'A', help: 'ewc: SGD step size (default 0.1)' },
    square: { type: 'int', min: 2, max: 28, arg: 'S', help: 'ewc: permute only the central S x S square of each image (EWC\'s Figure 2C uses 8 and 26)' },
  },
  configure(f, base) {
    for (const k of ['split', 'ways', 'shots', 'queries', 'test-ways', 'lake-runs', 'meta-batch', 'meta-lr']) {
      if (f[k] !== undefined) throw new UsageError(`--${k} is not for --algorithm ewc`);
    }
    if (f.dataset !== undefined && f.dataset !== 'permuted-mnist') throw new UsageError('--algorithm ewc runs on --dataset permuted-mnist');
    const dir = f.data as string | undefined;
    if (!dir) throw new UsageError('--algorithm ewc needs --data DIR (the folder with the MNIST files, raw or .gz)');
    checkMnistFolder(dir);
    if (f.dropout !== undefined && !((f.dropout as number) < 1)) throw new UsageError(`--dropout must be below 1, got ${f.dropout}`);
    const tasks = (f.tasks as number) ?? 10, perTask = (f['steps-per-task'] as number) ?? 2000;
    const iterations = (f.iterations as number) ?? tasks * perTask;
    if (iterations > tasks * perTask) throw new UsageError(`--iterations ${iterations} is more than the ${tasks} tasks x ${perTask} steps`);
    return {
      ...base, dataset: 'permuted-mnist', data: dir, iterations, tasks, stepsPerTask: perTask,
      // The accuracy matrix needs a score after every task: evaluations at the task boundaries.
      evalEvery: base.evalEvery || perTask,
      lambda: (f.lambda as number) ?? 10, fisher: (f.fisher as string) ?? 'exact', fisherSamples: (f['fisher-samples'] as number) ?? 200,
      l2: !!f.l2, dropout: (f.dropout as number) ?? 0, hidden: (f.hidden as number) ?? 400, layers: (f.layers as number) ?? 2,
      lr: (f.lr as number) ?? 0.1, square: (f.square as number | undefined) ?? null, batch: 128, evalTasks: (f['eval-tasks'] as number) ?? 10000,
    };
  },
  build: buildEWC,
};

async function buildEWC(cfg: Config, log: (line: string) => void): Promise<Run> {
  const root = cfg.data as string;
  const train = loadMnist({ root, set: 'train', onWarning: log }), test = loadMnist({ root, set: 'test', onWarning: log });
  const T = cfg.tasks as number, perTask = cfg.stepsPerTask as number;
  const perms = pixelPermutations(T, { seed: cfg.seed + 11, identityFirst: true, ...(cfg.square ? { square: cfg.square as number } : {}) });
  const data = new PermutedTasks(train, test, perms);
  const rng = new Random(cfg.seed);
  const sizes = [784, ...Array(cfg.layers as number).fill(cfg.hidden as number), 10];
  const params = { layers: sizes.slice(1).map((n, l) => nn.initLinear(rng, sizes[l], n)) };
  const dropRng = new Random(cfg.seed + 5), fisherRng = new Random(cfg.seed + 6);
  const model = (p: typeof params, x: Tensor, ctx: { training: boolean }) => {
    let h = x;
    p.layers.forEach((l, i) => {
      h = nn.linear(l, h);
      if (i < p.layers.length - 1) h = nn.dropout(ops.relu(h), cfg.dropout as number, dropRng, ctx.training);
    });
    return h;
  };
  const learner = new EWC({
    model, params, lambda: cfg.lambda as number, fisher: cfg.fisher as 'exact' | 'sampled' | 'empirical', l2: cfg.l2 as boolean,
    rng: fisherRng, optimizer: optim.sgd({ lr: cfg.lr as number }),
  });
  // One minibatch stream per task, seeded apart; the current one is saved in checkpoints.
  const streams = perms.map((_, k) => data.batches(k, { batchSize: cfg.batch as number, seed: cfg.seed + 100 + k }));
  const taskAt = (i: number) => Math.min(Math.floor(i / perTask), T - 1);
  const tensors = (b: { x: Float32Array; labels: Int32Array }) => ({ x: ops.tensor(b.x, [b.labels.length, 784]), labels: b.labels });
  /** Accuracy on the test sets of tasks 0..upTo (the first `n` test images of each). */
  const scoreTasks = async (upTo: number, n: number) => {
    const accs: number[] = [];
    const idx = Array.from({ length: Math.min(n, data.size('test')) }, (_, i) => i);
    for (let k = 0; k <= upTo; k++) {
      let hit = 0;
      for (let s = 0; s < idx.length; s += 1000) {
        const part = idx.slice(s, s + 1000);
        hit += (await learner.evaluate([tensors(data.batch(k, part, 'test'))])).accuracy!.mean * part.length;
      }
      accs.push(hit / idx.length);
    }
    return accs;
  };
  const rows: number[][] = [];
  return {
    learner,
    nextBatch: () => {
      const i = learner.iteration;
      // A task boundary: consolidate on a sample of the finished task's training images first.
      if (i > 0 && i % perTask === 0 && learner.tasks < i / perTask) {
        const k = i / perTask - 1;
        const sample = Array.from({ length: cfg.fisherSamples as number }, (_, j) => Math.floor((j * data.size('train')) / (cfg.fisherSamples as number)));
        learner.consolidate(tensors(data.batch(k, sample)));
      }
      return tensors(streams[taskAt(i)].next());
    },
    streams: { ...Object.fromEntries(streams.map((s, k) => [`task${k}`, s])), dropout: dropRng },
    async heldOut() {
      const k = taskAt(learner.iteration - 1);
      const accs = await scoreTasks(k, 2000);
      if (learner.iteration % perTask === 0) rows[k] = accs;
      return { line: `after task ${k + 1}: accuracy ${accs.map((a) => (100 * a).toFixed(1)).join(' / ')} % on tasks 1..${k + 1} (2000 test images each)`, fields: { taskAccuracies: accs } };
    },
    async *finish() {
      const k = taskAt(learner.iteration - 1);
      const final = await scoreTasks(k, cfg.evalTasks as number);
      yield { line: `final: accuracy ${final.map((a) => (100 * a).toFixed(2)).join(' / ')} % on tasks 1..${k + 1} (${cfg.evalTasks} test images each), mean ${(100 * final.reduce((a, b) => a + b, 0) / final.length).toFixed(2)} %`, fields: { final } };
      // The accuracy matrix from the task-boundary evaluations (2000 images each), when complete.
      const R = Array.from({ length: k + 1 }, (_, i) => rows[i]);
      if (R.every((r) => r)) {
        const square = R.map((r) => [...r, ...Array(k + 1 - r.length).fill(0)]);
        yield {
          line: `accuracy matrix: average accuracy ${(100 * averageAccuracy(square)).toFixed(2)} %, backward transfer ${(100 * backwardTransfer(square)).toFixed(2)} points`,
          fields: { accuracyMatrix: R, averageAfterEach: averageAccuracyAfterEach(square), backwardTransfer: backwardTransfer(square) },
        };
      }
    },
    dispose: () => learner.dispose(),
  };
}
