#!/usr/bin/env node
// The main job: trains a learner from a recipe (cli/recipes/), with progress, a learning curve,
// checkpoints that resume bit for bit, a clean stop on SIGINT / SIGTERM, a final evaluation (mean ±
// 95% CI) and report.json. Every flag is checked before any data is read or training starts.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { init } from '../index.js';
import type { LearnerState } from '../algorithms/learner.js';
import { decodeCheckpoint, decodeSafetensors, saveCheckpoint } from '../engine/checkpoint.js';
import { tidy } from '../engine/runtime.js';
import { defaultCacheDir } from '../datasets/index.js';
import { FlagSpec, FlagValues, USAGE, UsageError, checkApplies, helpEntry, helpText, parseFlags } from './flags.js';
import { Progress } from './progress.js';
import type { Config, Recipe, Run } from './recipe.js';
import { finetune } from './recipes/finetune.js';
import { mamlFamily } from './recipes/maml-family.js';
import { memory } from './recipes/memory.js';
import { l2l } from './recipes/l2l.js';
import { raviLarochelle } from './recipes/ravi-larochelle.js';
import { continual } from './recipes/continual.js';
import { metric } from './recipes/metric.js';
import { siamese } from './recipes/siamese.js';
import { ensureWritableFolder, yieldToEventLoop } from './files.js';

const RECIPES: Recipe[] = [mamlFamily, metric, siamese, finetune, raviLarochelle, memory, l2l, continual];
const ALGORITHMS = Object.fromEntries(RECIPES.flatMap((r) => Object.entries(r.algorithms)));
const CHECKPOINT = 'checkpoint.safetensors';
const FORMAT = 'metagrad-run-1';

/** The learners trained and scored on tasks (all but the memory-based ones). */
const TASK_LEARNERS = RECIPES.filter((r) => r !== memory && r !== l2l && r !== continual).flatMap((r) => Object.keys(r.algorithms));

const COMMON: Record<string, FlagSpec> = {
  algorithm: { type: 'string', arg: 'NAME', choices: Object.keys(ALGORITHMS), help: 'the learner (default maml; the list above)' },
  dataset: { type: 'string', arg: 'NAME', choices: ['sine', 'omniglot', 'permuted-mnist'], help: 'sine (default for the MAML family), omniglot (default for the others; the NTM\'s copy task is generated) or permuted-mnist (ewc)' },
  data: { type: 'string', arg: 'DIR', help: 'folder with Omniglot\'s images_background.zip and images_evaluation.zip (and splits/vinyals/*.txt); required for omniglot' },
  split: { type: 'string', arg: 'NAME', choices: ['vinyals', 'maml', 'background', 'family-a', 'family-b'], help: 'omniglot class split: vinyals (default), maml (1200 training characters), background (train on images_background, test on images_evaluation, no rotations: the set-up of Lake\'s runs and Koch et al.), or family-a / family-b (two task families for sequential training: the first and the last 15 alphabets of images_background, unrotated, every fourth character of each alphabet held out for testing)' },
  'also-test': { type: 'string', arg: 'NAME', choices: ['vinyals', 'maml', 'background', 'family-a', 'family-b'], for: TASK_LEARNERS, help: 'omniglot: also score the learning curve and the final evaluation on the test classes of this split (e.g. family-a while training on family-b, to measure forgetting)' },
  'init-from': { type: 'string', arg: 'FILE', for: [...TASK_LEARNERS.filter((a) => a in mamlFamily.algorithms), 'ntm', 'mann', 'l2l'], help: 'start from the parameters of an earlier run\'s checkpoint, with fresh optimiser state (and learned inner rates); the NTM\'s and MANN\'s step count continues from the checkpoint\'s. Old checkpoint.json files are read with a deprecation warning' },
  ways: { type: 'int', min: 2, help: 'classes per episode (omniglot; default 5)' },
  shots: { type: 'int', min: 1, arg: 'K', help: 'support examples per class, or sine points (default 1 omniglot, 10 sine)' },
  queries: { type: 'int', min: 1, arg: 'Q', help: 'query examples per class (default 15 omniglot; sine: as shots)' },
  'test-ways': { type: 'string', arg: 'LIST', for: ['protonet', 'matching', 'relation', 'siamese'], help: 'also score the trained model on test tasks with these numbers of classes (comma-separated, e.g. 20 after 5-way training)' },
  'lake-runs': { type: 'string', arg: 'FILE', help: 'also score the 20 runs of Lake et al.\'s 20-way one-shot benchmark in FILE (all_runs.zip): accuracy over the 400 trials (siamese) or the 20 runs' },
  'meta-batch': { type: 'int', min: 1, arg: 'T', help: 'tasks, episodes or sequences per update (default 25 sine, 32 omniglot, 1 for metric learners, 16 ntm and mann)' },
  iterations: { type: 'int', min: 0, help: 'training updates (default 5000 sine, 2000 omniglot, 100000 ntm and mann); 0 with --init-from only evaluates' },
  minutes: { type: 'number', above: 0, arg: 'M', help: 'also stop training after M minutes (default none; 20 for ntm and mann); evaluations are not counted' },
  'meta-lr': { type: 'number', above: 0, arg: 'B', help: 'Adam step size of the training update (default 0.001); Reptile\'s outer step (default 1)' },
  'meta-lr-halve-every': { type: 'int', min: 1, arg: 'N', help: 'halve the Adam step size every N updates, as Snell et al. do (every 2000 episodes); default never' },
  'eval-tasks': { type: 'int', min: 1, help: 'held-out tasks for the final evaluation, drawn one at a time (default 500 sine, 600 omniglot, 1000 mann episodes)' },
  'eval-every': { type: 'int', min: 0, help: 'also score 100 held-out tasks every N updates, for the learning curve in report.json (default 0 = never; 100 ntm, 200 mann)' },
  'checkpoint-every': { type: 'int', min: 1, help: `write ${CHECKPOINT} every N updates (default 500; always at the end and on SIGINT / SIGTERM)` },
  seed: { type: 'int', min: 0, help: 'seed for initialisation and task sampling (default 0)' },
  backend: { type: 'string', arg: 'NAME', choices: ['wasm', 'ref'], help: 'wasm (default) or ref (float64 reference loops, slow)' },
  threads: { type: 'int', min: 1, max: 64, help: 'wasm: run large kernels on N threads (default 1; results are bit-identical)' },
  out: { type: 'string', arg: 'DIR', help: 'output folder (default runs/<dataset>-<algorithm>); refused if it holds a run, unless --force' },
  resume: { type: 'string', arg: 'DIR', help: `continue the run in DIR from its ${CHECKPOINT} (its flags come from the checkpoint; --threads and --minutes may be given)` },
  force: { type: 'bool', help: 'overwrite the run in --out' },
  'cache-dir': { type: 'string', arg: 'DIR', help: 'where decoded Omniglot is cached (default $XDG_CACHE_HOME/metagrad or ~/.cache/metagrad)' },
  'no-cache': { type: 'bool', help: 'do not cache decoded Omniglot' },
  help: { type: 'bool', help: 'this text' },
};

