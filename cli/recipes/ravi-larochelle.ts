// Ravi & Larochelle's LSTM meta-learner on Omniglot (their benchmark, mini-ImageNet, has no images
// on this machine): the learner is Conv4 with 32 filters and batch norm, updated on the support set
// by the meta-learner 12 times at 1 shot, 8 at 5 shots; Adam with the gradient norm clipped at 0.25.

import { RaviLarochelle, initMetaLearnerLSTM } from '../../algorithms/ravi-larochelle.js';
import { classificationLoss } from '../../algorithms/task.js';
import * as nn from '../../engine/nn.js';
import * as optim from '../../engine/optim.js';
import { Random } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import type { Recipe } from '../recipe.js';
import { episodeConfig, omniglotSources } from '../tasks.js';
import { metaRate } from './maml-family.js';
import { evaluationConfig, taskRun } from './task-run.js';

export const raviLarochelle: Recipe = {
  algorithms: { 'ravi-larochelle': 'LSTM meta-learner (Ravi & Larochelle 2017): the learner\'s parameters are the cell state of a coordinatewise LSTM whose gates are learned rates and decays; Conv4 with 32 filters' },
  flags: {
    updates: { type: 'int', min: 1, arg: 'T', help: 'ravi-larochelle: meta-learner updates of the learner per episode, in training and at test (default 12 at 1 shot, 8 at more, as the paper)' },
    filters: { type: 'int', min: 1, arg: 'F', help: 'ravi-larochelle: Conv4 filters per layer (default 32, as the paper\'s learner)' },
    'clip-norm': { type: 'number', min: 0, arg: 'C', help: 'ravi-larochelle: clip the meta-gradient\'s global norm at C (default 0.25, as the paper; 0 for none)' },
  },
  configure(f, base) {
    if (base.dataset !== 'omniglot') throw new UsageError('--algorithm ravi-larochelle needs --dataset omniglot');
    const cfg = episodeConfig(f, base);
    return evaluationConfig(f, {
      ...cfg, metaBatch: (f['meta-batch'] as number) ?? 1, iterations: (f.iterations as number) ?? 3000, metaLr: (f['meta-lr'] as number) ?? 0.001,
      evalTasks: (f['eval-tasks'] as number) ?? 600, updates: (f.updates as number) ?? ((cfg.shots as number) === 1 ? 12 : 8),
      filters: (f.filters as number) ?? 32, clipNorm: (f['clip-norm'] as number) ?? 0.25,
    }, { testWays: false });
  },
  async build(cfg, log) {
    const sources = omniglotSources(cfg, log);
    const rng = new Random(cfg.seed);
    const params = nn.initConv4(rng, { ways: cfg.ways as number, filters: cfg.filters as number });
    const learner = new RaviLarochelle({
      model: (p: nn.Params, x: Tensor) => nn.conv4(p, x), loss: classificationLoss, params, metaLearner: initMetaLearnerLSTM(rng),
      updates: cfg.updates as number, clip: cfg.clipNorm as number, metaOptimizer: optim.adam({ lr: metaRate(cfg) }),
    });
    const run = taskRun(cfg, learner, sources, {
      nextBatch: () => Array.from({ length: cfg.metaBatch as number }, sources.train),
      steps: null, when: () => `after ${cfg.updates} meta-learner updates`,
    });
    return { ...run, dispose: () => learner.dispose() };
  },
};
