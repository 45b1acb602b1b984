// The MAML family and Reptile, on sine regression or Omniglot: Conv4 (or the sine MLP) adapted by
// the shared inner loop. The variants differ only in MAML's options.

import { IMAML } from '../../algorithms/imaml.js';
import { MAML } from '../../algorithms/maml.js';
import { Reptile } from '../../algorithms/reptile.js';
import { ForwardContext, Task, classificationLoss, regressionLoss } from '../../algorithms/task.js';
import { SineTasks } from '../../datasets/index.js';
import * as nn from '../../engine/nn.js';
import { linspace, stack, tensor } from '../../engine/ops.js';
import * as optim from '../../engine/optim.js';
import { Random } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import { linePlot } from '../plot.js';
import type { Config, Recipe } from '../recipe.js';
import { episodeConfig, taskSources } from '../tasks.js';
import { startFrom } from '../init-from.js';
import { evaluationConfig, taskRun } from './task-run.js';

const ALGORITHMS = {
  maml: 'MAML, second order (Finn et al. 2017)',
  fomaml: 'first-order MAML',
  metasgd: 'Meta-SGD: learned per-parameter inner rates (Li et al. 2017)',
  lslr: 'learned per-layer-per-step inner rates',
  anil: 'ANIL: adapt the head only (Raghu et al. 2020)',
  mamlpp: 'MAML++ (Antoniou et al. 2019): learned per-layer-per-step rates, multi-step loss annealed over the first 1/15 of training, first order for the first third, cosine-annealed meta rate, and on Omniglot per-step batch-norm running statistics and weights',
  reptile: 'Reptile (Nichol et al. 2018): SGD on each task, then a step towards the adapted weights',
  imaml: 'iMAML (Rajeswaran et al. 2019): the implicit meta-gradient (I + H/lam)^-1 grad L_query at the solution of the proximal inner problem, by conjugate gradient; the inner loop is never differentiated',
};

