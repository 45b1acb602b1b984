// Siamese networks on Omniglot (Koch et al. 2015): trained on pairs of training images, scored on
// N-way one-shot tasks by the most similar support image.

import { SiameseNetwork, conv4Embedding } from '../../algorithms/siamese.js';
import { PairSampler } from '../../datasets/index.js';
import * as nn from '../../engine/nn.js';
import * as optim from '../../engine/optim.js';
import { treeLeaves } from '../../engine/pytree.js';
import { Random } from '../../engine/random.js';
import { UsageError } from '../flags.js';
import type { Recipe } from '../recipe.js';
import { episodeConfig, omniglotSources } from '../tasks.js';
import { metaRate } from './maml-family.js';
import { evaluationConfig, taskRun } from './task-run.js';

export const siamese: Recipe = {
  algorithms: { siamese: 'Siamese networks (Koch et al. 2015): Conv4 embedding, L1 distance, linear + sigmoid on pairs of training images, half same-class; a query gets the label of its most similar support image' },
  flags: {
    pairs: { type: 'int', min: 2, for: ['siamese'], help: 'pairs per training step, half same-class (default 128)' },
    distort: { type: 'bool', for: ['siamese'], help: 'distort every training image with a random affine transform, as Koch et al. train (rotation, shear, scale, translation, each with p = 0.5)' },
  },
  configure(f, base) {
    if (base.dataset !== 'omniglot') throw new UsageError('--algorithm siamese needs a classification dataset (--dataset omniglot)');
    if (f['meta-batch'] !== undefined) throw new UsageError('--meta-batch is not for --algorithm siamese (its batches are --pairs pairs)');
    const cfg = episodeConfig(f, base);
    return evaluationConfig(f, {
      ...cfg, iterations: (f.iterations as number) ?? 2000, metaLr: (f['meta-lr'] as number) ?? 0.001, evalTasks: (f['eval-tasks'] as number) ?? 600,
      pairs: (f.pairs as number) ?? 128, distort: !!f.distort,
    }, { testWays: true });
  },
  async build(cfg, log) {
    const sources = omniglotSources(cfg, log);
    const rng = new Random(cfg.seed);
    treeLeaves(nn.initConv4(rng, { ways: cfg.ways as number })).forEach((t) => t.dispose());   // the draws every Omniglot run makes first
    const net = new SiameseNetwork({ embedding: conv4Embedding(rng), rng, optimizer: optim.adam({ lr: metaRate(cfg) }) });
    const pairs = new PairSampler(sources.classes!.train, cfg.pairs as number, cfg.seed + 1, { distort: cfg.distort as boolean });
    const run = taskRun(cfg, net, sources, {
      nextBatch: () => pairs.next(), streams: { train: pairs, curve: sources.streams.curve },
      steps: null, when: () => 'by the most similar support image',
    });
    return { ...run, dispose: () => net.dispose() };
  },
};
