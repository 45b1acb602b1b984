// The JPEG decoder against PIL's decoding of the same files, and the mini-ImageNet loader on a tiny
// folder in Ravi & Larochelle's layout. Fixtures: tests/fixtures/mini-imagenet, made by
// scripts/make-jpeg-fixtures.py (PIL's decoded pixels are saved beside each JPEG as .rgb).

import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpisodeSampler, MiniImageNet, decodeJpeg, episodeTensors } from '../datasets/index.js';
import type { MiniImageNetOptions } from '../datasets/index.js';
import { activate } from './support/backends.js';

const FIXTURES = new URL('./fixtures/mini-imagenet/', import.meta.url).pathname;
const JPEGS = join(FIXTURES, 'jpeg'), ROOT = join(FIXTURES, 'root');
const jpeg = (name: string) => new Uint8Array(readFileSync(join(JPEGS, `${name}.jpg`)));

interface Entry { name: string; note: string; width?: number; height?: number; channels?: number; unsupported?: string }
const manifest: Entry[] = JSON.parse(readFileSync(join(JPEGS, 'manifest.json'), 'utf8'));

/** Largest and mean absolute difference between two byte arrays of the same length. */
function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0, sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

/** Replaces the first occurrence of `find` at or after `from` (bytes) with `put`. */
function patch(bytes: Uint8Array, find: number[], put: number[], from = 0): Uint8Array {
  const out = bytes.slice();
  for (let i = from; i + find.length <= out.length; i++) {
    if (find.every((v, k) => out[i + k] === v)) { out.set(put, i); return out; }
  }
  throw new Error(`test: bytes ${find} not found`);
}

/** Position of the first marker 0xFF `code` (for locating segments in the fixtures). */
function markerAt(bytes: Uint8Array, code: number): number {
  for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0xff && bytes[i + 1] === code) return i;
  throw new Error(`test: marker ${code.toString(16)} not found`);
}