/** Every flag: the common ones and each recipe's, restricted to that recipe's algorithms. */
const FLAGS: Record<string, FlagSpec> = { ...COMMON };
for (const r of RECIPES) {
  for (const [name, spec] of Object.entries(r.flags ?? {})) {
    const prev = FLAGS[name]?.for, own = spec.for ?? Object.keys(r.algorithms);
    FLAGS[name] = { ...spec, for: prev ? [...new Set([...prev, ...own])] : own };
  }
}

/** Flags that may accompany --resume (they change neither the run's arithmetic nor its draws). */
const WITH_RESUME = ['resume', 'threads', 'minutes', 'cache-dir', 'no-cache'];

const HELP = helpText(`Usage: npm start -- [options]     (or: node dist/cli/main.js [options])

Trains a learner, evaluates it on held-out tasks (mean ± 95% CI), and writes ${CHECKPOINT}, report.json
(configuration, learning curve, evaluation) and, for sine, an SVG of adaptation to the output folder.
Ctrl-C (or SIGTERM) finishes the current step, saves the checkpoint and a report marked interrupted;
--resume DIR continues the run exactly where it stopped.

Algorithms:
${Object.entries(ALGORITHMS).map(([k, v]) => helpEntry(`  ${k}`, v)).join('\n')}

Options:`, FLAGS);

interface Setup { cfg: Config; out: string; resumeFrom: { file: string; bytes: Uint8Array; metadata: Record<string, unknown> } | null }

