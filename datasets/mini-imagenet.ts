// mini-ImageNet in Ravi & Larochelle's (2017) split: root/images/<file>.jpg and root/{train,val,test}.csv,
// each CSV a `filename,label` header and one `n01532829_00000005.jpg,n01532829` line per image (the
// real split has 64 / 16 / 20 classes of 600 images; nothing here assumes those counts, counts()
// reports them). Images are decoded with datasets/jpeg.ts, resized to size x size RGB when they are
// not already (area averaging, stretching non-square images as PIL's resize in the original
// preprocessing does) and kept as 8-bit, channel-major.
//
// Memory: everything is decoded at load, 3 * size^2 bytes an image: the full set at 84 x 84 is
// 60,000 x 21,168 bytes = 1.27 GB (train alone 0.81 GB), held in one array per class. For CPU-sized
// runs, classesPerSplit and imagesPerClass load (and read from disk) only the first classes and images
// of each CSV. Loading runs at about 2,000 84 x 84 images a second on one core (half a minute for
// the full set; measured on this project's CI-class machine).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJpeg } from './jpeg.js';
import type { ClassDataset } from './sampler.js';

export type MiniImageNetSplit = 'train' | 'val' | 'test';

export interface MiniImageNetOptions {
  /** Folder holding images/ and train.csv, val.csv, test.csv. */
  root: string;
  /** Side of the square images after resizing (84 in Ravi & Larochelle, MAML and Prototypical Networks). */
  size?: number;
  /** Load only the first N classes of each split (in CSV order); default all. */
  classesPerSplit?: number;
  /** Load only the first N images of each class (in CSV order); default all. */
  imagesPerClass?: number;
  /** Called while decoding, every 500 images and at the end. */
  onProgress?: (done: number, total: number) => void;
  /** One-line warnings (a split whose classes have unequal numbers of images). Default: written to stderr. */
  onWarning?: (message: string) => void;
}

const SPLITS: readonly MiniImageNetSplit[] = ['train', 'val', 'test'];
const HEADER = 'filename,label';
const defaultWarning = (m: string) => { process.stderr.write(m + '\n'); };

/** One class of one split: its images' file names, where each was listed, and (after loading) pixels. */
interface ClassEntry { name: string; files: string[]; lines: number[] }
interface SplitData { csv: string; classes: string[]; files: string[][]; pixels: Uint8Array[] }

export class MiniImageNet {
  private constructor(
    readonly root: string,
    readonly size: number,
    private readonly data: Readonly<Record<MiniImageNetSplit, SplitData>>,
  ) {}

  /**
   * Reads the three CSVs, checks them (header, `filename,label` lines, no image listed twice, no
   * class in two splits), then decodes the images they list (or the first classesPerSplit classes
   * and imagesPerClass images of each). Errors name the folder, CSV line or image at fault.
   */
  static load(opts: MiniImageNetOptions): MiniImageNet {
    const { root } = opts;
    const size = opts.size ?? 84;
    const warn = opts.onWarning ?? defaultWarning;
    const positive = (v: number | undefined, what: string) => {
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new Error(`mini-ImageNet: ${what} must be a positive integer, not ${v}`);
    };
    positive(size, 'size');
    positive(opts.classesPerSplit, 'classesPerSplit');
    positive(opts.imagesPerClass, 'imagesPerClass');
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`mini-ImageNet: folder ${root} not found`);
    const images = join(root, 'images');
    if (!existsSync(images) || !statSync(images).isDirectory()) {
      throw new Error(`mini-ImageNet: ${images} not found (expected Ravi & Larochelle's layout: images/ beside train.csv, val.csv, test.csv)`);
    }

    // Parse and cross-check all three CSVs before decoding anything: a bad line fails in a moment.
    const seenFile = new Map<string, string>(), seenClass = new Map<string, string>();
    const parsed = SPLITS.map((split) => {
      const csv = join(root, `${split}.csv`);
      if (!existsSync(csv)) throw new Error(`mini-ImageNet: ${csv} not found (expected train.csv, val.csv and test.csv in ${root})`);
      const lines = readFileSync(csv, 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/);
      if (lines[0].trim() !== HEADER) throw new Error(`${csv}:1: header is '${lines[0]}', expected '${HEADER}'`);
      const byClass = new Map<string, ClassEntry>();
      for (let n = 1; n < lines.length; n++) {
        const line = lines[n].trim();
        if (!line) continue;
        const m = /^([^,\s/\\]+),([^,\s]+)$/.exec(line);
        if (!m) throw new Error(`${csv}:${n + 1}: '${lines[n]}' is not 'filename,label'`);
        const [, file, label] = m;
        const where = `${csv}:${n + 1}`;
        const first = seenFile.get(file);
        if (first) throw new Error(`${where}: image ${file} is listed twice (also at ${first})`);
        seenFile.set(file, where);
        const other = seenClass.get(label);
        if (other && other !== csv) throw new Error(`${where}: class ${label} is also in ${other}; the splits must not share classes`);
        seenClass.set(label, csv);
        if (!byClass.has(label)) byClass.set(label, { name: label, files: [], lines: [] });
        byClass.get(label)!.files.push(file);
        byClass.get(label)!.lines.push(n + 1);
      }
      if (byClass.size === 0) throw new Error(`${csv}: lists no images`);
      const classes = [...byClass.values()].slice(0, opts.classesPerSplit);
      if (opts.imagesPerClass) for (const c of classes) { c.files.length = Math.min(c.files.length, opts.imagesPerClass); c.lines.length = c.files.length; }
      // Unequal classes still sample (EpisodeSampler checks each has shots + queries), but the real set's are equal.
      const most = classes.reduce((a, b) => (b.files.length > a.files.length ? b : a));
      const short = classes.filter((c) => c.files.length < most.files.length);
      if (short.length) {
        warn(`mini-ImageNet: ${csv}: ${short.length} of ${classes.length} classes have fewer images than ${most.name} (${most.files.length}): ` +
          short.slice(0, 5).map((c) => `${c.name} ${c.files.length}`).join(', ') + (short.length > 5 ? ', ...' : ''));
      }
      return { split, csv, classes };
    });

