// Lake et al.'s (2015) original 20-way one-shot classification benchmark, from all_runs.zip: 20
// runs, each with one training image per class (training/classKK.png), 20 test images
// (test/itemMM.png) and class_labels.txt pairing every test image with its class's training image.
// Images get the same preprocessing as the Omniglot loader (area resize, ink = 1, quantised to 8
// bits), so a model trained on `Omniglot` sees these runs exactly as it sees Omniglot images.

import { decodePng, resizeArea } from './png.js';
import type { Episode } from './sampler.js';
import { ZipArchive } from './zip.js';

/** One run as an episode: support = the 20 training images (label k-1 for classKK), query = the 20 test images. */
export interface LakeRun extends Episode {
  /** 'run01' ... 'run20'. */
  name: string;
  /** Archive paths of the support and query images, in label / item order. */
  supportFiles: string[];
  queryFiles: string[];
}

export interface LakeRunsOptions {
  /** Side of the square images after resizing (28, as the Omniglot loader's default). */
  size?: number;
}

const RUNS = 20, WAYS = 20;
const pad2 = (n: number) => String(n).padStart(2, '0');

/** Reads every run of all_runs.zip at `path`; errors name the archive and the entry at fault. */
export function loadLakeRuns(path: string, opts: LakeRunsOptions = {}): LakeRun[] {
  const size = opts.size ?? 28, per = size * size;
  const zip = new ZipArchive(path);
  const fail = (msg: string): never => { throw new Error(`Lake runs: ${path}: ${msg}`); };
  // Same preprocessing as datasets/omniglot.ts: PNG 1 = background, 0 = ink; ink stored as 0..255.
  const writeImage = (entry: string, out: Float32Array, offset: number) => {
    if (!zip.entries.has(entry)) fail(`has no entry '${entry}'`);
    const small = resizeArea(decodePng(zip.read(entry), `${path}:${entry}`), size, size);
    for (let i = 0; i < per; i++) out[offset + i] = Math.round((1 - small[i]) * 255) / 255;
  };
  const runs: LakeRun[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const name = `run${pad2(r)}`, labelsFile = `${name}/class_labels.txt`;
    if (!zip.entries.has(labelsFile)) fail(`has no entry '${labelsFile}' (expected Lake's all_runs.zip with run01..run${pad2(RUNS)})`);
    const supportFiles = Array.from({ length: WAYS }, (_, k) => `${name}/training/class${pad2(k + 1)}.png`);
    const lines = zip.read(labelsFile).toString('utf8').split(/\r?\n/).filter((l) => l.trim());
    if (lines.length !== WAYS) fail(`${labelsFile} has ${lines.length} lines, expected ${WAYS}`);
    const queryFiles: string[] = [], queryLabels = new Int32Array(WAYS);
    lines.forEach((line, i) => {
      const m = /^(\S+\/test\/item\d+\.png)\s+(\S+\/training\/class(\d+)\.png)$/.exec(line.trim());
      if (!m) fail(`${labelsFile}:${i + 1}: '${line}' is not '<test image> <training image>'`);
      const label = supportFiles.indexOf(m![2]);
      if (label < 0 || Number(m![3]) - 1 !== label) fail(`${labelsFile}:${i + 1}: '${m![2]}' is not a training image of ${name}`);
      queryFiles.push(m![1]);
      queryLabels[i] = label;
    });
    const support = new Float32Array(WAYS * per), query = new Float32Array(WAYS * per);
    supportFiles.forEach((f, k) => writeImage(f, support, k * per));
    queryFiles.forEach((f, i) => writeImage(f, query, i * per));
    runs.push({
      name, supportFiles, queryFiles, support, query, queryLabels,
      supportLabels: Int32Array.from({ length: WAYS }, (_, k) => k),
      classes: Array.from({ length: WAYS }, (_, k) => k),
      imageShape: [1, size, size],
    });
  }
  return runs;
}