/** Everything that can be checked before data is read or training starts; throws UsageError. */
function setup(argv: string[]): Setup | null {
  const f = parseFlags(argv, FLAGS);
  if (f.help) return null;
  if (f.resume !== undefined) return resumeSetup(f);
  const algorithm = (f.algorithm as string | undefined) ?? 'maml';
  const recipe = RECIPES.find((r) => algorithm in r.algorithms)!;
  checkApplies(f, FLAGS, algorithm);
  if (f['init-from'] !== undefined && !existsSync(f['init-from'] as string)) throw new UsageError(`--init-from ${f['init-from']}: no such file`);
  if (f.iterations === 0 && f['init-from'] === undefined) throw new UsageError('--iterations 0 trains nothing: give --init-from FILE to evaluate an earlier run\'s parameters, or --iterations >= 1');
  if (f['cache-dir'] !== undefined && f['no-cache']) throw new UsageError('--cache-dir and --no-cache contradict each other');
  if (f.threads !== undefined && f.threads !== 1 && f.backend === 'ref') throw new UsageError('--threads is for --backend wasm');
  if (f.dataset === 'permuted-mnist' && recipe !== continual) throw new UsageError(`--dataset permuted-mnist is for --algorithm ewc, not ${algorithm}`);
  const dataset = (f.dataset as string | undefined) ?? (recipe === mamlFamily ? 'sine' : 'omniglot');
  const base: Config = {
    algorithm, dataset, backend: (f.backend as string) ?? 'wasm', seed: (f.seed as number) ?? 0, iterations: f.iterations as number,
    minutes: (f.minutes as number | undefined) ?? null, evalEvery: (f['eval-every'] as number) ?? 0, checkpointEvery: (f['checkpoint-every'] as number) ?? 500,
    metaLrHalveEvery: (f['meta-lr-halve-every'] as number) ?? 0, ...(f.data !== undefined ? { data: f.data } : {}),
  };
  const cfg = recipe.configure(f, base);
  const out = (f.out as string | undefined) ?? join('runs', `${cfg.dataset}-${algorithm}`);
  const held = [CHECKPOINT, 'checkpoint.json', 'report.json'].filter((n) => existsSync(join(out, n)));
  if (held.length && !f.force) throw new UsageError(`${out} already holds a run (${held.join(', ')}): --resume ${out} continues it, --force overwrites it`);
  ensureWritableFolder(out);
  return { cfg: withRuntime(cfg, f), out, resumeFrom: null };
}

/** Cache and thread settings: how the run is computed, not what it computes. */
function withRuntime(cfg: Config, f: FlagValues): Config {
  const cacheDir = f['no-cache'] ? null : (f['cache-dir'] as string | undefined) ?? cfg.cacheDir ?? defaultCacheDir();
  return { ...cfg, threads: (f.threads as number | undefined) ?? cfg.threads ?? 1, cacheDir, minutes: (f.minutes as number | undefined) ?? cfg.minutes };
}

function resumeSetup(f: FlagValues): Setup {
  const extra = Object.keys(f).filter((k) => !WITH_RESUME.includes(k));
  if (extra.length) throw new UsageError(`--resume takes the run's flags from its checkpoint; only ${WITH_RESUME.slice(1).map((k) => `--${k}`).join(', ')} may be given with it, not --${extra[0]}`);
  const out = f.resume as string;
  const file = join(out, CHECKPOINT);
  if (!existsSync(file)) throw new UsageError(`--resume ${out}: no ${CHECKPOINT} there`);
  let bytes: Uint8Array;
  try { bytes = readFileSync(file); } catch (e: any) { throw new UsageError(`${file}: cannot read (${e.code ?? e.message})`); }
  let metadata: Record<string, unknown>;
  try {
    metadata = Object.fromEntries(Object.entries(decodeSafetensors(bytes, file).metadata).map(([k, v]) => [k, JSON.parse(v)]));
  } catch (e: any) {
    throw new UsageError(e instanceof SyntaxError ? `${file}: metadata is not valid JSON (${e.message})` : e.message);
  }
  if (metadata.format !== FORMAT || typeof metadata.config !== 'object') throw new UsageError(`${file}: not a metagrad run checkpoint (format '${metadata.format}')`);
  ensureWritableFolder(out);
  return { cfg: withRuntime(metadata.config as Config, f), out, resumeFrom: { file, bytes, metadata } };
}

interface Point { iteration: number; loss: number; smoothed: number; seconds: number; [k: string]: unknown }

