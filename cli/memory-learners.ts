#!/usr/bin/env node
// Trains the memory-based learners: the Neural Turing Machine on the copy task (Graves et al. 2014)
// or the LRU MANN on Omniglot label-delay episodes (Santoro et al. 2016). Writes report.json (config,
// learning curve, final figures), a checkpoint, and for the NTM an SVG of a copied sequence.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { init, optim, tidy, argMax, Random, Tensor, slice } from '../index.js';
import { initNTM, ntm, copyLoss, initMANN, mann, mannLoss, DEFAULT_KEY_STRENGTH, accuracyByInstance, SequenceTrainer, summarize, formatSummary, Summary, NTMTrace } from '../algorithms/index.js';
import { CopyTask, copyTensors, Omniglot, LabelDelayEpisodes, labelDelayInput } from '../datasets/index.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { treeLeaves } from '../engine/pytree.js';
import { Progress } from './progress.js';

const HELP = `Usage: node dist/cli/memory-learners.js --algorithm ntm|mann [options]

  --algorithm NAME   ntm: Neural Turing Machine on the copy task (8-bit vectors, lengths 1..20)
                     mann: LRU memory-augmented network on Omniglot label-delay episodes
  --data DIR         (mann) folder with Omniglot's zips and splits/vinyals/*.txt
  --iterations N     optimiser steps (default 100000; the run also stops at --minutes)
  --minutes M        wall-clock budget for training (default 20)
  --batch B          sequences or episodes per step (default 16)
  --lr A             Adam step size (default 1e-3 ntm, 1e-3 mann)
  --clip C           element-wise gradient clipping (default 10)
  --eval-every N     held-out evaluation every N steps (default 100 ntm, 200 mann)
  --ways N           (mann) classes per episode (default 5)
  --instances K      (mann) instances of each class per episode (default 10)
  --image-size S     (mann) Omniglot images resized to S x S (default 20, as in the paper)
  --test-episodes N  (mann) test episodes for the final accuracy by instance (default 1000)
  --init-from FILE   start from a checkpoint.json of an earlier run (fresh optimiser state; the
                     curve's iterations continue from the checkpoint's)
  --key-strength B   (mann) initial value of each read head's learned key strength (default ${DEFAULT_KEY_STRENGTH}),
                     or 'off' for none (beta = 1, Santoro et al.'s equation)
  --write-key        (mann) write the read key itself, as in Santoro et al.'s equation, instead of
                     a separate add vector
  --seed S           (default 0)
  --out DIR          (default runs/ntm-copy or runs/mann-omniglot)
`;

const args = parseArgs({
  options: {
    algorithm: { type: 'string' }, data: { type: 'string' }, iterations: { type: 'string' }, minutes: { type: 'string' },
    batch: { type: 'string' }, lr: { type: 'string' }, clip: { type: 'string' }, 'eval-every': { type: 'string' },
    ways: { type: 'string' }, instances: { type: 'string' }, 'image-size': { type: 'string' }, 'test-episodes': { type: 'string' },
    seed: { type: 'string' }, 'init-from': { type: 'string' }, 'key-strength': { type: 'string' }, 'write-key': { type: 'boolean' }, out: { type: 'string' }, help: { type: 'boolean' },
  },
}).values;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n(see --help)\n`);
  process.exit(2);
}
function num(name: keyof typeof args, dflt: number): number {
  const v = args[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name} must be a number, got '${v}'`);
  return n;
}

/** --key-strength: a positive number, or 'off'. */
function keyStrength(): number | false {
  if (args['key-strength'] === 'off') return false;
  const b = num('key-strength', DEFAULT_KEY_STRENGTH);
  if (!(b > 0)) fail(`--key-strength must be a positive number or 'off', got '${args['key-strength']}'`);
  return b;
}

/** The initial parameters, or those of --init-from (then also the iteration it had reached). */
function startFrom<P>(fresh: P): { params: P; start: number } {
  const file = args['init-from'];
  if (!file) return { params: fresh, start: 0 };
  const { tree, meta } = loadCheckpoint(file, fresh);
  treeLeaves(fresh).forEach((t) => t.dispose());
  console.log(`starting from ${file} (iteration ${meta.iteration})`);
  return { params: tree, start: Number(meta.iteration ?? 0) };
}

interface Point { iteration: number; seconds: number; loss: number; [k: string]: unknown }

