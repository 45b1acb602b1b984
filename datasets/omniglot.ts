// Omniglot (Lake et al. 2015) from the official zips, decoded once, resized, and cached. Classes are
// (character, rotation) pairs, as in the Vinyals et al. (2016) and MAML (Finn et al. 2017) set-ups.

import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { Random } from '../engine/random.js';
import { decodePng, resizeArea } from './png.js';
import { ZipArchive } from './zip.js';
import type { ClassDataset } from './sampler.js';

export interface OmniglotOptions {
  /** Folder holding images_background.zip and images_evaluation.zip (and splits/vinyals/*.txt). */
  root: string;
  /** Side of the square images after resizing (28 in MAML and Prototypical Networks). */
  size?: number;
  /**
   * Where the decoded arrays are cached; null disables the cache. Default `defaultCacheDir()`
   * ($XDG_CACHE_HOME/metagrad, else ~/.cache/metagrad). A leading '~/' is expanded. A folder that
   * cannot be created or written gives one warning (through onWarning) and an uncached load.
   */
  cacheDir?: string | null;
  /** Called while decoding (only when there is no cache yet). */
  onProgress?: (done: number, total: number) => void;
  /**
   * One-line warnings: a cache folder that cannot be written, an archive or split file whose
   * SHA-256 is not a known one (see OMNIGLOT_SHA256). Default: written to stderr.
   */
  onWarning?: (message: string) => void;
}

export type OmniglotSplit = 'train' | 'val' | 'trainval' | 'test';
/** How the characters are divided into splits (see Omniglot.split). */
export type OmniglotScheme = 'vinyals' | 'maml' | 'background' | 'family-a' | 'family-b';
const ZIPS = ['images_background.zip', 'images_evaluation.zip'];
const DRAWERS = 20;
/** Bumped whenever the cache layout or the decoding changes: it is part of the magic, the file name and the key. */
const CACHE_FORMAT = 2;
const CACHE_MAGIC = `metagrad-omniglot-v${CACHE_FORMAT}\n`;

/**
 * SHA-256 of the Omniglot files this loader knows, by path relative to the Omniglot root; any listed
 * value is accepted. Omniglot.load checks the two image archives (a mismatch is a warning: a re-packed
 * archive with the right pixels still works, and a corrupt one fails in decoding with an error naming
 * it); split('...', 'vinyals') checks its split file, once per file (also a warning).
 *
 * - images_background.zip, images_evaluation.zip: first the official brendenlake/omniglot
 *   python/images_*.zip (9,464,212 and 6,462,886 bytes), as recorded by TensorFlow Datasets in
 *   tensorflow_datasets/url_checksums/omniglot.txt (the same file's values for images_background_small1/2
 *   match the original copies in ../shared/data byte for byte). torchvision checks the same official
 *   archives by MD5: 68d2efa1b9178cc56df9314c21c6e718 (background), 6b91aef0f799c5bb55b94e3f2daec811
 *   (evaluation). Second, the rebuilt archives in ../shared/data/omniglot (8,222,984 and 5,617,360
 *   bytes): every pixel equals the official data, but the PNG and zip bytes differ (see
 *   ../shared/data/README.md).
 * - images_background_small1.zip, images_background_small2.zip, one-shot-classification all_runs.zip:
 *   the official brendenlake/omniglot files (byte-identical copies in ../shared/data/omniglot).
 * - splits/vinyals/*.txt: the Vinyals et al. (2016) split files of jakesnell/prototypical-networks
 *   (data/omniglot/splits/vinyals/, commit c9bb4d2), byte-identical copies in ../shared/data/omniglot.
 */
export const OMNIGLOT_SHA256: Readonly<Record<string, readonly string[]>> = {
  'images_background.zip': [
    'ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640', // official
    '0d661860242a19ac289d0f7ae30b6424c94447b0c8331297c972fc65acbd2da0', // rebuilt, pixel-identical
  ],
  'images_evaluation.zip': [
    '1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee', // official
    'fe5b0637ca0e54d4118ead26a456c69d9ffdcea942d45b6b11a41e53fc4f91f4', // rebuilt, pixel-identical
  ],
  'images_background_small1.zip': ['f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4'],
  'images_background_small2.zip': ['3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f'],
  'all_runs.zip': ['437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325'],
  'splits/vinyals/train.txt': ['984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0'],
  'splits/vinyals/val.txt': ['11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a'],
  'splits/vinyals/trainval.txt': ['5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a'],
  'splits/vinyals/test.txt': ['845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204'],
};

