#!/usr/bin/env node
// The main job: meta-train on sine regression (default) or Omniglot, evaluate with confidence
// intervals, save a checkpoint, and (for sine) plot adaptation like Finn et al. (2017), Figure 2.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { init, nn, optim, tidy, Random, Tensor, linspace, scalar, stack, tensor, treeLeaves } from '../index.js';
import { FineTuneBaseline, SiameseNetwork, conv4Embedding, MAML, Reptile, classificationLoss, regressionLoss, formatSummary, Task, ForwardContext, Summary } from '../algorithms/index.js';
import { BatchSampler, PairSampler, loadLakeRuns, EpisodeSampler, Omniglot, SineTasks, episodeTensors, ClassDataset } from '../datasets/index.js';
import { MatchingNet, ProtoNet, RelationNet, initFullContext, initRelationNet } from '../algorithms/index.js';
import { saveCheckpoint } from './checkpoint.js';
import { linePlot } from './plot.js';
import { Progress } from './progress.js';

const HELP = `Usage: npm start -- [options]     (or: node dist/cli/main.js [options])

Meta-trains a learner, evaluates it on held-out tasks (mean ± 95% CI), and writes a checkpoint,
a learning curve and, for sine, an SVG of adaptation (true curve, K points, before and after
1 and 10 steps) to the output folder.

  --algorithm NAME   maml (default), fomaml (first order), metasgd (learned per-parameter rates),
                     lslr (learned per-layer-per-step rates), anil (adapt the head only), reptile,
                     mamlpp (MAML++: learned per-layer-per-step rates, multi-step loss annealed over
                     the first 1/15 of training, first order for the first third, cosine-annealed
                     meta rate, and on Omniglot per-step batch-norm running statistics and
                     per-step batch-norm weights and biases, meta-learned but not adapted),
                     finetune (Omniglot: pretrain Conv4 over all training classes in batches of
                     meta-batch x ways images, then fit a new head per test task),
                     siamese (Omniglot: Koch et al.'s verification network on pairs of training
                     images, half same-class; Conv4 embedding, L1 distance, linear + sigmoid;
                     a query gets the label of its most similar support image),
                     protonet, matching, relation (Omniglot, metric-based, no inner loop: one
                     Adam step per meta-batch of episodes, default 1): Prototypical networks
                     (Conv4 embedding, squared Euclidean distance to class means), Matching
                     networks (cosine attention over the support; --fce for full-context
                     embeddings), Relation networks (the paper's embedding and relation module,
                     MSE to the one-hot match)
  --dataset NAME     sine (default) or omniglot
  --data DIR         folder with Omniglot's images_background.zip and images_evaluation.zip
                     (and splits/vinyals/*.txt); required for omniglot
  --split NAME       omniglot class split: vinyals (default), maml (1200 training characters), or
                     background (train on images_background, test on images_evaluation, no
                     rotations: the set-up of Lake's runs and Koch et al.)
  --ways N           classes per episode (omniglot; default 5)
  --train-ways N     classes per training episode for protonet, matching, relation (default
                     --ways; Prototypical networks train 60-way for 5- and 20-way tests)
  --test-ways LIST   protonet, matching, relation, siamese: also score the trained model on test
                     tasks with these numbers of classes (comma-separated, e.g. 20 after 5-way
                     training; one model serves 5- and 20-way tests, as in Snell et al.)
  --fce              matching: full-context embeddings (biLSTM over the support, attention LSTM
                     over the query)
  --processing-steps K   matching with --fce: attention LSTM steps (default 5)
  --cosine-scale S   matching: initial value of a learned scale on the cosine similarities
                     (default 10); 0 for the paper's plain cosines
  --shots K          support examples per class, or sine points (default 1 omniglot, 10 sine)
  --queries Q        query examples per class (default 15 omniglot; sine: as shots)
  --meta-batch T     tasks per meta-update (default 25 sine, 32 omniglot)
  --iterations N     meta-updates (default 5000 sine, 2000 omniglot)
  --inner-lr A       inner-loop step size (default 0.01 sine, 0.1 omniglot; the MAML paper's 0.4
                     makes this max-pool Conv4 diverge on its first steps)
  --inner-steps S    inner steps in training (default 1)
  --inner-batch B    reptile: each inner step trains on the next B of the task's examples
                     (shuffled, reshuffled when used up), as Nichol et al. do (10 for 5-way
                     Omniglot); default all of them at every step
  --test-steps S     inner steps at evaluation (default 10 sine, 3 omniglot)
  --meta-lr B        Adam step size of the meta-update (default 0.001); Reptile's outer step (default 1)
  --meta-lr-halve-every N   halve the Adam step size every N meta-updates, as Snell et al. do
                     (every 2000 episodes); default never. Not for reptile or mamlpp (their own
                     schedules)
  --eval-tasks N     held-out tasks for the final evaluation (default 500 sine, 600 omniglot)
  --eval-every N     also score 100 held-out tasks every N iterations, for the learning curve in
                     report.json (Omniglot: the Vinyals validation classes, or with --split maml/background the
                     test classes under another seed; default 0 = never)
  --checkpoint-every N   save a checkpoint every N iterations (default 500)
  --pairs N          siamese: pairs per training step, half same-class (default 128)
  --distort          siamese: distort every training image with a random affine transform, as
                     Koch et al. train (rotation, shear, scale, translation, each with p = 0.5)
  --lake-runs FILE   also score the 20 runs of Lake et al.'s 20-way one-shot benchmark in FILE
                     (all_runs.zip): accuracy over the 400 trials (siamese) or the 20 runs
  --seed S           seed for initialisation and task sampling (default 0)
  --backend NAME     wasm (default) or ref (float64 reference loops, slow)
  --threads N        wasm: run large kernels on N threads (default 1; results are bit-identical)
  --out DIR          output folder (default runs/<dataset>-<algorithm>)
  --help             this text
`;