/** Trains until the iteration or time budget runs out; evaluation time is not counted. */
async function trainLoop(iterations: number, minutes: number, evalEvery: number, step: (i: number) => Promise<number>,
  evaluate: (i: number) => Promise<Record<string, unknown>>, start = 0): Promise<{ curve: Point[]; iterations: number; seconds: number }> {
  const curve: Point[] = [];
  const progress = new Progress(iterations, 'training');
  let t0 = performance.now(), avg = NaN, i = 0;
  const at = (k: number) => start + k;
  const elapsed = () => (performance.now() - t0) / 1000;
  while (i < iterations && elapsed() < minutes * 60) {
    i++;
    const l = await step(i);
    avg = Number.isNaN(avg) ? l : 0.98 * avg + 0.02 * l;
    if (i % 10 === 0) { curve.push({ iteration: at(i), seconds: elapsed(), loss: avg }); progress.update(i, { loss: avg }); }
    if (evalEvery > 0 && i % evalEvery === 0) {
      const e0 = performance.now();
      const r = await evaluate(at(i));
      curve.push({ iteration: at(i), seconds: (e0 - t0) / 1000, loss: avg, ...r });
      progress.note(`held-out at ${at(i)}: ${JSON.stringify(r)}`, performance.now() - e0);
      t0 += performance.now() - e0;
    }
  }
  return { curve, iterations: i, seconds: elapsed() };
}

