// The memory-based learners: the Neural Turing Machine on the copy task (Graves et al. 2014) and the
// LRU MANN on Omniglot label-delay episodes (Santoro et al. 2016), each trained by a SequenceTrainer
// (Adam, element-wise gradient clipping).

import { DEFAULT_KEY_STRENGTH, accuracyByInstance, initMANN, mann, mannLoss } from '../../algorithms/mann.js';
import { NTMTrace, SequenceTrainer, copyLoss, initNTM, ntm } from '../../algorithms/ntm.js';
import { Summary, formatSummary, summarize } from '../../algorithms/task.js';
import { CopyBatch, CopyTask, LabelDelayEpisodes, copyTensors, labelDelayInput } from '../../datasets/index.js';
import { argMax, slice } from '../../engine/ops.js';
import * as optim from '../../engine/optim.js';
import { Random } from '../../engine/random.js';
import { tidy } from '../../engine/runtime.js';
import type { Tensor } from '../../engine/tensor.js';
import { UsageError } from '../flags.js';
import type { FlagValues } from '../flags.js';
import type { Config, Recipe, Run } from '../recipe.js';
import { checkOmniglotFolder, loadOmniglot } from '../tasks.js';
import { startFrom } from '../init-from.js';

const ALGORITHMS = {
  ntm: 'Neural Turing Machine on the copy task (8-bit vectors, lengths 1..20)',
  mann: 'LRU memory-augmented network on Omniglot label-delay episodes',
};

export const memory: Recipe = {
  algorithms: ALGORITHMS,
  flags: {
    clip: { type: 'number', above: 0, arg: 'C', for: ['ntm', 'mann'], help: 'element-wise gradient clipping (default 10)' },
    instances: { type: 'int', min: 1, arg: 'K', for: ['mann'], help: 'instances of each class per episode (default 10)' },
    'image-size': { type: 'int', min: 4, max: 105, arg: 'S', for: ['mann'], help: 'Omniglot images resized to S x S (default 20, as in the paper)' },
    'key-strength': { type: 'string', arg: 'B', for: ['mann'], help: `initial value of each read head's learned key strength (default ${DEFAULT_KEY_STRENGTH}), or 'off' for none (beta = 1, Santoro et al.'s equation)` },
    'write-key': { type: 'bool', for: ['mann'], help: 'write the read key itself, as in Santoro et al.\'s equation, instead of a separate add vector' },
  },
  configure(f, base) {
    for (const k of ['shots', 'queries', 'split', 'test-ways', 'lake-runs', 'meta-lr-halve-every']) {
      if (f[k] !== undefined) throw new UsageError(`--${k} is not for --algorithm ${base.algorithm}`);
    }
    const common = {
      metaBatch: (f['meta-batch'] as number) ?? 16, metaLr: (f['meta-lr'] as number) ?? 1e-3, clip: (f.clip as number) ?? 10,
      iterations: (f.iterations as number) ?? 100_000, minutes: (f.minutes as number) ?? 20, initFrom: (f['init-from'] as string) ?? null,
    };
    if (base.algorithm === 'ntm') {
      if (f.dataset !== undefined || f.data !== undefined || f.ways !== undefined || f['eval-tasks'] !== undefined) throw new UsageError('--dataset, --data, --ways and --eval-tasks are not for --algorithm ntm (the copy task is generated)');
      return { ...base, dataset: 'copy', width: 8, minLength: 1, maxLength: 20, hidden: 100, rows: 128, memoryWidth: 20, ...common, evalEvery: (f['eval-every'] as number) ?? 100 };
    }
    if (base.dataset !== 'omniglot') throw new UsageError('--algorithm mann needs --dataset omniglot');
    checkOmniglotFolder(f);
    return {
      ...base, data: f.data, ways: (f.ways as number) ?? 5, instances: (f.instances as number) ?? 10, imageSize: (f['image-size'] as number) ?? 20,
      hidden: 200, rows: 128, memoryWidth: 40, heads: 4, decay: 0.95, keyStrength: keyStrength(f), writeKey: !!f['write-key'],
      ...common, evalEvery: (f['eval-every'] as number) ?? 200, evalTasks: (f['eval-tasks'] as number) ?? 1000,
    };
  },
  build: (cfg, log) => (cfg.algorithm === 'ntm' ? buildNTM(cfg) : buildMANN(cfg, log)),
};