describe('decodeJpeg against PIL (libjpeg-turbo)', () => {
  // Float IDCT against libjpeg's integer one: a sample may differ by 1, and YCbCr -> RGB scales a
  // chroma difference by up to 1.77, so a channel by up to 3; the chroma upsampling and the colour
  // tables are libjpeg's own, so the mean stays far below 1 (measured: max 1-3, mean 0.01-0.06).
  // A replicating upsampler instead of libjpeg's triangle filter gives means of several units on the
  // subsampled files, so the mean bound catches it.
  const decodable = manifest.filter((e) => !e.unsupported);

  it('covers every kind of file the fixtures script makes', () => {
    expect(decodable.length).toBe(17);
    expect(manifest.filter((e) => e.unsupported).map((e) => e.name)).toEqual(['pil-progressive']);
  });

  for (const e of decodable) {
    it(`${e.name}: ${e.note}`, () => {
      const img = decodeJpeg(jpeg(e.name), e.name);
      expect([img.width, img.height, img.channels]).toEqual([e.width, e.height, e.channels]);
      const { max, mean } = diff(img.data, new Uint8Array(readFileSync(join(JPEGS, `${e.name}.rgb`))));
      expect(max).toBeLessThanOrEqual(3);
      expect(mean).toBeLessThan(0.1);
    });
  }

  it('restart intervals and multi-scan files decode exactly as the same image without them', () => {
    // Same pixels, coded differently (enc-420-rst: interleaved; enc-420-scans-rst: one scan per component).
    const a = decodeJpeg(jpeg('enc-420-rst')), b = decodeJpeg(jpeg('enc-420-scans-rst'));
    expect(diff(a.data, b.data).max).toBe(0);
  });

  it('refuses progressive, lossless, hierarchical, arithmetic-coded and 12-bit files, naming the file', () => {
    expect(() => decodeJpeg(jpeg('pil-progressive'), 'photo.jpg')).toThrow(/^photo\.jpg: progressive JPEG \(SOF2\) is not supported/);
    const base = jpeg('pil-444-q90'), sof = markerAt(base, 0xc0);
    const withSof = (code: number) => { const b = base.slice(); b[sof + 1] = code; return b; };
    expect(() => decodeJpeg(withSof(0xc3), 'x.jpg')).toThrow(/^x\.jpg: lossless JPEG \(SOF3\) is not supported/);
    expect(() => decodeJpeg(withSof(0xc5), 'x.jpg')).toThrow(/^x\.jpg: hierarchical JPEG \(SOF5/);
    expect(() => decodeJpeg(withSof(0xc9), 'x.jpg')).toThrow(/^x\.jpg: arithmetic-coded JPEG \(SOF9\) is not supported/);
    const twelve = withSof(0xc1);
    twelve[sof + 4] = 12; // precision byte, after the marker and the length
    expect(() => decodeJpeg(twelve, 'x.jpg')).toThrow(/^x\.jpg: 12-bit samples are not supported/);
  });

  it('corrupt and truncated files give errors naming the file', () => {
    const good = jpeg('pil-444-q90'), sos = markerAt(good, 0xda);
    expect(() => decodeJpeg(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0]), 'a.png')).toThrow('a.png: not a JPEG file (no SOI marker)');
    expect(() => decodeJpeg(good.subarray(0, sos + 200), 'cut.jpg')).toThrow(/^cut\.jpg: entropy-coded data ends early \(truncated file\)/);
    expect(() => decodeJpeg(good.subarray(0, 30), 'cut.jpg')).toThrow(/^cut\.jpg: truncated in segment 0xFFDB/);
    expect(() => decodeJpeg(good.subarray(0, good.length - 2), 'noeoi.jpg')).toThrow(/^noeoi\.jpg: .*no EOI marker/);
    // Sixteen 1 bits (a stuffed 0xFF) are no code of these Huffman tables.
    const garbled = good.slice();
    garbled.set([0xff, 0x00, 0xff, 0x00, 0xff, 0x00], sos + 40);
    expect(() => decodeJpeg(garbled, 'bad.jpg')).toThrow(/^bad\.jpg: (invalid Huffman code|AC coefficients run past)/);
    // A marker in the middle of the scan: the data stops short.
    const marker = good.slice();
    marker.set([0xff, 0xd9], sos + 60);
    expect(() => decodeJpeg(marker, 'bad.jpg')).toThrow(/^bad\.jpg: entropy-coded data ends early at a marker/);
    // The second restart marker renumbered.
    const rst = jpeg('enc-444-rst1');
    expect(() => decodeJpeg(patch(rst, [0xff, 0xd1], [0xff, 0xd5], markerAt(rst, 0xda)), 'rst.jpg'))
      .toThrow('rst.jpg: expected restart marker RST1 before MCU 2, found 0xFFD5 (corrupt or truncated data)');
    // A scan naming Huffman tables that were never defined.
    const noTable = good.slice();
    noTable[sos + 6] = 0x33; // first component's DC/AC selectors
    expect(() => decodeJpeg(noTable, 'tab.jpg')).toThrow('tab.jpg: scan uses DC Huffman table 3, which is not defined');
    expect(() => decodeJpeg(good.subarray(0, sos), 'noscan.jpg')).toThrow('noscan.jpg: ends without an EOI marker (truncated file)');
  });
});

const COLOURS: Record<string, [number, number, number]> = {
  n90000001: [200, 40, 40], n90000002: [40, 180, 60], n90000003: [40, 60, 200],
  n90000004: [220, 200, 40], n90000005: [190, 40, 190], n90000006: [40, 190, 200], n90000007: [128, 128, 128],
};

/** Mean of each channel of a CHW image in [0, 1], back on the 0-255 scale. */
function meanColour(x: Float32Array, offset: number, size: number): number[] {
  const plane = size * size;
  return [0, 1, 2].map((ch) => {
    let s = 0;
    for (let i = 0; i < plane; i++) s += x[offset + ch * plane + i];
    return (s / plane) * 255;
  });
}

