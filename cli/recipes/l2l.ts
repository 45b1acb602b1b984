// Learned optimisers (Andrychowicz et al. 2016): the coordinatewise LSTM trained on random quadratics
// or on an MLP classifying MNIST, then run on held-out optimizees beside SGD, NAG, RMSprop and Adam
// with learning rates tuned on training optimizees. One iteration is one update of the optimiser
// (an unroll); a training trajectory is --optimizee-steps / --unroll of them.

import { LearnedOptimizerTrainer, type LearnedOptimizer, type Optimizee, runOptimizer } from '../../algorithms/l2l.js';
import { BASELINES, tuneLearningRate } from '../../algorithms/optimizer-baselines.js';
import { cnnClassifier, mlpClassifier, quadratic } from '../../algorithms/optimizees.js';
import { formatSummary, summarize } from '../../algorithms/task.js';
import { loadFashionMnist, loadMnist } from '../../datasets/index.js';
import type { MnistData } from '../../datasets/index.js';
import { coordinatewiseLSTM } from '../../engine/learned-optim.js';
import * as optim from '../../engine/optim.js';
import { Random } from '../../engine/random.js';
import { UsageError } from '../flags.js';
import { checkMnistFolder } from '../tasks.js';
import { linePlot } from '../plot.js';
import type { Config, Recipe, Run } from '../recipe.js';
import { startFrom } from '../init-from.js';

export const l2l: Recipe = {
  algorithms: {
    l2l: 'learned optimiser (Andrychowicz et al. 2016): a coordinatewise 2-layer LSTM of 20 units trained through unrolled optimisation of --optimizee, compared on held-out optimizees with SGD, NAG, RMSprop and Adam at tuned learning rates',
  },
  flags: {
    optimizee: { type: 'string', arg: 'NAME', choices: ['quadratic', 'mnist-mlp', 'mnist-cnn'], help: 'l2l: what the optimiser learns to optimise: quadratic (128 random 10-d ||W theta - y||^2 at once, default), mnist-mlp (an MLP on MNIST, batches of 128; needs --data) or mnist-cnn (two stride-2 3x3 convolutions of 8 filters, a hidden layer of 32, ReLU: the stand-in for the paper\'s CIFAR-10 net)' },
    images: { type: 'string', arg: 'NAME', choices: ['mnist', 'fashion-mnist'], help: 'l2l mnist-mlp / mnist-cnn: the images in --data: mnist (default) or fashion-mnist (Debian\'s dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist); same file names and shapes' },
    'split-lstm': { type: 'bool', help: 'l2l mnist-cnn: one LSTM for the convolutional layers and another for the fully connected ones (the paper\'s CIFAR-10 set-up)' },
    'optimizee-steps': { type: 'int', min: 1, arg: 'T', help: 'l2l: steps of a training trajectory (default 100)' },
    unroll: { type: 'int', min: 1, arg: 'U', help: 'l2l: steps per unroll, one optimiser update each (truncated back-propagation; default 20)' },
    'eval-steps': { type: 'int', min: 1, arg: 'T', help: 'l2l: steps of the held-out trajectories (default --optimizee-steps; 200 continues past training, as the paper\'s Figure 4)' },
    hidden: { type: 'int', min: 1, arg: 'H', help: 'l2l mnist-mlp: hidden units per layer (default 20)' },
    layers: { type: 'int', min: 1, arg: 'L', help: 'l2l mnist-mlp: hidden layers (default 1)' },
    activation: { type: 'string', arg: 'NAME', choices: ['sigmoid', 'relu', 'tanh'], help: 'l2l mnist-mlp: hidden activation (default sigmoid)' },
    'second-derivatives': { type: 'bool', help: 'l2l: differentiate through the optimizee\'s gradients too (the paper drops these terms)' },
    preprocess: { type: 'string', arg: 'P', help: 'l2l: gradient preprocessing exponent p, or none (default none on quadratic, as the reference code; 10 on mnist-mlp, as the paper)' },
    'output-scale': { type: 'number', above: 0, arg: 'S', help: 'l2l: scale of the LSTM\'s output (default 1 on quadratic, as the reference code; 0.1 on mnist-mlp, as the paper)' },
    'tune-tasks': { type: 'int', min: 1, arg: 'N', help: 'l2l: training optimizees each baseline\'s learning rate is tuned on (default 5)' },
  },
  configure(f, base) {
    for (const k of ['split', 'ways', 'shots', 'queries', 'test-ways', 'lake-runs', 'meta-batch', 'dataset']) {
      if (f[k] !== undefined) throw new UsageError(`--${k} is not for --algorithm l2l`);
    }
    const optimizee = (f.optimizee as string) ?? 'quadratic';
    const mnist = optimizee !== 'quadratic';
    if (!mnist) for (const k of ['data', 'images']) if (f[k] !== undefined) throw new UsageError(`--${k} is for --optimizee mnist-mlp or mnist-cnn`);
    if (optimizee !== 'mnist-mlp') for (const k of ['hidden', 'layers', 'activation']) if (f[k] !== undefined) throw new UsageError(`--${k} is for --optimizee mnist-mlp`);
    if (optimizee !== 'mnist-cnn' && f['split-lstm']) throw new UsageError('--split-lstm is for --optimizee mnist-cnn');
    if (mnist) {
      const dir = f.data as string | undefined;
      if (!dir) throw new UsageError(`--optimizee ${optimizee} needs --data DIR (the folder with the MNIST files, raw or .gz)`);
      checkMnistFolder(dir);
    }
    const steps = (f['optimizee-steps'] as number) ?? 100, unroll = (f.unroll as number) ?? 20;
    if (steps % unroll !== 0) throw new UsageError(`--optimizee-steps ${steps} must be a whole multiple of --unroll ${unroll}`);
    const perTrajectory = steps / unroll;
    const iterations = (f.iterations as number) ?? 2000;
    for (const [k, v] of [['iterations', iterations], ['eval-every', base.evalEvery], ['checkpoint-every', f['checkpoint-every'] ?? perTrajectory]] as const) {
      if ((v as number) % perTrajectory !== 0) throw new UsageError(`--${k} ${v} must be a whole multiple of the ${perTrajectory} optimiser updates of a trajectory (--optimizee-steps / --unroll)`);
    }
    const pre = f.preprocess as string | undefined;
    let preprocess: number | null = mnist ? 10 : null;
    if (pre !== undefined) {
      preprocess = pre === 'none' ? null : Number(pre);
      if (preprocess !== null && !(preprocess > 0)) throw new UsageError(`--preprocess must be a number > 0 or none, got '${pre}'`);
    }
    return {
      ...base, dataset: mnist ? (f.images as string) ?? 'mnist' : 'quadratic', optimizee, ...(mnist ? { data: f.data } : {}), iterations,
      checkpointEvery: (f['checkpoint-every'] as number) ?? 500 - (500 % perTrajectory),
      optimizeeSteps: steps, unroll, evalSteps: (f['eval-steps'] as number) ?? steps,
      ...(optimizee === 'mnist-mlp' ? { hidden: (f.hidden as number) ?? 20, layers: (f.layers as number) ?? 1, activation: (f.activation as string) ?? 'sigmoid' } : {}),
      ...(optimizee === 'mnist-cnn' ? { splitLstm: !!f['split-lstm'] } : {}),
      secondDerivatives: !!f['second-derivatives'], preprocess, outputScale: (f['output-scale'] as number) ?? (mnist ? 0.1 : 1),
      metaLr: (f['meta-lr'] as number) ?? 1e-3, evalTasks: (f['eval-tasks'] as number) ?? 100, tuneTasks: (f['tune-tasks'] as number) ?? 5,
      ...(f['init-from'] !== undefined ? { initFrom: f['init-from'] } : {}),
    };
  },
  build: buildL2L,
};