/** --key-strength: a positive number, or 'off'. */
function keyStrength(f: FlagValues): number | false {
  const v = f['key-strength'] as string | undefined;
  if (v === 'off') return false;
  if (v === undefined) return DEFAULT_KEY_STRENGTH;
  const b = Number(v);
  if (!(Number.isFinite(b) && b > 0)) throw new UsageError(`--key-strength must be a positive number or 'off', got '${v}'`);
  return b;
}

async function buildNTM(cfg: Config): Promise<Run> {
  const model = { inputSize: (cfg.width as number) + 1, outputSize: cfg.width as number, hidden: cfg.hidden as number, rows: cfg.rows as number, width: cfg.memoryWidth as number };
  const from = await startFrom(cfg, initNTM(new Random(cfg.seed), model));
  const trainer = new SequenceTrainer(from.params, (p, b: { input: Tensor; target: Tensor }) => copyLoss(p, b.input, b.target), optim.adam({ lr: cfg.metaLr as number }), cfg.clip as number);
  trainer.iteration = from.start;
  const task = new CopyTask({ width: cfg.width as number, minLength: cfg.minLength as number, maxLength: cfg.maxLength as number, seed: cfg.seed + 1 + from.start });
  // Fixed held-out batches at lengths 10 and 20: cost in bits per sequence and wrong bits per sequence.
  const heldOut = [10, 20].map((L) => new CopyTask({ width: cfg.width as number, seed: cfg.seed + 1000 + L }).next(64, L));
  const score = (b: CopyBatch) => tidy(() => {
    const { input, target } = copyTensors(b);
    const logits = ntm(trainer.params, input);
    const z = slice(logits, [b.length + 1, 0, 0], [b.length, -1, -1]).dataSync(), y = target.dataSync();
    let bits = 0, wrong = 0;
    for (let k = 0; k < z.length; k++) {
      bits += (Math.max(z[k], 0) - z[k] * y[k] + Math.log1p(Math.exp(-Math.abs(z[k])))) / Math.LN2;
      if ((z[k] > 0 ? 1 : 0) !== y[k]) wrong++;
    }
    return { costBits: bits / b.batch, wrongBits: wrong / b.batch };
  });
  const evaluate = () => Object.fromEntries(heldOut.map((b) => [`length${b.length}`, score(b)]));
  const line = (r: Record<string, { costBits: number; wrongBits: number }>) => Object.entries(r).map(([k, v]) => `${k}: ${v.costBits.toFixed(2)} bits, ${v.wrongBits.toFixed(1)} wrong`).join('; ');
  return {
    learner: trainer,
    nextBatch: () => copyTensors(task.next(cfg.metaBatch as number)),
    streams: { train: task },
    heldOut: async () => { const r = evaluate(); return { line: `held-out ${line(r)}`, fields: r }; },
    async *finish() { const r = evaluate(); yield { line: `held-out: ${line(r)}`, fields: { final: r } }; },
    reportExtras: (config) => ({ config: { ...config, startIteration: from.start }, trainIterations: trainer.iteration - from.start }),
    files: async () => Object.fromEntries([20, 40].map((L) => [`copy-${L}.svg`, copyPicture(trainer.params, cfg, L)])),
    dispose: () => trainer.dispose(),
  };
}

/** A held-out sequence of length L copied: target, output, and the write and read weightings over time. */
function copyPicture(params: any, cfg: Config, L: number): string {
  const b = new CopyTask({ width: cfg.width as number, seed: cfg.seed + 77 }).next(1, L);
  const width = cfg.width as number;
  return tidy(() => {
    const { input } = copyTensors(b);
    const trace: NTMTrace = { read: [], write: [] };
    const y = slice(ntm(params, input, trace), [L + 1, 0, 0], [L, 1, -1]).sigmoid().dataSync();
    const rows = (data: ArrayLike<number>) => Array.from({ length: width }, (_, j) => Array.from({ length: L }, (_, t) => data[t * width + j]));
    const transpose = (m: number[][]) => m[0].map((_, j) => m.map((r) => r[j]));
    return bitMatrixSVG(`NTM copy, length ${L}${L > (cfg.maxLength as number) ? ' (longer than in training)' : ''}`, [
      { label: 'target (input bits)', m: rows(b.target) },
      { label: 'output (sigmoid)', m: rows(y) },
      { label: 'write weights (rows x time)', m: transpose(trace.write.map((w) => Array.from(w.dataSync()))) },
      { label: 'read weights (rows x time)', m: transpose(trace.read.map((w) => Array.from(w.dataSync()))) },
    ]);
  });
}