/** A writable copy of the fixture folder, changed by `edit`; the loader's error (or null) and its warnings. */
function loadCopy(edit: (dir: string) => void, opts: Partial<MiniImageNetOptions> = {}): { error: string | null; warnings: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'mini-imagenet-'));
  const warnings: string[] = [];
  try {
    cpSync(ROOT, dir, { recursive: true });
    edit(dir);
    MiniImageNet.load({ root: dir, onWarning: (m) => warnings.push(m.replaceAll(dir, 'ROOT')), ...opts });
    return { error: null, warnings };
  } catch (e: any) {
    return { error: e.message.replaceAll(dir, 'ROOT'), warnings };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const csv = (dir: string, split: string) => join(dir, `${split}.csv`);
const editCsv = (dir: string, split: string, f: (lines: string[]) => string[]) =>
  writeFileSync(csv(dir, split), f(readFileSync(csv(dir, split), 'utf8').trimEnd().split('\n')).join('\n') + '\n');

describe('MiniImageNet', () => {
  const warnings: string[] = [], progress: [number, number][] = [];
  let mini: MiniImageNet;
  beforeAll(() => { mini = MiniImageNet.load({ root: ROOT, onWarning: (m) => warnings.push(m), onProgress: (d, t) => progress.push([d, t]) }); });

  it('loads the three splits and reports their sizes', () => {
    expect(mini.counts()).toEqual({ train: { classes: 3, images: 12 }, val: { classes: 2, images: 8 }, test: { classes: 2, images: 8 } });
    expect(mini.classes('train')).toEqual(['n90000001', 'n90000002', 'n90000003']);
    expect(mini.classes('test')).toEqual(['n90000006', 'n90000007']);
    expect(mini.files('val', 1)).toEqual([1, 2, 3, 4].map((k) => `n90000005_0000000${k}.jpg`));
    expect(warnings).toEqual([]);
    expect(progress.at(-1)).toEqual([28, 28]);
  });

  it('gives a ClassDataset of 3 x 84 x 84 images in [0, 1], channel-major, as decoded', () => {
    const train = mini.split('train');
    expect([train.numClasses, train.examplesOf(2), train.className(1)]).toEqual([3, 4, 'n90000002']);
    expect(train.imageShape).toEqual([3, 84, 84]);
    const out = new Float32Array(5 + 3 * 84 * 84);
    train.writeImage(2, 1, out, 5);
    const img = decodeJpeg(new Uint8Array(readFileSync(join(ROOT, 'images', 'n90000003_00000002.jpg'))));
    expect([img.width, img.height, img.channels]).toEqual([84, 84, 3]);
    for (let p = 0; p < 84 * 84; p++) {
      for (let ch = 0; ch < 3; ch++) expect(out[5 + ch * 84 * 84 + p]).toBe(Math.fround(img.data[3 * p + ch] / 255));
    }
    expect(out.slice(0, 5)).toEqual(new Float32Array(5));
  });

  it('copies a greyscale JPEG to all three channels', () => {
    const test = mini.split('test'), out = new Float32Array(3 * 84 * 84), plane = 84 * 84;
    test.writeImage(1, 2, out, 0); // n90000007_00000003.jpg, written by PIL in mode L
    const img = decodeJpeg(new Uint8Array(readFileSync(join(ROOT, 'images', 'n90000007_00000003.jpg'))));
    expect(img.channels).toBe(1);
    for (let p = 0; p < plane; p++) {
      expect(out[p]).toBe(Math.fround(img.data[p] / 255));
      expect(out[plane + p]).toBe(out[p]);
      expect(out[2 * plane + p]).toBe(out[p]);
    }
  });

  it('resizes by area averaging: as PIL box-resizes a 100 x 70 image, and 2 x 2 means at half size', () => {
    const small = MiniImageNet.load({ root: ROOT, size: 21, onWarning: () => {} }), out = new Float32Array(3 * 21 * 21);
    small.split('train').writeImage(0, 1, out, 0); // n90000001_00000002.jpg is 100 x 70
    const box = readFileSync(join(FIXTURES, 'expected', 'n90000001_00000002.box21.rgb'));
    const ours = new Uint8Array(3 * 21 * 21);
    for (let p = 0; p < 21 * 21; p++) for (let ch = 0; ch < 3; ch++) ours[3 * p + ch] = Math.round(out[ch * 21 * 21 + p] * 255);
    const { max, mean } = diff(ours, new Uint8Array(box));
    expect(max).toBeLessThanOrEqual(2);
    expect(mean).toBeLessThan(0.5);

    const half = MiniImageNet.load({ root: ROOT, size: 42, imagesPerClass: 1, classesPerSplit: 1 }), h = new Float32Array(3 * 42 * 42);
    half.split('val').writeImage(0, 0, h, 0);
    const img = decodeJpeg(new Uint8Array(readFileSync(join(ROOT, 'images', 'n90000004_00000001.jpg'))));
    for (let y = 0; y < 42; y++) {
      for (let x = 0; x < 42; x++) {
        for (let ch = 0; ch < 3; ch++) {
          const at = (yy: number, xx: number) => img.data[(yy * 84 + xx) * 3 + ch];
          const m = (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
          expect(h[ch * 42 * 42 + y * 42 + x]).toBe(Math.fround(Math.round(m) / 255));
        }
      }
    }
  });

  it('classesPerSplit and imagesPerClass load only the first classes and images of each CSV', () => {
    const few = MiniImageNet.load({ root: ROOT, classesPerSplit: 2, imagesPerClass: 3 });
    expect(few.counts()).toEqual({ train: { classes: 2, images: 6 }, val: { classes: 2, images: 6 }, test: { classes: 2, images: 6 } });
    expect(few.classes('train')).toEqual(['n90000001', 'n90000002']);
    expect(few.files('train', 1)).toEqual([1, 2, 3].map((k) => `n90000002_0000000${k}.jpg`));
  });

  it('samples a 2-way 1-shot episode whose labels match the images, as tensors of the right shapes', async () => {
    await activate('ref');
    const sampler = new EpisodeSampler(mini.split('train'), { ways: 2, shots: 1, queries: 3, seed: 7 });
    const per = 3 * 84 * 84;
    for (let n = 0; n < 4; n++) {
      const e = sampler.next();
      expect(e.imageShape).toEqual([3, 84, 84]);
      const t = episodeTensors(e);
      expect(t.xs.shape).toEqual([2, 3, 84, 84]);
      expect(t.xq.shape).toEqual([6, 3, 84, 84]);
      expect(Array.from(t.ys)).toEqual([0, 1]);
      expect(Array.from(t.yq)).toEqual([0, 0, 0, 1, 1, 1]);
      // Every image of label k shows its class's colour (each fixture class is one colour, give or
      // take a shading of +-20): the nearest of all the classes' colours is its own.
      const check = (x: Float32Array, labels: Int32Array) => labels.forEach((label, j) => {
        const mean = meanColour(x, j * per, 84);
        const dist = (c: number[]) => Math.hypot(...c.map((v, ch) => v - mean[ch]));
        const nearest = Object.keys(COLOURS).reduce((a, b) => (dist(COLOURS[b]) < dist(COLOURS[a]) ? b : a));
        expect(nearest).toBe(mini.split('train').className(e.classes[label]));
        expect(dist(COLOURS[nearest])).toBeLessThan(30);
      });
      check(e.support, e.supportLabels);
      check(e.query, e.queryLabels);
      t.xs.dispose();
      t.xq.dispose();
    }
  });

  it('errors name the folder, CSV line or image at fault', () => {
    expect(() => MiniImageNet.load({ root: join(FIXTURES, 'nowhere') })).toThrow(`mini-ImageNet: folder ${join(FIXTURES, 'nowhere')} not found`);
    expect(() => MiniImageNet.load({ root: JPEGS })).toThrow(`mini-ImageNet: ${join(JPEGS, 'images')} not found (expected Ravi & Larochelle's layout`);
    expect(() => MiniImageNet.load({ root: ROOT, size: 0 })).toThrow('mini-ImageNet: size must be a positive integer, not 0');
    const cases: [string, (dir: string) => void, string][] = [
      ['missing CSV', (d) => rmSync(csv(d, 'val')), 'mini-ImageNet: ROOT/val.csv not found (expected train.csv, val.csv and test.csv in ROOT)'],
      ['bad header', (d) => editCsv(d, 'test', (l) => ['file,class', ...l.slice(1)]), "ROOT/test.csv:1: header is 'file,class', expected 'filename,label'"],
      ['not filename,label', (d) => editCsv(d, 'train', (l) => [...l.slice(0, 3), 'n90000001_00000009.jpg n90000001', ...l.slice(3)]),
        "ROOT/train.csv:4: 'n90000001_00000009.jpg n90000001' is not 'filename,label'"],
      ['three fields', (d) => editCsv(d, 'val', (l) => [...l, 'a.jpg,n90000004,x']), "ROOT/val.csv:10: 'a.jpg,n90000004,x' is not 'filename,label'"],
      ['listed twice', (d) => editCsv(d, 'train', (l) => [...l, l[2]]),
        'ROOT/train.csv:14: image n90000001_00000002.jpg is listed twice (also at ROOT/train.csv:3)'],
      ['listed in two splits', (d) => editCsv(d, 'test', (l) => [...l, 'n90000004_00000001.jpg,n90000006']),
        'ROOT/test.csv:10: image n90000004_00000001.jpg is listed twice (also at ROOT/val.csv:2)'],
      ['class in two splits', (d) => editCsv(d, 'val', (l) => [...l, 'n90000099_00000001.jpg,n90000002']),
        'ROOT/val.csv:10: class n90000002 is also in ROOT/train.csv; the splits must not share classes'],
      ['empty split', (d) => editCsv(d, 'val', (l) => l.slice(0, 1)), 'ROOT/val.csv: lists no images'],
      ['missing image', (d) => rmSync(join(d, 'images', 'n90000005_00000003.jpg')),
        'mini-ImageNet: image ROOT/images/n90000005_00000003.jpg not found (listed at ROOT/val.csv:8)'],
      ['truncated image', (d) => {
        const f = join(d, 'images', 'n90000002_00000004.jpg');
        writeFileSync(f, readFileSync(f).subarray(0, 700));
      }, 'ROOT/images/n90000002_00000004.jpg: entropy-coded data ends early (truncated file) (listed at ROOT/train.csv:9)'],
      ['not a JPEG', (d) => writeFileSync(join(d, 'images', 'n90000006_00000001.jpg'), 'not an image'),
        'ROOT/images/n90000006_00000001.jpg: not a JPEG file (no SOI marker) (listed at ROOT/test.csv:2)'],
    ];
    for (const [what, edit, message] of cases) expect(loadCopy(edit).error, what).toBe(message);
  });

  it('a class with fewer images than another loads, with a warning naming the CSV and the class', () => {
    const r = loadCopy((d) => editCsv(d, 'train', (l) => l.filter((line) => !line.startsWith('n90000002_00000003'))));
    expect(r.error).toBeNull();
    expect(r.warnings).toEqual(['mini-ImageNet: ROOT/train.csv: 1 of 3 classes have fewer images than n90000001 (4): n90000002 3']);
    // Limited to 3 images a class, the same folder is even again.
    expect(loadCopy((d) => editCsv(d, 'train', (l) => l.filter((line) => !line.startsWith('n90000002_00000003'))), { imagesPerClass: 3 }).warnings).toEqual([]);
  });
});