export const mamlFamily: Recipe = {
  algorithms: ALGORITHMS,
  flags: {
    'inner-lr': { type: 'number', above: 0, arg: 'A', help: 'inner-loop step size (default 0.01 sine, 0.1 omniglot; the MAML paper\'s 0.4 makes this max-pool Conv4 diverge on its first steps)' },
    'inner-steps': { type: 'int', min: 1, arg: 'S', help: 'inner steps in training (default 1)' },
    'test-steps': { type: 'int', min: 1, arg: 'S', help: 'inner steps at evaluation (default 10 sine, 3 omniglot)' },
    'inner-batch': { type: 'int', min: 1, arg: 'B', for: ['reptile'], help: 'each inner step trains on the next B of the task\'s examples (shuffled, reshuffled when used up), as Nichol et al. (10 for 5-way Omniglot); default all of them at every step' },
    'pcgrad-groups': { type: 'int', min: 1, arg: 'G', for: ['maml', 'fomaml', 'metasgd', 'lslr', 'anil', 'mamlpp', 'imaml'], help: 'Meta-PCGrad: split each meta-batch into G groups, one meta-gradient each, with PCGrad between them (default 1: off); the curve records the fraction of conflicting pairs and their mean cosine' },
    downsample: { type: 'string', arg: 'NAME', choices: ['maxpool', 'stride'], help: 'omniglot: Conv4 downsampling, maxpool (default: 2x2 max-pooling after each block) or stride (stride-2 convolutions and a spatial mean, as the MAML reference network: 3.7x fewer multiply-adds on 28x28)' },
    'hessian-reg': { type: 'number', min: 0, arg: 'COEF', for: ['maml', 'fomaml', 'metasgd', 'lslr', 'anil', 'mamlpp'], help: 'add COEF times a Hutchinson estimate of each task\'s squared Hessian Frobenius norm at its adapted weights to the meta-loss (default 0: off)' },
    'hessian-probes': { type: 'int', min: 1, arg: 'N', for: ['maml', 'fomaml', 'metasgd', 'lslr', 'anil', 'mamlpp'], help: 'probe vectors of that estimate per task (default 1)' },
    lam: { type: 'number', above: 0, arg: 'L', for: ['imaml'], help: 'imaml: strength of the proximal term (default 2, as the paper)' },
    'cg-steps': { type: 'int', min: 1, arg: 'K', for: ['imaml'], help: 'imaml: conjugate-gradient iterations for the meta-gradient (default 5, as the paper)' },
    'imaml-variant': { type: 'string', arg: 'NAME', choices: ['paper', 'reference'], for: ['imaml'], help: 'imaml: paper (the proximal term in every inner step, default) or reference (the reference code: plain SGD on the support loss, then one proximal step, and the damped operator (1 + d) v + H v / (lam + 10))' },
    'cg-damping': { type: 'number', min: 0, arg: 'D', for: ['imaml'], help: 'imaml: d in that operator (default 0 paper, 1 reference)' },
    'inner-solver': { type: 'string', arg: 'NAME', choices: ['gd', 'hessian-free'], for: ['imaml'], help: 'imaml: gd (gradient steps on the proximal inner problem, default) or hessian-free (Newton-CG steps)' },
  },
  configure(f, base) {
    const sine = base.dataset === 'sine';
    if (base.algorithm === 'reptile' && f['meta-lr-halve-every'] !== undefined) throw new UsageError('--meta-lr-halve-every is not for --algorithm reptile (its outer step is annealed linearly)');
    if (base.algorithm === 'mamlpp' && f['meta-lr-halve-every'] !== undefined) throw new UsageError('--meta-lr-halve-every is not for --algorithm mamlpp (it has its own cosine schedule)');
    let cfg = episodeConfig(f, base);
    cfg = {
      ...cfg, metaBatch: (f['meta-batch'] as number) ?? (sine ? 25 : 32), iterations: (f.iterations as number) ?? (sine ? 5000 : 2000),
      innerLr: (f['inner-lr'] as number) ?? (sine ? 0.01 : 0.1), innerSteps: (f['inner-steps'] as number) ?? 1,
      testSteps: (f['test-steps'] as number) ?? (sine ? 10 : 3), metaLr: (f['meta-lr'] as number) ?? (base.algorithm === 'reptile' ? 1 : 0.001),
      evalTasks: (f['eval-tasks'] as number) ?? (sine ? 500 : 600),
      // What Reptile's inner loop trains on in meta-training (recorded: it changed once).
      ...(base.algorithm === 'reptile' ? { reptileInnerData: 'support+query', innerBatch: (f['inner-batch'] as number) ?? 0 } : {}),
    };
    if (f['init-from'] !== undefined) cfg = { ...cfg, initFrom: f['init-from'] };
    if (f['pcgrad-groups'] !== undefined) {
      if ((f['pcgrad-groups'] as number) > (cfg.metaBatch as number)) throw new UsageError(`--pcgrad-groups ${f['pcgrad-groups']} is more than the ${cfg.metaBatch} tasks of a meta-batch`);
      cfg = { ...cfg, pcgradGroups: f['pcgrad-groups'] };
    }
    if (f.downsample !== undefined) {
      if (sine) throw new UsageError('--downsample is for --dataset omniglot');
      cfg = { ...cfg, downsample: f.downsample };
    }
    if (f['hessian-probes'] !== undefined && f['hessian-reg'] === undefined) throw new UsageError('--hessian-probes needs --hessian-reg');
    if (f['hessian-reg']) cfg = { ...cfg, hessianReg: f['hessian-reg'], hessianProbes: (f['hessian-probes'] as number) ?? 1 };
    if (base.algorithm === 'imaml') {
      // The paper's inner loop runs 16 steps (5-way) and evaluates the same way.
      const steps = (f['inner-steps'] as number) ?? 16;
      cfg = { ...cfg, innerSteps: steps, testSteps: (f['test-steps'] as number) ?? steps, lam: (f.lam as number) ?? 2, cgSteps: (f['cg-steps'] as number) ?? 5, innerSolver: (f['inner-solver'] as string) ?? 'gd' };
      if (f['imaml-variant'] !== undefined) cfg = { ...cfg, imamlVariant: f['imaml-variant'] };
      if (f['cg-damping'] !== undefined) cfg = { ...cfg, cgDamping: f['cg-damping'] };
    }
    return evaluationConfig(f, cfg, { testWays: false });
  },
  async build(cfg, log) {
    const sine = cfg.dataset === 'sine', algorithm = cfg.algorithm;
    const rng = new Random(cfg.seed);
    const sources = taskSources(cfg, log);
    const downsample = cfg.downsample as nn.Downsample | undefined;
    let params: nn.Params, model: (p: any, x: Tensor, ctx: ForwardContext) => Tensor, buffers: nn.PerStepBatchNormStats | undefined;
    if (sine) {
      params = nn.initSineMLP(rng);
      model = (p, x) => nn.sineMLP(p, x);
    } else if (algorithm === 'mamlpp') {
      // One set of statistics, and of batch-norm weights, per inner step, plus one for the query
      // pass after the last step.
      const steps = Math.max(cfg.innerSteps as number, cfg.testSteps as number) + 1;
      params = nn.initConv4(rng, { ways: cfg.ways as number, bnSteps: steps, downsample });
      const bn = buffers = new nn.PerStepBatchNormStats(steps, 4, 64);
      model = (p, x, ctx) => nn.conv4(nn.conv4AtStep(p, ctx.step), x, { bn: bn.mode(ctx.step, ctx.training), onRunning: bn.update(ctx.step), downsample });
    } else {
      params = nn.initConv4(rng, { ways: cfg.ways as number, downsample });
      model = (p, x) => nn.conv4(p, x, { downsample });
    }
    // --init-from: training starts at step 0 from the earlier run's parameters (e.g. on a second task family).
    if (cfg.initFrom) params = (await startFrom(cfg, params)).params;
    const common = { model, loss: sine ? regressionLoss : classificationLoss, params, innerLr: cfg.innerLr as number, innerSteps: cfg.innerSteps as number, testInnerSteps: cfg.testSteps as number };
    const iterations = cfg.iterations;
    const innerRng = new Random(cfg.seed + 4_000_037);
    const learner = algorithm === 'reptile'
      ? new Reptile({ ...common, metaLr: cfg.metaLr as number, metaSteps: iterations, innerBatch: (cfg.innerBatch as number) || undefined, rng: innerRng })
      : algorithm === 'imaml'
        ? new IMAML({
          ...common, metaOptimizer: optim.adam({ lr: metaRate(cfg) }), lam: cfg.lam as number, cgSteps: cfg.cgSteps as number, innerSolver: cfg.innerSolver as 'gd' | 'hessian-free',
          variant: cfg.imamlVariant as 'paper' | 'reference' | undefined, cgDamping: cfg.cgDamping as number | undefined,
          pcgrad: cfg.pcgradGroups ? { groups: cfg.pcgradGroups as number, rng: new Random(cfg.seed + 5_000_011) } : undefined,
        })
        : new MAML({
        ...common, firstOrder: algorithm === 'fomaml', buffers,
        metaOptimizer: optim.adam({ lr: algorithm === 'mamlpp' ? optim.schedules.cosine(cfg.metaLr as number, iterations, (cfg.metaLr as number) / 100) : metaRate(cfg) }),
        learnedLr: algorithm === 'metasgd' ? 'per-parameter' : algorithm === 'lslr' || algorithm === 'mamlpp' ? 'per-layer-per-step' : 'none',
        pcgrad: cfg.pcgradGroups ? { groups: cfg.pcgradGroups as number, rng: new Random(cfg.seed + 5_000_011) } : undefined,
        hessianReg: cfg.hessianReg ? { coef: cfg.hessianReg as number, probes: cfg.hessianProbes as number, rng: new Random(cfg.seed + 6_000_001) } : undefined,
        multiStepLoss: algorithm === 'mamlpp' ? Math.ceil(iterations / 15) : undefined,
        secondOrderFrom: algorithm === 'mamlpp' ? Math.floor(iterations / 3) : undefined,
        // ANIL adapts the head only; MAML++ meta-learns its per-step batch-norm weights but does not adapt them.
        adapt: algorithm === 'anil' ? (path: string) => path.startsWith(sine ? 'l3' : 'head')
          : algorithm === 'mamlpp' && !sine ? (path: string) => !path.includes('.bn.') : undefined,
        // Stacked tasks are one task to the learner: Meta-PCGrad and the per-task Hessians need them apart.
        vectorized: sine && !cfg.pcgradGroups && !cfg.hessianReg,
      });
    // Sine MAML runs all tasks of a meta-batch at once (stacked on a leading axis).
    const nextBatch = (): Task[] => {
      const ts = Array.from({ length: cfg.metaBatch as number }, sources.train);
      if (!(learner instanceof MAML && learner.o.vectorized)) return ts;
      return [{ xs: stack(ts.map((t) => t.xs)), ys: stack(ts.map((t) => t.ys as Tensor)), xq: stack(ts.map((t) => t.xq)), yq: stack(ts.map((t) => t.yq as Tensor)) }];
    };
    const run = taskRun(cfg, learner, sources, {
      nextBatch,
      steps: sine ? [0, 1, cfg.testSteps as number] : [cfg.testSteps as number],
      when: (steps) => (steps === 0 ? 'pre-adaptation' : `after ${steps} step${steps > 1 ? 's' : ''}`),
    });
    return {
      ...run,
      files: sine ? async () => ({ 'adaptation.svg': await sinePlot(learner, model, cfg) }) : undefined,
      dispose: () => learner.dispose(),
    };
  },
};