async function buildMANN(cfg: Config, log: (line: string) => void): Promise<Run> {
  const omni = loadOmniglot(cfg, log, cfg.imageSize as number);
  const ways = cfg.ways as number, instances = cfg.instances as number, batch = cfg.metaBatch as number;
  const size = cfg.imageSize as number;
  const model = { inputSize: size * size + ways, ways, hidden: cfg.hidden as number, rows: cfg.rows as number, width: cfg.memoryWidth as number, heads: cfg.heads as number, decay: cfg.decay as number, keyStrength: cfg.keyStrength as number | false, writeKey: cfg.writeKey as boolean };
  const from = await startFrom(cfg, initMANN(new Random(cfg.seed), model));
  const trainer = new SequenceTrainer(from.params, (p, b: { x: Tensor; labels: Int32Array }) => mannLoss(p, b.x, b.labels, model), optim.adam({ lr: cfg.metaLr as number }), cfg.clip as number);
  trainer.iteration = from.start;
  const o = { ways, instances };
  const train = new LabelDelayEpisodes(omni.split('train'), { ...o, seed: cfg.seed + 1 + from.start });
  /** Accuracy by instance number over n episodes: mean ± 95% CI over episodes, per instance. */
  const byInstance = async (source: LabelDelayEpisodes, n: number): Promise<Summary[]> => {
    const perEpisode: number[][] = Array.from({ length: instances }, () => []);
    for (let done = 0; done < n; done += batch) {
      const e = source.next(Math.min(batch, n - done));
      const pred = await tidy(async () => argMax(mann(trainer.params, labelDelayInput(e), model)));
      for (let b = 0; b < e.batch; b++) {
        const idx = Array.from({ length: e.steps }, (_, t) => t * e.batch + b);
        const acc = accuracyByInstance(idx.map((i) => pred[i]), idx.map((i) => e.labels[i]), idx.map((i) => e.instance[i]), instances);
        acc.correct.forEach((c, k) => perEpisode[k].push(c / acc.total[k]));
      }
    }
    return perEpisode.map(summarize);
  };
  const fmt = (s: Summary[]) => s.map((x, k) => `${k + 1}: ${(100 * x.mean).toFixed(1)}`).join(', ');
  return {
    learner: trainer,
    nextBatch: () => { const e = train.next(batch); return { x: labelDelayInput(e), labels: e.labels }; },
    streams: { train },
    async heldOut() {
      const r = await byInstance(new LabelDelayEpisodes(omni.split('val'), { ...o, seed: cfg.seed + 2_000_003 }), 160);
      return { line: `validation accuracy by instance: ${fmt(r)}`, fields: { valAccuracyByInstance: r.map((x) => x.mean) } };
    },
    async *finish() {
      const test = await byInstance(new LabelDelayEpisodes(omni.split('test'), { ...o, seed: cfg.seed + 1_000_003 }), cfg.evalTasks as number);
      const lines = test.map((s, k) => `  instance ${k + 1}: ${formatSummary(s, 100, 1)}`);
      yield { line: `test accuracy by instance over ${cfg.evalTasks} episodes (% ± 95% CI):\n${lines.join('\n')}`, fields: { testAccuracyByInstance: test } };
    },
    reportExtras: (config) => ({ config: { ...config, startIteration: from.start }, trainIterations: trainer.iteration - from.start }),
    dispose: () => trainer.dispose(),
  };
}

/** Panels of matrices in [0, 1] drawn as grey cells (black = 1), one panel under another. */
function bitMatrixSVG(title: string, panels: { label: string; m: number[][] }[]): string {
  const cols = Math.max(...panels.map((p) => p.m[0].length));
  const cell = Math.max(4, Math.min(16, Math.floor(720 / cols)));
  const W = 200 + cols * cell + 20;
  const parts: string[] = [];
  let y = 36;
  for (const p of panels) {
    const c = p.m.length > 32 ? Math.max(2, Math.floor(cell / 3)) : cell; // tall weight panels get short rows
    parts.push(`<text x="8" y="${y + 12}">${p.label}</text>`);
    p.m.forEach((row, i) => row.forEach((v, t) => {
      const g = Math.round(255 * (1 - Math.min(Math.max(v, 0), 1)));
      parts.push(`<rect x="${200 + t * cell}" y="${y + i * c}" width="${cell}" height="${c}" fill="rgb(${g},${g},${g})"/>`);
    }));
    y += p.m.length * c + 20;
  }
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${y}" fill="white"/>`, `<text x="8" y="20" font-size="14">${title}</text>`, ...parts, '</svg>'].join('\n');
}