/** The user's home folder, or null when there is none (HOME empty, or unset with no passwd entry). */
function home(): string | null {
  try {
    const h = homedir();
    return h && isAbsolute(h) ? h : null;
  } catch {
    return null;
  }
}

/**
 * The default cache folder: $XDG_CACHE_HOME/metagrad when XDG_CACHE_HOME is set (to an absolute
 * path, as the XDG base-directory spec requires; other values are ignored), else ~/.cache/metagrad.
 * With no home folder at all it returns the unexpanded '~/.cache/metagrad', which Omniglot.load
 * reports (one warning) and runs uncached.
 */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'metagrad');
  const h = home();
  return h ? join(h, '.cache', 'metagrad') : '~/.cache/metagrad';
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const defaultWarning = (m: string) => { process.stderr.write(m + '\n'); };
const cannotWrite = (dir: string, reason: string) =>
  `metagrad: cannot write the Omniglot cache in ${dir} (${reason}); running uncached (use --cache-dir DIR or --no-cache)`;

/** Creates the cache folder if needed and checks it is writable: null when it is, else the reason. */
function prepareCacheDir(dir: string): string | null {
  if (dir === '~' || dir.startsWith('~/')) return 'no home directory';
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return null;
  } catch (e: any) {
    return e.code ?? e.message;
  }
}

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
    private readonly warn: (message: string) => void,
  ) {}

  /** Split files already checked against OMNIGLOT_SHA256 (each is checked, and warned about, once). */
  private readonly checkedSplits = new Set<string>();

  /**
   * Loads Omniglot from the zips in opts.root, from the cache when it holds the decoded arrays of
   * exactly these archives: the cache key is a SHA-256 over both archives' contents, the image size
   * and the cache format, so a changed archive (even one of the same size) is decoded again, never
   * served from the cache. Archives whose SHA-256 is not in OMNIGLOT_SHA256 give a warning and are
   * decoded anyway (a corrupt one fails with an error naming it). A cache folder that cannot be
   * created or written gives one warning, before any decoding, and the load runs uncached.
   */
  static load(opts: OmniglotOptions): Omniglot {
    const size = opts.size ?? 28;
    const warn = opts.onWarning ?? defaultWarning;
    const digests = ZIPS.map((z) => {
      const path = join(opts.root, z);
      if (!existsSync(path)) {
        throw new Error(`Omniglot: ${path} not found (expected the official ${ZIPS.join(' and ')} in ${opts.root})`);
      }
      let data: Buffer;
      try {
        data = readFileSync(path);
      } catch (e: any) {
        throw new Error(`${path}: cannot read the archive (${e.code ?? e.message})`);
      }
      const digest = sha256(data);
      const known = OMNIGLOT_SHA256[z];
      if (!known.includes(digest)) {
        warn(`metagrad: ${path} has SHA-256 ${digest}, expected ${known[0]} (the official brendenlake/omniglot ${z}) ` +
          `or ${known[1]} (its pixel-identical rebuild); decoding it anyway`);
      }
      return digest;
    });
    const key = sha256(`metagrad-omniglot cache format ${CACHE_FORMAT}; size ${size}; ` + ZIPS.map((z, i) => `${z} ${digests[i]}`).join('; '));
    let cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
    const h = home();
    if (cacheDir && h && (cacheDir === '~' || cacheDir.startsWith('~/'))) cacheDir = join(h, cacheDir.slice(1));
    let cacheFile = cacheDir ? join(cacheDir, `omniglot-${size}.v${CACHE_FORMAT}.bin`) : null;
    if (cacheFile && existsSync(cacheFile)) {
      const cached = readCache(cacheFile, key, size);
      if (cached) return new Omniglot(opts.root, size, cached.characters, cached.pixels, cached.backgroundCount, warn);
    }
    // Before decoding, so that the warning comes first and a doomed cache costs no decoding time twice.
    const problem = cacheDir ? prepareCacheDir(cacheDir) : null;
    if (problem) {
      warn(cannotWrite(cacheDir!, problem));
      cacheFile = null;
    }
    const { characters, pixels, backgroundCount } = decodeAll(opts.root, size, opts.onProgress);
    if (cacheFile) {
      try {
        writeCache(cacheFile, key, size, characters, backgroundCount, pixels);
      } catch (e: any) {
        warn(cannotWrite(cacheDir!, e.code ?? e.message));
      }
    }
    return new Omniglot(opts.root, size, characters, pixels, backgroundCount, warn);
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
   * 'family-a' and 'family-b' are two task families for sequential meta-training: the first and the
   * last 15 of images_background's 30 alphabets (in name order), unrotated; in each alphabet every
   * fourth character (the 4th, 8th, ...) is held out for testing, the others train.
   */
  split(split: OmniglotSplit, scheme: OmniglotScheme = 'vinyals', seed = 1): ClassDataset {
    const index = new Map(this.characters.map((c, i) => [c, i]));
    let classes: [number, number][];
    if (scheme === 'vinyals') {
      const file = join(this.root, 'splits', 'vinyals', `${split}.txt`);
      if (!existsSync(file)) throw new Error(`Omniglot: split file ${file} not found`);
      const bytes = readFileSync(file);
      if (!this.checkedSplits.has(file)) {
        this.checkedSplits.add(file);
        const digest = sha256(bytes), known = OMNIGLOT_SHA256[`splits/vinyals/${split}.txt`];
        if (known && !known.includes(digest)) {
          this.warn(`metagrad: ${file} has SHA-256 ${digest}, expected ${known[0]} (the Vinyals et al. ${split} split); using it anyway`);
        }
      }
      classes = bytes.toString('utf8').split('\n').filter((l) => l.trim()).map((line, n) => {
        const m = /^(.+\/character\d+)\/rot(\d{3})$/.exec(line.trim());
        const c = m && index.get(m[1]);
        if (!m || c === undefined) throw new Error(`${file}:${n + 1}: '${line}' names no Omniglot character`);
        return [c, Number(m[2]) / 90] as [number, number];
      });
    } else if (scheme === 'background') {
      if (split === 'val') throw new Error("Omniglot: the 'background' scheme has no validation split (use 'train' or 'test')");
      const [lo, hi] = split === 'test' ? [this.backgroundCount, this.characters.length] : [0, this.backgroundCount];
      classes = Array.from({ length: hi - lo }, (_, i) => [lo + i, 0] as [number, number]);
    } else if (scheme === 'family-a' || scheme === 'family-b') {
      if (split === 'val') throw new Error(`Omniglot: the '${scheme}' scheme has no validation split (use 'train' or 'test')`);
      const alphabetOf = (c: number) => this.characters[c].split('/')[0];
      const alphabets = [...new Set(this.characters.slice(0, this.backgroundCount).map((_, c) => alphabetOf(c)))].sort();
      const half = new Set(scheme === 'family-a' ? alphabets.slice(0, alphabets.length >> 1) : alphabets.slice(alphabets.length >> 1));
      const within = new Map<string, number>();
      classes = [];
      for (let c = 0; c < this.backgroundCount; c++) {
        const a = alphabetOf(c);
        if (!half.has(a)) continue;
        const k = within.get(a) ?? 0;
        within.set(a, k + 1);
        if ((k % 4 === 3) === (split === 'test')) classes.push([c, 0]);
      }
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

function readCache(file: string, key: string, size: number) {
  try {
    const buf = readFileSync(file);
    if (buf.toString('utf8', 0, CACHE_MAGIC.length) !== CACHE_MAGIC) return null;
    const hlen = buf.readUInt32LE(CACHE_MAGIC.length);
    const header = JSON.parse(buf.toString('utf8', CACHE_MAGIC.length + 4, CACHE_MAGIC.length + 4 + hlen));
    if (header.key !== key || header.size !== size || !Array.isArray(header.characters)) return null;
    const pixels = new Uint8Array(buf.buffer, buf.byteOffset + CACHE_MAGIC.length + 4 + hlen);
    if (pixels.length !== header.characters.length * DRAWERS * size * size) return null;
    return { characters: header.characters as string[], backgroundCount: header.backgroundCount as number, pixels };
  } catch {
    return null; // an unreadable cache is rebuilt, never trusted
  }
}

/** Written to a temporary file and renamed, so a crash never leaves a half-written cache. */
function writeCache(file: string, key: string, size: number, characters: string[], backgroundCount: number, pixels: Uint8Array) {
  const header = Buffer.from(JSON.stringify({ key, size, characters, backgroundCount }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, Buffer.concat([Buffer.from(CACHE_MAGIC), len, header, pixels]));
    renameSync(tmp, file);
  } catch (e) {
    try { rmSync(tmp, { force: true }); } catch { /* the folder itself is unusable: nothing was written */ }
    throw e;
  }
}