/** The Adam step size: constant, or halved every --meta-lr-halve-every updates. */
export const metaRate = (cfg: Config): optim.Rate =>
  (cfg.metaLrHalveEvery ? optim.schedules.step(cfg.metaLr as number, cfg.metaLrHalveEvery as number) : cfg.metaLr as number);

/** Finn et al.'s Figure 2: the true curve, the K points, the model before and after 1 and 10 steps. */
async function sinePlot(learner: MAML<any> | Reptile<any> | IMAML<any>, model: (p: any, x: Tensor, ctx: ForwardContext) => Tensor, cfg: Config): Promise<string> {
  const shots = cfg.shots as number, testSteps = cfg.testSteps as number;
  const task = new SineTasks({ shots, seed: cfg.seed + 7 }).next();
  const xs = tensor(task.xs, [shots, 1], { dtype: 'float32' }), ys = tensor(task.ys, [shots, 1], { dtype: 'float32' });
  const grid = linspace(-5, 5, 200).reshape([200, 1]);
  const gx = Array.from(await grid.data());
  const initial = learner instanceof MAML ? learner.meta.params : learner.params;
  const adaptTo = (steps: number) => (learner instanceof MAML
    ? (learner.o.vectorized
      ? learner.adapt(learner.meta, xs.expandDims(0), ys.expandDims(0), { steps, firstOrder: true, training: false })
      : learner.adapt(learner.meta, xs, ys, { steps, firstOrder: true, training: false }))
    : learner.adapt(learner.params, xs, ys, { steps, training: false }));
  const curveAt = async (steps: number) => Array.from(await model(steps === 0 ? initial : adaptTo(steps), grid, { step: steps, training: false }).data());
  const truth = gx.map((x) => task.amplitude * Math.sin(x - task.phase));
  return linePlot([
    { label: 'ground truth', x: gx, y: truth, color: '#d62728' },
    { label: 'pre-update', x: gx, y: await curveAt(0), color: '#2ca02c', dash: '3 3' },
    { label: '1 grad step', x: gx, y: await curveAt(1), color: '#9467bd', dash: '8 4' },
    { label: `${testSteps} grad steps`, x: gx, y: await curveAt(testSteps), color: '#1f77b4' },
    { label: `${shots} points used`, x: Array.from(task.xs), y: Array.from(task.ys), color: '#ff7f0e', points: true },
  ], { title: `MAML, K=${shots}: amplitude ${task.amplitude.toFixed(2)}, phase ${task.phase.toFixed(2)}`, xRange: [-5, 5], yRange: [-5, 5] });
}
