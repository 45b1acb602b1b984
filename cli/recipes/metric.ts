// Metric-based learners on Omniglot (no inner loop: one Adam step per meta-batch of episodes):
// Prototypical, Matching and Relation networks.

import { MatchingNet, initFullContext } from '../../algorithms/matching.js';
import { ProtoNet } from '../../algorithms/protonet.js';
import { RelationNet, initRelationNet } from '../../algorithms/relation.js';
import * as nn from '../../engine/nn.js';
import { scalar } from '../../engine/ops.js';
import * as optim from '../../engine/optim.js';
import { treeLeaves } from '../../engine/pytree.js';
import { Random } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import type { Recipe } from '../recipe.js';
import { episodeConfig, omniglotSources } from '../tasks.js';
import { metaRate } from './maml-family.js';
import { evaluationConfig, taskRun } from './task-run.js';

export const metric: Recipe = {
  algorithms: {
    protonet: 'Prototypical networks (Snell et al. 2017): Conv4 embedding, squared Euclidean distance to class means',
    matching: 'Matching networks (Vinyals et al. 2016): cosine attention over the support; --fce for full-context embeddings',
    relation: 'Relation networks (Sung et al. 2018): the paper\'s embedding and relation module, MSE to the one-hot match',
  },
  flags: {
    'train-ways': { type: 'int', min: 2, help: 'classes per training episode (default --ways; Prototypical networks train 60-way for 5- and 20-way tests)' },
    fce: { type: 'bool', for: ['matching'], help: 'full-context embeddings (biLSTM over the support, attention LSTM over the query)' },
    'processing-steps': { type: 'int', min: 1, arg: 'K', for: ['matching'], help: 'attention LSTM steps with --fce (default 5)' },
    'cosine-scale': { type: 'number', min: 0, arg: 'S', for: ['matching'], help: 'initial value of a learned scale on the cosine similarities (default 10); 0 for the paper\'s plain cosines' },
  },
  configure(f, base) {
    if (base.dataset !== 'omniglot') throw new UsageError(`--algorithm ${base.algorithm} needs a classification dataset (--dataset omniglot)`);
    if (f['processing-steps'] !== undefined && !f.fce) throw new UsageError('--processing-steps needs --fce');
    const cfg = episodeConfig(f, base);
    return evaluationConfig(f, {
      ...cfg, metaBatch: (f['meta-batch'] as number) ?? 1, iterations: (f.iterations as number) ?? 2000, metaLr: (f['meta-lr'] as number) ?? 0.001,
      evalTasks: (f['eval-tasks'] as number) ?? 600, trainWays: (f['train-ways'] as number) ?? cfg.ways,
      ...(base.algorithm === 'matching' ? { fce: !!f.fce, processingSteps: (f['processing-steps'] as number) ?? 5, cosineScale: (f['cosine-scale'] as number) ?? 10 } : {}),
    }, { testWays: true });
  },
  async build(cfg, log) {
    const sources = omniglotSources(cfg, log);
    const rng = new Random(cfg.seed);
    // Every Omniglot run draws a Conv4 with --ways outputs first (runs before the recipes did, so
    // documented figures reproduce); these learners drop its head, Relation networks all of it.
    const { head, ...features } = nn.initConv4(rng, { ways: cfg.ways as number });
    treeLeaves(head).forEach((t) => t.dispose());
    const embed = (p: any, x: Tensor) => nn.conv4Features(p, x);
    const optimizer = optim.adam({ lr: metaRate(cfg) });
    const scale = cfg.cosineScale as number;
    const learner = cfg.algorithm === 'protonet' ? new ProtoNet({ embed, params: features, optimizer })
      : cfg.algorithm === 'matching' ? new MatchingNet({ embed, params: { embed: features, fce: cfg.fce ? initFullContext(rng, 64) : undefined, logScale: scale ? scalar(Math.log(scale)) : undefined }, processingSteps: cfg.processingSteps as number, optimizer })
        : (treeLeaves(features).forEach((t) => t.dispose()), new RelationNet({ params: initRelationNet(rng), optimizer }));
    const run = taskRun(cfg, learner, sources, {
      nextBatch: () => Array.from({ length: cfg.metaBatch as number }, sources.train),
      steps: null, when: () => 'comparing with the support set',
    });
    return { ...run, dispose: () => learner.dispose() };
  },
};