const args = parseArgs({
  options: {
    algorithm: { type: 'string', default: 'maml' }, dataset: { type: 'string', default: 'sine' }, data: { type: 'string' },
    split: { type: 'string', default: 'vinyals' }, ways: { type: 'string' }, shots: { type: 'string' }, queries: { type: 'string' },
    'meta-batch': { type: 'string' }, iterations: { type: 'string' }, 'inner-lr': { type: 'string' }, 'inner-steps': { type: 'string' },
    'test-steps': { type: 'string' }, 'meta-lr': { type: 'string' }, 'meta-lr-halve-every': { type: 'string' }, 'eval-tasks': { type: 'string' }, 'checkpoint-every': { type: 'string' },
    'eval-every': { type: 'string' }, pairs: { type: 'string' }, 'lake-runs': { type: 'string' },
    'train-ways': { type: 'string' }, 'test-ways': { type: 'string' }, fce: { type: 'boolean' }, 'processing-steps': { type: 'string' },
    'cosine-scale': { type: 'string' }, 'inner-batch': { type: 'string' }, threads: { type: 'string' }, distort: { type: 'boolean' },
    seed: { type: 'string' }, backend: { type: 'string', default: 'wasm' }, out: { type: 'string' }, help: { type: 'boolean' },
  },
}).values;

function num(name: keyof typeof args, dflt: number): number {
  const v = args[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name} must be a number, got '${v}'`);
  return n;
}
function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n(see --help)\n`);
  process.exit(2);
}

const ALGORITHMS = ['maml', 'fomaml', 'metasgd', 'lslr', 'anil', 'reptile', 'mamlpp', 'finetune', 'siamese', 'protonet', 'matching', 'relation'];
/** Metric-based learners: they compare queries with the support set, with no inner loop. */
const METRIC = ['protonet', 'matching', 'relation'];

