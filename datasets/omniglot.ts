// Omniglot (Lake et al. 2015) from the official zips, decoded once, resized, and cached. Classes are
// (character, rotation) pairs, as in the Vinyals et al. (2016) and MAML (Finn et al. 2017) set-ups.

import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Random } from '../engine/random.js';
import { decodePng, resizeArea } from './png.js';
import { ZipArchive } from './zip.js';
import type { ClassDataset } from './sampler.js';

export interface OmniglotOptions {
  /** Folder holding images_background.zip and images_evaluation.zip (and splits/vinyals/*.txt). */
  root: string;
  /** Side of the square images after resizing (28 in MAML and Prototypical Networks). */
  size?: number;
  /** Where the decoded arrays are cached; null disables the cache. Default ~/.cache/metagrad. */
  cacheDir?: string | null;
  /** Called while decoding (only when there is no cache yet). */
  onProgress?: (done: number, total: number) => void;
}

export type OmniglotSplit = 'train' | 'val' | 'trainval' | 'test';
const ZIPS = ['images_background.zip', 'images_evaluation.zip'];
const DRAWERS = 20;
const CACHE_MAGIC = 'metagrad-omniglot-v1\n';

export class Omniglot {
  private constructor(
    readonly root: string,
    readonly size: number,
    /** 'Alphabet/characterNN' for every character, background set first, each set in name order. */
    readonly characters: readonly string[],
    /** Stroke intensity 0..255 (255 = ink), [character, drawer, size, size]. */
    private readonly pixels: Uint8Array,
    /** How many of `characters` come from images_background. */
    readonly backgroundCount: number,
  ) {}

  static load(opts: OmniglotOptions): Omniglot {
    const size = opts.size ?? 28;
    for (const z of ZIPS) {
      if (!existsSync(join(opts.root, z))) {
        throw new Error(`Omniglot: ${join(opts.root, z)} not found (expected the official ${ZIPS.join(' and ')} in ${opts.root})`);
      }
    }
    const key = ZIPS.map((z) => statSync(join(opts.root, z)).size).join(',') + `;size=${size}`;
    const cacheDir = opts.cacheDir === undefined ? join(homedir(), '.cache', 'metagrad') : opts.cacheDir;
    const cacheFile = cacheDir && join(cacheDir, `omniglot-${size}.bin`);
    if (cacheFile && existsSync(cacheFile)) {
      const cached = readCache(cacheFile, key);
      if (cached) return new Omniglot(opts.root, size, cached.characters, cached.pixels, cached.backgroundCount);
    }
    const { characters, pixels, backgroundCount } = decodeAll(opts.root, size, opts.onProgress);
    if (cacheFile) writeCache(cacheDir!, cacheFile, key, characters, backgroundCount, pixels);
    return new Omniglot(opts.root, size, characters, pixels, backgroundCount);
  }

  /** Writes one image (character c, drawer d in 0..19) rotated by rot x 90 degrees counter-clockwise into out. */
  writeImage(c: number, d: number, rot: number, out: Float32Array, offset: number): void {
    const n = this.size, base = (c * DRAWERS + d) * n * n, px = this.pixels;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        // Source pixel of output (i, j) under a counter-clockwise rotation by rot quarter turns.
        const [si, sj] = rot === 0 ? [i, j] : rot === 1 ? [j, n - 1 - i] : rot === 2 ? [n - 1 - i, n - 1 - j] : [n - 1 - j, i];
        out[offset + i * n + j] = px[base + si * n + sj] / 255;
      }
    }
  }

  /**
   * The classes of a split. 'vinyals' reads splits/vinyals/<split>.txt (1028 train, 172 val, 423
   * test characters, x4 rotations). 'maml' takes 1200 characters for training (trainval) and the
   * other 423 for testing, chosen by a seeded shuffle, x4 rotations. 'background' is Lake's own
   * division, unrotated: the 964 images_background characters for training (train or trainval),
   * the 659 images_evaluation characters for testing (Lake's 20-way runs come from the latter).
   */
  split(split: OmniglotSplit, scheme: 'vinyals' | 'maml' | 'background' = 'vinyals', seed = 1): ClassDataset {
    const index = new Map(this.characters.map((c, i) => [c, i]));
    let classes: [number, number][];
    if (scheme === 'vinyals') {
      const file = join(this.root, 'splits', 'vinyals', `${split}.txt`);
      if (!existsSync(file)) throw new Error(`Omniglot: split file ${file} not found`);
      classes = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((line, n) => {
        const m = /^(.+\/character\d+)\/rot(\d{3})$/.exec(line.trim());
        const c = m && index.get(m[1]);
        if (!m || c === undefined) throw new Error(`${file}:${n + 1}: '${line}' names no Omniglot character`);
        return [c, Number(m[2]) / 90] as [number, number];
      });
    } else if (scheme === 'background') {
      if (split === 'val') throw new Error("Omniglot: the 'background' scheme has no validation split (use 'train' or 'test')");
      const [lo, hi] = split === 'test' ? [this.backgroundCount, this.characters.length] : [0, this.backgroundCount];
      classes = Array.from({ length: hi - lo }, (_, i) => [lo + i, 0] as [number, number]);
    } else {
      if (split === 'val') throw new Error("Omniglot: the 'maml' scheme has no validation split (use 'trainval' or 'test')");
      const order = new Random(seed).shuffle(this.characters.map((_, i) => i));
      const chars = split === 'test' ? order.slice(1200) : order.slice(0, 1200);
      classes = chars.sort((a, b) => a - b).flatMap((c) => [0, 1, 2, 3].map((r) => [c, r] as [number, number]));
    }
    const n = this.size;
    return {
      numClasses: classes.length,
      imageShape: [1, n, n],
      examplesOf: () => DRAWERS,
      className: (k) => `${this.characters[classes[k][0]]}/rot${String(classes[k][1] * 90).padStart(3, '0')}`,
      writeImage: (k, i, out, offset) => this.writeImage(classes[k][0], i, classes[k][1], out, offset),
    };
  }
}