async function runNTM(out: string) {
  const cfg = {
    algorithm: 'ntm', width: 8, minLength: 1, maxLength: 20, hidden: 100, rows: 128, memoryWidth: 20,
    batch: num('batch', 16), lr: num('lr', 1e-3), clip: num('clip', 10), iterations: num('iterations', 100000),
    minutes: num('minutes', 20), evalEvery: num('eval-every', 100), seed: num('seed', 0),
  };
  console.log(`metagrad: NTM on the copy task; ${JSON.stringify(cfg)}`);
  const model = { inputSize: cfg.width + 1, outputSize: cfg.width, hidden: cfg.hidden, rows: cfg.rows, width: cfg.memoryWidth };
  const from = startFrom(initNTM(new Random(cfg.seed), model));
  const trainer = new SequenceTrainer(from.params, copyLoss, optim.adam({ lr: cfg.lr }), cfg.clip);
  const task = new CopyTask({ width: cfg.width, minLength: cfg.minLength, maxLength: cfg.maxLength, seed: cfg.seed + 1 + from.start });
  // Fixed held-out batches at lengths 10 and 20: cost in bits per sequence and wrong bits per sequence.
  const heldOut = [10, 20].map((L) => new CopyTask({ width: cfg.width, seed: cfg.seed + 1000 + L }).next(64, L));
  const score = (b: ReturnType<CopyTask['next']>) => tidy(() => {
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
  const evaluate = async () => Object.fromEntries(heldOut.map((b) => [`length${b.length}`, score(b)]));
  const run = await trainLoop(cfg.iterations, cfg.minutes, cfg.evalEvery,
    () => tidy(() => { const { input, target } = copyTensors(task.next(cfg.batch)); return trainer.step(input, target); }), evaluate, from.start);
  const final = await evaluate();
  console.log(`trained ${run.iterations} steps (${run.iterations * cfg.batch} sequences) in ${run.seconds.toFixed(0)} s; held-out: ${JSON.stringify(final)}`);
  await saveCheckpoint(join(out, 'checkpoint.json'), trainer.params, { iteration: from.start + run.iterations, config: { ...cfg, initFrom: args['init-from'] ?? null } });
  writeFileSync(join(out, 'report.json'), JSON.stringify({ config: { ...cfg, initFrom: args['init-from'] ?? null, startIteration: from.start }, trainIterations: run.iterations, trainSeconds: run.seconds, final, curve: run.curve }, null, 1));
  // Pictures: one held-out sequence of length 20 and one of 40 (longer than any seen in training).
  for (const L of [20, 40]) {
    const b = new CopyTask({ width: cfg.width, seed: cfg.seed + 77 }).next(1, L);
    const svg = tidy(() => {
      const { input } = copyTensors(b);
      const trace: NTMTrace = { read: [], write: [] };
      const y = slice(ntm(trainer.params, input, trace), [L + 1, 0, 0], [L, 1, -1]).sigmoid().dataSync();
      const rows = (data: ArrayLike<number>, steps: number, w: number, stride: number, at: (t: number) => number) =>
        Array.from({ length: w }, (_, j) => Array.from({ length: steps }, (_, t) => data[at(t) * stride + j]));
      const wr = trace.read.map((w) => Array.from(w.dataSync())), ww = trace.write.map((w) => Array.from(w.dataSync()));
      const transpose = (m: number[][]) => m[0].map((_, j) => m.map((r) => r[j]));
      return bitMatrixSVG(`NTM copy, length ${L}${L > cfg.maxLength ? ' (longer than in training)' : ''}`, [
        { label: 'target (input bits)', m: rows(b.target, L, cfg.width, cfg.width, (t) => t) },
        { label: 'output (sigmoid)', m: rows(y, L, cfg.width, cfg.width, (t) => t) },
        { label: 'write weights (rows x time)', m: transpose(ww) },
        { label: 'read weights (rows x time)', m: transpose(wr) },
      ]);
    });
    writeFileSync(join(out, `copy-${L}.svg`), svg);
  }
  trainer.dispose();
  console.log(`wrote ${out}/report.json, checkpoint.json, copy-20.svg, copy-40.svg`);
}

async function runMANN(out: string) {
  if (!args.data) fail('--algorithm mann needs --data DIR (the folder with images_background.zip, images_evaluation.zip and splits/)');
  const cfg = {
    algorithm: 'mann', ways: num('ways', 5), instances: num('instances', 10), imageSize: num('image-size', 20),
    hidden: 200, rows: 128, memoryWidth: 40, heads: 4, decay: 0.95, keyStrength: keyStrength(), writeKey: !!args['write-key'],
    batch: num('batch', 16), lr: num('lr', 1e-3), clip: num('clip', 10), iterations: num('iterations', 100000),
    minutes: num('minutes', 20), evalEvery: num('eval-every', 200), testEpisodes: num('test-episodes', 1000), seed: num('seed', 0),
  };
  console.log(`metagrad: MANN (LRU) on Omniglot label-delay episodes; ${JSON.stringify(cfg)}`);
  const omni = Omniglot.load({ root: args.data, size: cfg.imageSize });
  const pixels = cfg.imageSize * cfg.imageSize;
  const model = { inputSize: pixels + cfg.ways, ways: cfg.ways, hidden: cfg.hidden, rows: cfg.rows, width: cfg.memoryWidth, heads: cfg.heads, decay: cfg.decay, keyStrength: cfg.keyStrength, writeKey: cfg.writeKey };
  const from = startFrom(initMANN(new Random(cfg.seed), model));
  const trainer = new SequenceTrainer(from.params, (p, x: Tensor, y: Int32Array) => mannLoss(p, x, y, model), optim.adam({ lr: cfg.lr }), cfg.clip);
  const o = { ways: cfg.ways, instances: cfg.instances };
  const train = new LabelDelayEpisodes(omni.split('train'), { ...o, seed: cfg.seed + 1 + from.start });
  /** Accuracy by instance number over n episodes: mean ± 95% CI over episodes, per instance. */
  const byInstance = async (source: LabelDelayEpisodes, n: number): Promise<Summary[]> => {
    const perEpisode: number[][] = Array.from({ length: cfg.instances }, () => []);
    for (let done = 0; done < n; done += cfg.batch) {
      const e = source.next(Math.min(cfg.batch, n - done));
      const pred = await tidy(async () => argMax(mann(trainer.params, labelDelayInput(e), model)));
      for (let b = 0; b < e.batch; b++) {
        const idx = Array.from({ length: e.steps }, (_, t) => t * e.batch + b);
        const acc = accuracyByInstance(idx.map((i) => pred[i]), idx.map((i) => e.labels[i]), idx.map((i) => e.instance[i]), cfg.instances);
        acc.correct.forEach((c, k) => perEpisode[k].push(c / acc.total[k]));
      }
    }
    return perEpisode.map(summarize);
  };
  const fmt = (s: Summary[]) => s.map((x, k) => `${k + 1}: ${(100 * x.mean).toFixed(1)}`).join(', ');
  const evaluate = async (i: number) => {
    const r = await byInstance(new LabelDelayEpisodes(omni.split('val'), { ...o, seed: cfg.seed + 2_000_003 }), 160);
    return { valAccuracyByInstance: r.map((x) => x.mean), note: `iteration ${i}: ${fmt(r)}` };
  };
  const run = await trainLoop(cfg.iterations, cfg.minutes, cfg.evalEvery,
    () => tidy(() => { const e = train.next(cfg.batch); return trainer.step(labelDelayInput(e), e.labels); }), evaluate, from.start);
  await saveCheckpoint(join(out, 'checkpoint.json'), trainer.params, { iteration: from.start + run.iterations, config: { ...cfg, initFrom: args['init-from'] ?? null } });
  const test = await byInstance(new LabelDelayEpisodes(omni.split('test'), { ...o, seed: cfg.seed + 1_000_003 }), cfg.testEpisodes);
  console.log(`trained ${run.iterations} steps (${run.iterations * cfg.batch} episodes) in ${run.seconds.toFixed(0)} s`);
  console.log(`test accuracy by instance over ${cfg.testEpisodes} episodes (% ± 95% CI):`);
  test.forEach((s, k) => console.log(`  instance ${k + 1}: ${formatSummary(s, 100, 1)}`));
  writeFileSync(join(out, 'report.json'), JSON.stringify({ config: { ...cfg, initFrom: args['init-from'] ?? null, startIteration: from.start }, trainIterations: run.iterations, trainSeconds: run.seconds, testAccuracyByInstance: test, curve: run.curve }, null, 1));
  trainer.dispose();
  console.log(`wrote ${out}/report.json, checkpoint.json`);
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

async function main() {
  if (args.help) { process.stdout.write(HELP); return; }
  const algorithm = args.algorithm;
  if (algorithm !== 'ntm' && algorithm !== 'mann') fail(`--algorithm must be ntm or mann, got '${algorithm ?? ''}'`);
  const out = args.out ?? join('runs', algorithm === 'ntm' ? 'ntm-copy' : 'mann-omniglot');
  mkdirSync(out, { recursive: true });
  await init({ backend: 'wasm' });
  if (algorithm === 'ntm') await runNTM(out);
  else await runMANN(out);
}

main().catch((e) => { console.error(e); process.exit(1); });