async function main() {
  if (args.help) { process.stdout.write(HELP); return; }
  const algorithm = args.algorithm!, dataset = args.dataset!;
  if (!ALGORITHMS.includes(algorithm)) fail(`unknown --algorithm '${algorithm}' (one of ${ALGORITHMS.join(', ')})`);
  if (dataset !== 'sine' && dataset !== 'omniglot') fail(`unknown --dataset '${dataset}' (sine or omniglot)`);
  if (args.backend !== 'wasm' && args.backend !== 'ref') fail(`unknown --backend '${args.backend}' (wasm or ref)`);
  const sine = dataset === 'sine';
  const cfg = {
    algorithm, dataset, backend: args.backend, split: args.split,
    ways: num('ways', 5), shots: num('shots', sine ? 10 : 1), queries: num('queries', sine ? num('shots', 10) : 15),
    metaBatch: num('meta-batch', sine ? 25 : METRIC.includes(algorithm) ? 1 : 32), iterations: num('iterations', sine ? 5000 : 2000),
    innerLr: num('inner-lr', sine ? 0.01 : 0.1), innerSteps: num('inner-steps', 1), testSteps: num('test-steps', sine ? 10 : 3),
    metaLr: num('meta-lr', algorithm === 'reptile' ? 1 : 0.001), metaLrHalveEvery: num('meta-lr-halve-every', 0), evalTasks: num('eval-tasks', sine ? 500 : 600),
    checkpointEvery: num('checkpoint-every', 500), evalEvery: num('eval-every', 0), seed: num('seed', 0),
    pairs: num('pairs', 128),
    // What Reptile's inner loop trains on in meta-training (recorded: it changed once).
    ...(algorithm === 'reptile' ? { reptileInnerData: 'support+query', innerBatch: num('inner-batch', 0) } : {}),
    ...(algorithm === 'matching' ? { cosineScale: num('cosine-scale', 10) } : {}),
    ...(algorithm === 'siamese' ? { distort: !!args.distort } : {}),
    trainWays: num('train-ways', num('ways', 5)), fce: !!args.fce, processingSteps: num('processing-steps', 5),
    testWays: (args['test-ways'] ?? '').split(',').filter((w) => w.trim() !== '').map((w) => {
      const n = Number(w);
      if (!Number.isInteger(n) || n < 2) fail(`--test-ways takes a comma-separated list of class counts >= 2, got '${args['test-ways']}'`);
      return n;
    }),
  };
  if (args['train-ways'] !== undefined && !METRIC.includes(algorithm)) fail(`--train-ways is for ${METRIC.join(', ')} (the ${algorithm} model's head has --ways outputs)`);
  if (cfg.testWays.length && !(METRIC.includes(algorithm) || algorithm === 'siamese')) fail(`--test-ways is for ${METRIC.join(', ')} and siamese (the ${algorithm} model's head has --ways outputs)`);
  if ((args.fce || args['processing-steps'] !== undefined || args['cosine-scale'] !== undefined) && algorithm !== 'matching') fail('--fce, --processing-steps and --cosine-scale are for --algorithm matching');
  if (args['inner-batch'] !== undefined && algorithm !== 'reptile') fail('--inner-batch is for --algorithm reptile');
  if (args.distort && algorithm !== 'siamese') fail('--distort is for --algorithm siamese');
  if (args['meta-lr-halve-every'] !== undefined && (algorithm === 'reptile' || algorithm === 'mamlpp')) fail(`--meta-lr-halve-every is not for --algorithm ${algorithm} (it has its own schedule)`);
  if (args['meta-lr-halve-every'] !== undefined && (!Number.isInteger(cfg.metaLrHalveEvery) || cfg.metaLrHalveEvery < 1)) fail(`--meta-lr-halve-every must be a whole number >= 1, got '${args['meta-lr-halve-every']}'`);
  if (cfg.cosineScale !== undefined && cfg.cosineScale < 0) fail(`--cosine-scale must be >= 0, got ${cfg.cosineScale}`);
  if (args['inner-batch'] !== undefined && (!Number.isInteger(cfg.innerBatch) || cfg.innerBatch! < 1)) fail(`--inner-batch must be a whole number >= 1, got ${cfg.innerBatch}`);
  const out = args.out ?? join('runs', `${dataset}-${algorithm}`);
  mkdirSync(out, { recursive: true });
  const threads = num('threads', 1);
  if (!Number.isInteger(threads) || threads < 1) fail(`--threads must be a whole number >= 1, got '${args.threads}'`);
  if (threads > 1 && args.backend !== 'wasm') fail('--threads is for --backend wasm');
  await init({ backend: args.backend as 'wasm' | 'ref', threads });
  console.log(`metagrad: ${algorithm} on ${dataset}, backend ${args.backend}; ${JSON.stringify(cfg)}`);

  const rng = new Random(cfg.seed);
  let params: any, model: (p: any, x: Tensor, ctx: ForwardContext) => Tensor, nextTask: () => Task, evalSource: () => Task, curveSource: () => Task;
  const cleanup: (() => void)[] = [];
  let trainClasses: ClassDataset | null = null;
  /** Test tasks with another number of classes (--test-ways), same shots and queries. */
  let testTasksWith: (ways: number) => () => Task = () => fail('--test-ways needs --dataset omniglot');
  let plot: (() => Promise<string>) | null = null;
  let loss = regressionLoss;
  if (sine) {
    params = nn.initSineMLP(rng);
    model = (p, x) => nn.sineMLP(p, x);
    const train = new SineTasks({ shots: cfg.shots, queries: cfg.queries, seed: cfg.seed + 1 });
    const test = new SineTasks({ shots: cfg.shots, queries: cfg.queries, seed: cfg.seed + 1_000_003 });
    const one = (s: SineTasks): Task => { const b = s.batch(1); return { xs: b.xs.reshape([-1, 1]), ys: b.ys.reshape([-1, 1]), xq: b.xq.reshape([-1, 1]), yq: b.yq.reshape([-1, 1]) }; };
    const curveTasks = new SineTasks({ shots: cfg.shots, queries: cfg.queries, seed: cfg.seed + 2_000_003 });
    nextTask = () => one(train);
    evalSource = () => one(test);
    curveSource = () => one(curveTasks);
  } else {
    if (!args.data) fail('--dataset omniglot needs --data DIR (the folder with images_background.zip and images_evaluation.zip)');
    const omni = Omniglot.load({ root: args.data, onProgress: (d, t) => process.stderr.write(`\rdecoding Omniglot ${d}/${t}`) });
    process.stderr.write('\n');
    const split = args.split as 'vinyals' | 'maml' | 'background';
    if (!['vinyals', 'maml', 'background'].includes(split)) fail(`unknown --split '${split}' (vinyals, maml or background)`);
    const trainSet = omni.split(split === 'maml' ? 'trainval' : 'train', split), testSet = omni.split('test', split);
    const o = { ways: cfg.ways, shots: cfg.shots, queries: cfg.queries };
    const trainS = new EpisodeSampler(trainSet, { ...o, ways: cfg.trainWays, seed: cfg.seed + 1 }), testS = new EpisodeSampler(testSet, { ...o, seed: cfg.seed + 1_000_003 });
    testTasksWith = (ways) => { const s = new EpisodeSampler(testSet, { ...o, ways, seed: cfg.seed + 3_000_017 + ways }); return () => episodeTensors(s.next()); };
    const curveS = new EpisodeSampler(split !== 'vinyals' ? testSet : omni.split('val', split), { ...o, seed: cfg.seed + 2_000_003 });
    if (algorithm === 'mamlpp') {
      // One set of statistics, and of batch-norm weights, per inner step, plus one for the query
      // pass after the last step.
      const steps = Math.max(cfg.innerSteps, cfg.testSteps) + 1;
      params = nn.initConv4(rng, { ways: cfg.ways, bnSteps: steps });
      const bn = new nn.PerStepBatchNormStats(steps, 4, 64);
      cleanup.push(() => bn.dispose());
      model = (p, x, ctx) => nn.conv4(nn.conv4AtStep(p, ctx.step), x, bn.mode(ctx.step, ctx.training), bn.update(ctx.step));
    } else {
      params = nn.initConv4(rng, { ways: cfg.ways });
      model = (p, x) => nn.conv4(p, x);
    }
    loss = classificationLoss;
    trainClasses = trainSet;
    nextTask = () => episodeTensors(trainS.next());
    evalSource = () => episodeTensors(testS.next());
    curveSource = () => episodeTensors(curveS.next());
  }

  // The Adam step size: constant, or halved every --meta-lr-halve-every updates.
  const metaRate = cfg.metaLrHalveEvery ? optim.schedules.step(cfg.metaLr, cfg.metaLrHalveEvery) : cfg.metaLr;
  const common = { model, loss, params, innerLr: cfg.innerLr, innerSteps: cfg.innerSteps, testInnerSteps: cfg.testSteps };
  // Every algorithm as the same three operations: one training step, evaluation, its parameters.
  let step: () => Promise<number>;
  let evaluate: (tasks: Task[], steps: number) => Promise<{ loss: Summary; accuracy?: Summary; trials?: Summary }>;
  let learned: () => unknown;
  let dispose: () => void;
  if (METRIC.includes(algorithm)) {
    if (!trainClasses) fail(`--algorithm ${algorithm} needs a classification dataset (--dataset omniglot)`);
    // Conv4 without its head (64-d features on 28x28), or the Relation network's own modules.
    const { head, ...features } = params;
    treeLeaves(head).forEach((t) => t.dispose());
    const embed = (p: any, x: Tensor) => nn.conv4Features(p, x);
    const optimizer = optim.adam({ lr: metaRate });
    const learner = algorithm === 'protonet' ? new ProtoNet({ embed, params: features, optimizer })
      : algorithm === 'matching' ? new MatchingNet({ embed, params: { embed: features, fce: cfg.fce ? initFullContext(rng, 64) : undefined, logScale: cfg.cosineScale ? scalar(Math.log(cfg.cosineScale)) : undefined }, processingSteps: cfg.processingSteps, optimizer })
      : (treeLeaves(features).forEach((t) => t.dispose()), new RelationNet({ params: initRelationNet(rng), optimizer }));
    step = () => tidy(() => learner.step(Array.from({ length: cfg.metaBatch }, nextTask)));
    evaluate = (tasks) => learner.evaluate(tasks);
    learned = () => learner.params;
    dispose = () => learner.dispose();
  } else if (algorithm === 'siamese') {
    if (!trainClasses) fail('--algorithm siamese needs a classification dataset (--dataset omniglot)');
    treeLeaves(params).forEach((t) => t.dispose());
    const net = new SiameseNetwork({ embedding: conv4Embedding(rng), rng, optimizer: optim.adam({ lr: metaRate }) });
    const pairs = new PairSampler(trainClasses, cfg.pairs, cfg.seed + 1, { distort: !!args.distort });
    step = () => tidy(() => net.step(pairs.next()));
    evaluate = (tasks) => net.evaluate(tasks);
    learned = () => ({ ...net.params, batchNorm: net.embedding.state?.() });
    dispose = () => net.dispose();
  } else if (algorithm === 'finetune') {
    if (!trainClasses) fail('--algorithm finetune needs a classification dataset (--dataset omniglot)');
    // Pretraining: ordinary batches over every training class, one head output per class.
    treeLeaves(params).forEach((t) => t.dispose());
    const backbone = nn.initConv4(rng, { ways: trainClasses.numClasses });
    const ft = new FineTuneBaseline({ features: (p: any, x: Tensor) => nn.conv4Features(p, x), featureDim: 64, params: backbone as any, optimizer: optim.adam({ lr: metaRate }) });
    const batches = new BatchSampler(trainClasses, cfg.metaBatch * cfg.ways, cfg.seed + 1);
    step = () => tidy(() => { const b = batches.next(); return ft.pretrainStep(b.x, b.labels); });
    evaluate = (tasks) => ft.evaluate(tasks);
    learned = () => ft.params;
    dispose = () => ft.dispose();
  } else {
    const learner = algorithm === 'reptile'
      ? new Reptile({ ...common, metaLr: cfg.metaLr, metaSteps: cfg.iterations, innerBatch: cfg.innerBatch || undefined, rng: new Random(cfg.seed + 4_000_037) })
      : new MAML({
        ...common, firstOrder: algorithm === 'fomaml',
        metaOptimizer: optim.adam({ lr: algorithm === 'mamlpp' ? optim.schedules.cosine(cfg.metaLr, cfg.iterations, cfg.metaLr / 100) : metaRate }),
        learnedLr: algorithm === 'metasgd' ? 'per-parameter' : algorithm === 'lslr' || algorithm === 'mamlpp' ? 'per-layer-per-step' : 'none',
        multiStepLoss: algorithm === 'mamlpp' ? Math.ceil(cfg.iterations / 15) : undefined,
        secondOrderFrom: algorithm === 'mamlpp' ? Math.floor(cfg.iterations / 3) : undefined,
        // ANIL adapts the head only; MAML++ meta-learns its per-step batch-norm weights but does not adapt them.
        adapt: algorithm === 'anil' ? (path: string) => path.startsWith(sine ? 'l3' : 'head')
          : algorithm === 'mamlpp' && !sine ? (path: string) => !path.includes('.bn.') : undefined,
        vectorized: sine,
      });
    // Sine MAML runs all tasks of a meta-batch at once (stacked on a leading axis).
    const batch = (): Task[] => {
      const ts = Array.from({ length: cfg.metaBatch }, nextTask);
      if (!(sine && learner instanceof MAML)) return ts;
      return [{ xs: stack(ts.map((t) => t.xs)), ys: stack(ts.map((t) => t.ys as Tensor)), xq: stack(ts.map((t) => t.xq)), yq: stack(ts.map((t) => t.yq as Tensor)) }];
    };
    step = () => tidy(() => learner.step(batch()));
    evaluate = (tasks, steps) => learner.evaluate(tasks, steps);
    learned = () => (learner instanceof MAML ? learner.meta.params : learner.params);
    dispose = () => learner.dispose();
    if (sine) plot = () => sinePlot(learner, model, cfg);
  }

  const evalSet = (source: () => Task, n: number) => { const s = [] as Task[]; for (let i = 0; i < n; i++) s.push(source()); return s; };
  const curve: { iteration: number; loss: number; seconds: number; heldOut?: Summary }[] = [];
  const innerSteps = !(METRIC.includes(algorithm) || algorithm === 'siamese' || algorithm === 'finetune');
  const progress = new Progress(cfg.iterations, 'meta-training');
  let t0 = performance.now();
  let avg = NaN;
  for (let i = 1; i <= cfg.iterations; i++) {
    const l = await step();
    avg = Number.isNaN(avg) ? l : 0.98 * avg + 0.02 * l;
    if (i % 10 === 0 || i === cfg.iterations) {
      curve.push({ iteration: i, loss: l, seconds: (performance.now() - t0) / 1000 });
      progress.update(i, { loss: avg });
    }
    if (cfg.evalEvery > 0 && i % cfg.evalEvery === 0) {
      // Held-out score for the learning curve; its time is not counted in the training time.
      const e0 = performance.now();
      const r = await tidy(async () => evaluate(evalSet(curveSource, 100), cfg.testSteps));
      const heldOut = r.accuracy ?? r.loss;
      curve.push({ iteration: i, loss: l, seconds: (e0 - t0) / 1000, heldOut });
      progress.note(`held-out ${r.accuracy ? 'accuracy' : 'MSE'} at ${i}: ${formatSummary(heldOut, r.accuracy ? 100 : 1, 3)}${r.accuracy ? ' %' : ''}${innerSteps ? ` (${cfg.testSteps} steps)` : ''}`, performance.now() - e0);
      t0 += performance.now() - e0;
    }
    if (i % cfg.checkpointEvery === 0) await saveCheckpoint(join(out, 'checkpoint.json'), learned(), { iteration: i, config: cfg });
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  await saveCheckpoint(join(out, 'checkpoint.json'), learned(), { iteration: cfg.iterations, config: cfg });

  const report: Record<string, unknown> = { config: cfg, trainSeconds, curve };
  // Only the gradient-based learners adapt with inner steps; the others' scores have no step count.
  const stepsToReport = sine ? [0, 1, cfg.testSteps] : [cfg.testSteps];
  for (const steps of [...new Set(stepsToReport)]) {
    const r = await tidy(async () => evaluate(evalSet(evalSource, cfg.evalTasks), steps));
    report[innerSteps ? `eval_${steps}_steps` : 'eval'] = r;
    const what = r.accuracy ? `accuracy ${formatSummary(r.accuracy, 100)} %` : `MSE ${formatSummary(r.loss, 1, 3)}`;
    const when = algorithm === 'finetune' ? 'with a fine-tuned head' : algorithm === 'siamese' ? 'by the most similar support image' : METRIC.includes(algorithm) ? 'comparing with the support set' : steps === 0 ? 'pre-adaptation' : `after ${steps} step${steps > 1 ? 's' : ''}`;
    console.log(`${when}: ${what} over ${cfg.evalTasks} test tasks`);
  }
  for (const ways of cfg.testWays) {
    const r = await tidy(async () => evaluate(evalSet(testTasksWith(ways), cfg.evalTasks), cfg.testSteps));
    report[`eval_${ways}_ways`] = r;
    console.log(`${ways}-way ${cfg.shots}-shot test tasks (same model): accuracy ${formatSummary(r.accuracy!, 100)} % over ${cfg.evalTasks} tasks`);
  }
  if (args['lake-runs']) {
    if (sine) fail('--lake-runs needs --dataset omniglot');
    if (algorithm !== 'siamese' && cfg.ways !== 20) fail(`--lake-runs: Lake's runs are 20-way, but this ${algorithm} model was trained ${cfg.ways}-way (use --ways 20)`);
    const runs = loadLakeRuns(args['lake-runs'], { size: 28 });
    const r = await tidy(async () => evaluate(runs.map((e) => episodeTensors(e)), cfg.testSteps));
    report.lake_runs = r;
    const acc = r.trials ? `${formatSummary(r.trials, 100)} % over the 400 trials` : `${formatSummary(r.accuracy!, 100)} % over the 20 runs`;
    console.log(`Lake et al.'s 20-way one-shot runs: accuracy ${acc}`);
  }
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 1));
  if (plot) writeFileSync(join(out, 'adaptation.svg'), await tidy(plot));
  console.log(`trained ${cfg.iterations} iterations in ${trainSeconds.toFixed(1)} s; wrote ${join(out, 'checkpoint.json')}, report.json${sine ? ', adaptation.svg' : ''}`);
  dispose();
  cleanup.forEach((f) => f());
}

