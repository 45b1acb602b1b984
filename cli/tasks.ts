// The task sources the recipes share: sine regression and Omniglot episodes, with the seeds every
// run has used (so documented figures reproduce), and the checks of their flags.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Task } from '../algorithms/task.js';
import { ClassDataset, EpisodeSampler, Omniglot, SineTasks, episodeTensors } from '../datasets/index.js';
import type { OmniglotScheme } from '../datasets/index.js';
import type { Config, Stream } from './recipe.js';
import { UsageError } from './flags.js';
import type { FlagValues } from './flags.js';

export interface TaskSources {
  train: () => Task;
  test: () => Task;
  /** Held-out tasks for the learning curve (a stream of its own, saved in checkpoints). */
  curve: () => Task;
  /** Test tasks with another number of classes (--test-ways). */
  testWith?: (ways: number) => () => Task;
  streams: { train: Stream; curve: Stream; alsoCurve?: Stream };
  /** --also-test: the test classes of a second split, for the final evaluation and the curve. */
  also?: { split: string; test: () => Task; curve: () => Task };
  /** Omniglot's training and test classes (for learners that sample their own batches). */
  classes?: { train: ClassDataset; test: ClassDataset };
}

/** Episode shape flags shared by every task-based recipe, with the dataset's defaults. */
export function episodeConfig(f: FlagValues, base: Config): Config {
  const sine = base.dataset === 'sine';
  const shots = (f.shots as number) ?? (sine ? 10 : 1);
  const cfg = {
    ...base, split: (f.split as string) ?? 'vinyals', ways: (f.ways as number) ?? 5, shots,
    queries: (f.queries as number) ?? (sine ? shots : 15), ...(f['also-test'] !== undefined ? { alsoTest: f['also-test'] } : {}),
  };
  if (sine) for (const k of ['ways', 'split', 'data', 'also-test']) if (f[k] !== undefined) throw new UsageError(`--${k} is for --dataset omniglot`);
  if (!sine) checkOmniglotFolder(f);
  return cfg;
}

/** --data must hold the official zips (and the Vinyals split files for --split vinyals). */
export function checkOmniglotFolder(f: FlagValues): void {
  const dir = f.data as string | undefined;
  if (!dir) throw new UsageError('--dataset omniglot needs --data DIR (the folder with images_background.zip and images_evaluation.zip)');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--data ${dir}: no such folder`);
  const need = ['images_background.zip', 'images_evaluation.zip'];
  if ((f.split ?? 'vinyals') === 'vinyals' || f['also-test'] === 'vinyals') need.push(...['train', 'val', 'test'].map((s) => join('splits', 'vinyals', `${s}.txt`)));
  for (const n of need) if (!existsSync(join(dir, n))) throw new UsageError(`--data ${dir}: ${n} not found`);
}

/** --data must hold MNIST's (or Fashion-MNIST's) four files, each raw or gzipped. */
export function checkMnistFolder(dir: string): void {
  for (const n of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    if (!existsSync(join(dir, n)) && !existsSync(join(dir, `${n}.gz`))) throw new UsageError(`--data ${dir}: ${n}(.gz) not found`);
  }
}

export function loadOmniglot(cfg: Config, log: (line: string) => void, size?: number): Omniglot {
  return Omniglot.load({
    root: cfg.data as string, size, cacheDir: cfg.cacheDir as string | null | undefined,
    onProgress: (d, t) => process.stderr.write(`\rdecoding Omniglot ${d}/${t}${d === t ? '\n' : ''}`),
    onWarning: log,
  });
}

export function sineSources(cfg: Config): TaskSources {
  const o = { shots: cfg.shots as number, queries: cfg.queries as number };
  const train = new SineTasks({ ...o, seed: cfg.seed + 1 });
  const test = new SineTasks({ ...o, seed: cfg.seed + 1_000_003 });
  const curve = new SineTasks({ ...o, seed: cfg.seed + 2_000_003 });
  const one = (s: SineTasks): Task => { const b = s.batch(1); return { xs: b.xs.reshape([-1, 1]), ys: b.ys.reshape([-1, 1]), xq: b.xq.reshape([-1, 1]), yq: b.yq.reshape([-1, 1]) }; };
  return { train: () => one(train), test: () => one(test), curve: () => one(curve), streams: { train, curve } };
}

export function omniglotSources(cfg: Config, log: (line: string) => void): TaskSources {
  const omni = loadOmniglot(cfg, log);
  const split = cfg.split as OmniglotScheme;
  const trainSet = omni.split(split === 'maml' ? 'trainval' : 'train', split), testSet = omni.split('test', split);
  const o = { ways: cfg.ways as number, shots: cfg.shots as number, queries: cfg.queries as number };
  const train = new EpisodeSampler(trainSet, { ...o, ways: (cfg.trainWays as number | undefined) ?? o.ways, seed: cfg.seed + 1 });
  const test = new EpisodeSampler(testSet, { ...o, seed: cfg.seed + 1_000_003 });
  // The curve uses the validation classes, or the test classes under another seed where the split has none.
  const curve = new EpisodeSampler(split !== 'vinyals' ? testSet : omni.split('val', split), { ...o, seed: cfg.seed + 2_000_003 });
  // The second split's tasks are drawn with the seeds of the first's, from its own classes.
  const alsoSplit = cfg.alsoTest as OmniglotScheme | undefined;
  const alsoSet = alsoSplit && (alsoSplit === split ? testSet : omni.split('test', alsoSplit));
  const alsoTest = alsoSet && new EpisodeSampler(alsoSet, { ...o, seed: cfg.seed + 1_000_003 });
  const alsoCurve = alsoSet && new EpisodeSampler(alsoSet, { ...o, seed: cfg.seed + 2_000_003 });
  return {
    train: () => episodeTensors(train.next()), test: () => episodeTensors(test.next()), curve: () => episodeTensors(curve.next()),
    testWith: (ways) => { const s = new EpisodeSampler(testSet, { ...o, ways, seed: cfg.seed + 3_000_017 + ways }); return () => episodeTensors(s.next()); },
    also: alsoTest && alsoCurve ? { split: alsoSplit!, test: () => episodeTensors(alsoTest.next()), curve: () => episodeTensors(alsoCurve.next()) } : undefined,
    streams: { train, curve, ...(alsoCurve ? { alsoCurve } : {}) }, classes: { train: trainSet, test: testSet },
  };
}

export const taskSources = (cfg: Config, log: (line: string) => void): TaskSources =>
  (cfg.dataset === 'sine' ? sineSources(cfg) : omniglotSources(cfg, log));