async function buildL2L(cfg: Config, log: (line: string) => void): Promise<Run> {
  const mnist = cfg.optimizee !== 'quadratic';
  const warn = (m: string) => log(m);
  const load = cfg.dataset === 'fashion-mnist' ? loadFashionMnist : loadMnist;
  const data: { train: MnistData; test: MnistData } | null = mnist
    ? { train: load({ root: cfg.data as string, set: 'train', onWarning: warn }), test: load({ root: cfg.data as string, set: 'test', onWarning: warn }) }
    : null;
  // Training optimizees (MNIST: the training images), and held-out ones (MNIST: the test images, as
  // the reference code evaluates), each drawn from its own seeded stream.
  const make = (rng: Random, set: 'train' | 'test'): Optimizee => (!data ? quadratic({ rng })
    : cfg.optimizee === 'mnist-cnn' ? cnnClassifier({ rng, images: data[set].images, labels: data[set].labels, features: 784, side: 28 })
      : mlpClassifier({
        rng, images: data[set].images, labels: data[set].labels, features: 784,
        hidden: Array(cfg.layers as number).fill(cfg.hidden as number), activation: cfg.activation as 'sigmoid' | 'relu' | 'tanh',
      }));
  const heldOutSet = (n: number, offset: number) => Array.from({ length: n }, (_, k) => make(new Random(cfg.seed + offset + k), 'test'));

  const lstm = coordinatewiseLSTM({ layers: [20, 20], preprocess: cfg.preprocess === null ? null : { p: cfg.preprocess as number }, scale: cfg.outputScale as number });
  // --split-lstm: one LSTM for the convolutional layers, one for the rest, chosen by parameter path.
  const phiRng = new Random(cfg.seed);
  const learned: LearnedOptimizer<any> = cfg.splitLstm
    ? { optimizer: (phi) => optim.grouped([[(path) => path.startsWith('conv'), lstm.optimizer(phi.conv)], [() => true, lstm.optimizer(phi.fc)]]) }
    : lstm;
  const phi = (await startFrom(cfg, cfg.splitLstm ? { conv: lstm.init(phiRng), fc: lstm.init(phiRng) } : lstm.init(phiRng))).params;
  const trainer = new LearnedOptimizerTrainer({
    learned, phi, steps: cfg.optimizeeSteps as number, unroll: cfg.unroll as number,
    secondDerivatives: cfg.secondDerivatives as boolean, metaOptimizer: optim.adam({ lr: cfg.metaLr as number }),
  });
  const train = new Random(cfg.seed + 1);
  let current: Optimizee | null = null;
  const curves: Record<string, { lr?: number; curve: number[] }> = {};

  /** Scores `opt` (a function of the held-out problem index) on fresh copies of the held-out optimizees. */
  const score = async (run: (p: Optimizee) => Promise<number[]>, n: number, offset: number) => {
    const finals: number[] = [];
    let sums: number[] | null = null;
    for (const p of heldOutSet(n, offset)) {
      try {
        const fs = await run(p);
        sums = sums ? sums.map((s, t) => s + fs[t]) : fs;
        finals.push(fs[fs.length - 1]);
      } finally {
        p.dispose?.();
      }
    }
    return { loss: summarize(finals), curve: sums!.map((s) => s / finals.length) };
  };
  const evalSteps = cfg.evalSteps as number;

  return {
    learner: trainer,
    nextBatch: () => {
      current?.dispose?.();
      current = make(train, 'train');
      return current;
    },
    streams: { train: { state: () => train.state(), setState: (s) => train.setState(s) } },
    async heldOut() {
      const r = await score((p) => trainer.trajectory(p, cfg.optimizeeSteps as number), 10, 8_000_000);
      return { line: `held-out final loss ${formatSummary(r.loss, 1, 4)} (10 optimizees)`, fields: { heldOut: r.loss } };
    },
    async *finish() {
      const n = cfg.evalTasks as number;
      const learned = await score((p) => trainer.trajectory(p, evalSteps), n, 9_000_000);
      curves.learned = { curve: learned.curve };
      yield { line: `learned (LSTM): final loss ${formatSummary(learned.loss, 1, 4)} after ${evalSteps} steps over ${n} held-out optimizees`, fields: { eval: learned } };
      const tuneRng = new Random(cfg.seed + 3);
      const tuneSet = () => Array.from({ length: cfg.tuneTasks as number }, () => make(new Random(tuneRng.int(2 ** 31)), 'train'));
      for (const [name, makeOpt] of Object.entries(BASELINES)) {
        const tuned = await tuneLearningRate(makeOpt, tuneSet, cfg.optimizeeSteps as number);
        const r = await score((p) => runOptimizer(makeOpt(tuned.lr), p, evalSteps), n, 9_000_000);
        curves[name] = { lr: tuned.lr, curve: r.curve };
        yield { line: `${name} (learning rate ${tuned.lr}, tuned): final loss ${formatSummary(r.loss, 1, 4)}`, fields: { [`baseline_${name}`]: { ...r, lr: tuned.lr, tuning: tuned.scores } } };
      }
    },
    files: async () => ({ 'loss-curves.svg': lossPlot(curves, cfg) }),
    dispose: () => { current?.dispose?.(); trainer.dispose(); },
  };
}