    const total = parsed.reduce((s, p) => s + p.classes.reduce((t, c) => t + c.files.length, 0), 0);
    const per = 3 * size * size;
    let done = 0;
    const data = {} as Record<MiniImageNetSplit, SplitData>;
    for (const { split, csv, classes } of parsed) {
      data[split] = {
        csv,
        classes: classes.map((c) => c.name),
        files: classes.map((c) => c.files),
        pixels: classes.map((c) => {
          const block = new Uint8Array(c.files.length * per);
          c.files.forEach((file, i) => {
            const path = join(images, file);
            if (!existsSync(path)) throw new Error(`mini-ImageNet: image ${path} not found (listed at ${csv}:${c.lines[i]})`);
            let img;
            try {
              img = decodeJpeg(readFileSync(path), path);
            } catch (e: any) {
              throw new Error(`${e.message} (listed at ${csv}:${c.lines[i]})`);
            }
            resizeRgb(img.data, img.width, img.height, img.channels, size, block, i * per);
            if (++done % 500 === 0 || done === total) opts.onProgress?.(done, total);
          });
          return block;
        }),
      };
    }
    return new MiniImageNet(root, size, data);
  }

  /** Classes and images per split, as loaded (after classesPerSplit / imagesPerClass). */
  counts(): Record<MiniImageNetSplit, { classes: number; images: number }> {
    const out = {} as Record<MiniImageNetSplit, { classes: number; images: number }>;
    for (const s of SPLITS) out[s] = { classes: this.data[s].classes.length, images: this.data[s].files.reduce((a, f) => a + f.length, 0) };
    return out;
  }

  /** The class names (WordNet ids) of a split, in CSV order: class index c of split(name) is classes(name)[c]. */
  classes(split: MiniImageNetSplit): readonly string[] { return this.splitData(split).classes; }

  /** The image files of class c of a split, in CSV order: example i is files(split, c)[i]. */
  files(split: MiniImageNetSplit, c: number): readonly string[] { return this.splitData(split).files[c]; }

  /** A split as episodes' source: imageShape [3, size, size], pixels in [0, 1], channel-major (CHW). */
  split(split: MiniImageNetSplit): ClassDataset {
    const { classes, files, pixels } = this.splitData(split);
    const per = 3 * this.size * this.size;
    return {
      numClasses: classes.length,
      imageShape: [3, this.size, this.size],
      examplesOf: (c) => files[c].length,
      className: (c) => classes[c],
      writeImage: (c, i, out, offset) => {
        const px = pixels[c], base = i * per;
        for (let k = 0; k < per; k++) out[offset + k] = px[base + k] / 255;
      },
    };
  }

  private splitData(split: MiniImageNetSplit): SplitData {
    if (!SPLITS.includes(split)) throw new Error(`mini-ImageNet: no split '${split}' (use 'train', 'val' or 'test')`);
    return this.data[split];
  }
}

/**
 * Interleaved RGB or grey (grey is copied to all three channels) to size x size channel-major RGB at
 * out[offset..]. Equal sizes copy; others average the input area each output pixel covers (as
 * datasets/png.ts resizeArea; it antialiases when shrinking), rounded to 8 bits.
 */
function resizeRgb(src: Uint8Array, w: number, h: number, channels: 1 | 3, size: number, out: Uint8Array, offset: number): void {
  const plane = size * size;
  if (w === size && h === size) {
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < 3; ch++) out[offset + ch * plane + p] = src[p * channels + (channels === 3 ? ch : 0)];
    }
    return;
  }
  const sx = w / size, sy = h / size;
  const acc = new Float64Array(3);
  for (let oy = 0; oy < size; oy++) {
    const y0 = oy * sy, y1 = y0 + sy;
    for (let ox = 0; ox < size; ox++) {
      const x0 = ox * sx, x1 = x0 + sx;
      acc.fill(0);
      for (let y = Math.floor(y0); y < Math.min(Math.ceil(y1), h); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let x = Math.floor(x0); x < Math.min(Math.ceil(x1), w); x++) {
          const wgt = wy * (Math.min(x + 1, x1) - Math.max(x, x0)), at = (y * w + x) * channels;
          for (let ch = 0; ch < 3; ch++) acc[ch] += wgt * src[at + (channels === 3 ? ch : 0)];
        }
      }
      for (let ch = 0; ch < 3; ch++) out[offset + ch * plane + oy * size + ox] = Math.round(acc[ch] / (sx * sy));
    }
  }
}