async function sinePlot(learner: MAML<any> | Reptile<any>, model: (p: any, x: Tensor, ctx: ForwardContext) => Tensor, cfg: { shots: number; seed: number; testSteps: number }): Promise<string> {
  const task = new SineTasks({ shots: cfg.shots, seed: cfg.seed + 7 }).next();
  const xs = tensor(task.xs, [cfg.shots, 1], { dtype: 'float32' }), ys = tensor(task.ys, [cfg.shots, 1], { dtype: 'float32' });
  const grid = linspace(-5, 5, 200).reshape([200, 1]);
  const gx = Array.from(await grid.data());
  const adaptTo = (steps: number) => (learner instanceof MAML
    ? learner.adapt(learner.meta, xs.expandDims(0), ys.expandDims(0), steps, true, false)
    : learner.adapt(learner.params, xs, ys, steps, false));
  const curveAt = async (steps: number) => Array.from(await model(steps === 0 ? (learner instanceof MAML ? learner.meta.params : learner.params) : adaptTo(steps), grid, { step: steps, training: false }).data());
  const truth = gx.map((x) => task.amplitude * Math.sin(x - task.phase));
  return linePlot([
    { label: 'ground truth', x: gx, y: truth, color: '#d62728' },
    { label: 'pre-update', x: gx, y: await curveAt(0), color: '#2ca02c', dash: '3 3' },
    { label: '1 grad step', x: gx, y: await curveAt(1), color: '#9467bd', dash: '8 4' },
    { label: `${cfg.testSteps} grad steps`, x: gx, y: await curveAt(cfg.testSteps), color: '#1f77b4' },
    { label: `${cfg.shots} points used`, x: Array.from(task.xs), y: Array.from(task.ys), color: '#ff7f0e', points: true },
  ], { title: `MAML, K=${cfg.shots}: amplitude ${task.amplitude.toFixed(2)}, phase ${task.phase.toFixed(2)}`, xRange: [-5, 5], yRange: [-5, 5] });
}

main().catch((e) => { process.stderr.write(`error: ${e instanceof Error ? e.message : e}\n`); process.exit(1); });