/** The paper's Figure 4 style: mean loss over the held-out optimizees against steps, log scale. */
function lossPlot(curves: Record<string, { lr?: number; curve: number[] }>, cfg: Config): string {
  const colors: Record<string, string> = { learned: '#cf222e', adam: '#1f6feb', rmsprop: '#2da44e', sgd: '#6e7781', nag: '#d29922' };
  const entries = Object.entries(curves);
  const ys = entries.flatMap(([, c]) => c.curve.filter((v) => v > 0 && Number.isFinite(v)).map(Math.log10));
  const lo = Math.floor(Math.min(...ys) * 2) / 2, hi = Math.ceil(Math.max(...ys) * 2) / 2;
  const steps = entries[0]?.[1].curve.length - 1;
  return linePlot(entries.map(([name, c]) => ({
    label: name === 'learned' ? 'LSTM (learned)' : `${name} (lr ${c.lr})`, color: colors[name] ?? '#000',
    x: c.curve.map((_, t) => t), y: c.curve.map((v) => Math.log10(Math.max(v, 1e-30))),
  })), {
    title: `${cfg.optimizee}${cfg.dataset === 'fashion-mnist' ? ' on Fashion-MNIST' : ''}${cfg.splitLstm ? ' (conv and fc LSTMs)' : ''}: mean loss over ${cfg.evalTasks} held-out optimizees`, xRange: [0, steps], yRange: [lo, hi],
    xStep: steps > 100 ? 50 : 20, yStep: 0.5, xLabel: 'step', yLabel: 'log10 loss',
  });
}
