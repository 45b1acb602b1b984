// The fine-tuning baseline on Omniglot (Chen et al. 2019): pretrain Conv4 over all training classes,
// then fit a new head per test task.

import { FineTuneBaseline } from '../../algorithms/finetune.js';
import { BatchSampler } from '../../datasets/index.js';
import * as nn from '../../engine/nn.js';
import * as optim from '../../engine/optim.js';
import { treeLeaves } from '../../engine/pytree.js';
import { Random } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import type { Recipe } from '../recipe.js';
import { episodeConfig, omniglotSources } from '../tasks.js';
import { metaRate } from './maml-family.js';
import { evaluationConfig, taskRun } from './task-run.js';

export const finetune: Recipe = {
  algorithms: { finetune: 'fine-tuning baseline: pretrain Conv4 over all training classes in batches of meta-batch x ways images, then fit a new head per test task' },
  configure(f, base) {
    if (base.dataset !== 'omniglot') throw new UsageError('--algorithm finetune needs a classification dataset (--dataset omniglot)');
    const cfg = episodeConfig(f, base);
    return evaluationConfig(f, {
      ...cfg, metaBatch: (f['meta-batch'] as number) ?? 32, iterations: (f.iterations as number) ?? 2000, metaLr: (f['meta-lr'] as number) ?? 0.001,
      evalTasks: (f['eval-tasks'] as number) ?? 600,
    }, { testWays: false });
  },
  async build(cfg, log) {
    const sources = omniglotSources(cfg, log);
    const trainClasses = sources.classes!.train;
    const rng = new Random(cfg.seed);
    treeLeaves(nn.initConv4(rng, { ways: cfg.ways as number })).forEach((t) => t.dispose());   // the draws every Omniglot run makes first
    // Pretraining: ordinary batches over every training class, one head output per class.
    const backbone = nn.initConv4(rng, { ways: trainClasses.numClasses });
    const ft = new FineTuneBaseline({ features: (p: any, x: Tensor) => nn.conv4Features(p, x), featureDim: 64, params: backbone as any, optimizer: optim.adam({ lr: metaRate(cfg) }) });
    const batches = new BatchSampler(trainClasses, (cfg.metaBatch as number) * (cfg.ways as number), cfg.seed + 1);
    const run = taskRun(cfg, ft, sources, {
      nextBatch: () => batches.next(), streams: { train: batches, curve: sources.streams.curve },
      steps: null, when: () => 'with a fine-tuned head',
    });
    return { ...run, dispose: () => ft.dispose() };
  },
};