async function main(argv: string[]): Promise<number> {
  let s: Setup | null;
  try {
    s = setup(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (!s) { process.stdout.write(HELP); return 0; }
  const { cfg, out, resumeFrom } = s;
  if (!resumeFrom) for (const n of [CHECKPOINT, 'checkpoint.json', 'report.json']) rmSync(join(out, n), { force: true });   // --force
  await init({ backend: cfg.backend as 'wasm' | 'ref', threads: cfg.threads as number });
  console.log(`metagrad: ${cfg.algorithm} on ${cfg.dataset}, backend ${cfg.backend}; ${JSON.stringify({ ...cfg, cacheDir: undefined })}`);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const recipe = RECIPES.find((r) => cfg.algorithm in r.algorithms)!;
  const run = await recipe.build(cfg, log);

  let curve: Point[] = [], trainSeconds = 0, smoothed = NaN;
  if (resumeFrom) {
    const m = resumeFrom.metadata;
    try {
      const { tensors } = decodeCheckpoint(resumeFrom.bytes, resumeFrom.file);
      try { run.learner.load({ tensors, info: m.learner as LearnerState['info'] }); } finally { Object.values(tensors).forEach((t) => t.dispose()); }
      const streams = m.streams as Record<string, unknown>;
      for (const k of new Set([...Object.keys(streams), ...Object.keys(run.streams)])) {
        if (!(k in streams) || !run.streams[k]) throw new Error(`the sampler positions (${Object.keys(streams)}) do not match this run's samplers (${Object.keys(run.streams)})`);
        run.streams[k].setState(streams[k]);
      }
    } catch (e) {
      throw new Error(`${resumeFrom.file}: ${e instanceof Error ? e.message.replace(`${resumeFrom.file}: `, '') : e}`);
    }
    curve = m.curve as Point[];
    trainSeconds = m.trainSeconds as number;
    smoothed = (m.smoothed as number | null) ?? NaN;
    console.log(`resuming ${out} at iteration ${run.learner.iteration} of ${cfg.iterations}`);
  }

  // Where the cache is is this machine's business, not the run's: it is not recorded.
  const { cacheDir: _, ...recorded } = cfg;
  const checkpoint = async () => {
    const state = run.learner.state();
    await saveCheckpoint(join(out, CHECKPOINT), state.tensors, {
      format: FORMAT, config: recorded, iteration: run.learner.iteration, learner: state.info,
      streams: Object.fromEntries(Object.entries(run.streams).map(([k, st]) => [k, st.state()])), curve, trainSeconds, smoothed: Number.isNaN(smoothed) ? null : smoothed,
    });
  };
  const report = (extra: Record<string, unknown>) => {
    const r = { config: recorded, trainIterations: run.learner.iteration, trainSeconds, curve, ...run.reportExtras?.(recorded as Config), ...extra };
    writeFileSync(join(out, 'report.json'), JSON.stringify(r, null, 1));
  };

  // SIGINT / SIGTERM: the step in progress finishes, then the checkpoint and an interrupted report
  // are written; a second signal exits at once.
  let stop: NodeJS.Signals | null = null;
  const codes = { SIGINT: 130, SIGTERM: 143 } as Record<string, number>;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stop) process.exit(codes[sig]);
      stop = sig;
      log(`\n${sig}: finishing the current step, then saving ${join(out, CHECKPOINT)} (again to quit at once)`);
    });
  }
  const interrupted = async () => {
    report({ interrupted: true });
    log(`stopped at iteration ${run.learner.iteration}; wrote ${join(out, CHECKPOINT)} and report.json. Continue with: --resume ${out}`);
    return codes[stop!];
  };

  const total = cfg.iterations;
  const progress = new Progress(total, 'training', process.stderr, run.learner.iteration);
  let t0 = performance.now() - trainSeconds * 1000;
  const seconds = () => (performance.now() - t0) / 1000;
  const budget = cfg.minutes === null ? Infinity : cfg.minutes * 60;
  const sessionStart = trainSeconds;
  while (run.learner.iteration < total && seconds() - sessionStart < budget) {
    const l = await tidy(() => run.learner.step(run.nextBatch()));
    const i = run.learner.iteration;
    smoothed = Number.isNaN(smoothed) ? l : 0.98 * smoothed + 0.02 * l;
    if (i % 10 === 0 || i === total) {
      curve.push({ iteration: i, loss: l, smoothed, seconds: seconds(), ...run.learner.metrics?.() });
      progress.update(i, { loss: smoothed });
    }
    if (cfg.evalEvery > 0 && i % cfg.evalEvery === 0) {
      // Held-out score for the learning curve; its time is not counted in the training time.
      const e0 = performance.now();
      const r = await tidy(() => run.heldOut());
      curve.push({ iteration: i, loss: l, smoothed, seconds: (e0 - t0) / 1000, ...r.fields });
      progress.note(`${r.line} at ${i}`, performance.now() - e0);
      t0 += performance.now() - e0;
    }
    trainSeconds = seconds();
    await yieldToEventLoop();   // lets a signal in
    if (i % cfg.checkpointEvery === 0 || stop) await checkpoint();
    if (stop) return interrupted();
  }
  trainSeconds = seconds();
  await checkpoint();
  progress.done();

  const results: Record<string, unknown> = {};
  for await (const r of run.finish()) {
    console.log(r.line);
    Object.assign(results, r.fields);
    if (stop) return interrupted();
  }
  report(results);
  const files = (await run.files?.()) ?? {};
  for (const [name, text] of Object.entries(files)) writeFileSync(join(out, name), text);
  console.log(`trained ${run.learner.iteration} iterations in ${trainSeconds.toFixed(1)} s; wrote ${[CHECKPOINT, 'report.json', ...Object.keys(files)].map((n) => join(out, n)).join(', ')}`);
  run.dispose();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => { process.stderr.write(`error: ${e instanceof Error ? e.message : e}\n`); process.exit(1); },
);