function decodeAll(root: string, size: number, onProgress?: (done: number, total: number) => void) {
  const characters: string[] = [];
  const images: Uint8Array[] = [];
  let backgroundCount = 0;
  let done = 0;
  const archives = ZIPS.map((z) => new ZipArchive(join(root, z)));
  const total = archives.reduce((s, a) => s + a.files().filter((f) => f.endsWith('.png')).length, 0);
  archives.forEach((zip, zi) => {
    const byChar = new Map<string, string[]>();
    for (const f of zip.files()) {
      const m = /^[^/]+\/([^/]+\/character\d+)\/\d{4}_(\d{2})\.png$/.exec(f);
      if (!m) continue;
      if (!byChar.has(m[1])) byChar.set(m[1], []);
      byChar.get(m[1])!.push(f);
    }
    const chars = [...byChar.keys()].sort();
    for (const c of chars) {
      const files = byChar.get(c)!.sort();
      if (files.length !== DRAWERS) throw new Error(`${zip.path}: character ${c} has ${files.length} images, expected ${DRAWERS}`);
      const block = new Uint8Array(DRAWERS * size * size);
      files.forEach((f, d) => {
        const img = decodePng(zip.read(f), `${zip.path}:${f}`);
        const small = resizeArea(img, size, size);
        // PNG: 1 is background, 0 is ink; store ink as 255.
        for (let i = 0; i < small.length; i++) block[d * size * size + i] = Math.round((1 - small[i]) * 255);
        if (++done % 1000 === 0 || done === total) onProgress?.(done, total);
      });
      characters.push(c);
      images.push(block);
    }
    if (zi === 0) backgroundCount = characters.length;
  });
  if (characters.length === 0) throw new Error(`Omniglot: no character images found in ${root}`);
  const pixels = new Uint8Array(images.reduce((s, b) => s + b.length, 0));
  images.reduce((at, b) => { pixels.set(b, at); return at + b.length; }, 0);
  return { characters, pixels, backgroundCount };
}

function readCache(file: string, key: string) {
  try {
    const buf = readFileSync(file);
    if (buf.toString('utf8', 0, CACHE_MAGIC.length) !== CACHE_MAGIC) return null;
    const hlen = buf.readUInt32LE(CACHE_MAGIC.length);
    const header = JSON.parse(buf.toString('utf8', CACHE_MAGIC.length + 4, CACHE_MAGIC.length + 4 + hlen));
    if (header.key !== key) return null;
    const pixels = new Uint8Array(buf.buffer, buf.byteOffset + CACHE_MAGIC.length + 4 + hlen);
    if (pixels.length !== header.characters.length * DRAWERS * header.size * header.size) return null;
    return { characters: header.characters as string[], backgroundCount: header.backgroundCount as number, pixels };
  } catch {
    return null; // an unreadable cache is rebuilt, never trusted
  }
}

/** Written to a temporary file and renamed, so a crash never leaves a half-written cache. */
function writeCache(dir: string, file: string, key: string, characters: string[], backgroundCount: number, pixels: Uint8Array) {
  mkdirSync(dir, { recursive: true });
  const header = Buffer.from(JSON.stringify({ key, size: Math.sqrt(pixels.length / characters.length / DRAWERS), characters, backgroundCount }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(CACHE_MAGIC), len, header, pixels]));
  renameSync(tmp, file);
}
