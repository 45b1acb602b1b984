// Dataset loaders and samplers, on the real Omniglot in ../shared/data (beside the checkout).

import { describe, it, expect, beforeAll } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { Omniglot, EpisodeSampler, SineTasks, ZipArchive, decodePng, episodeTensors } from '../datasets/index.js';
import * as mg from '../index.js';
import { activate } from './support/backends.js';

const ROOT = new URL('../../shared/data/omniglot', import.meta.url).pathname;
const cacheDir = join(tmpdir(), 'metagrad-test-cache');
let omni: Omniglot;
beforeAll(() => { omni = Omniglot.load({ root: ROOT, cacheDir }); }, 120_000);

/** A minimal PNG encoder for tests: 8-bit greyscale with a chosen filter per row. */
function encodePng(w: number, h: number, px: Uint8Array, filterOf: (y: number) => number): Buffer {
  const rows: number[] = [];
  const at = (x: number, y: number) => (x < 0 || y < 0 ? 0 : px[y * w + x]);
  for (let y = 0; y < h; y++) {
    const f = filterOf(y);
    rows.push(f);
    for (let x = 0; x < w; x++) {
      const a = at(x - 1, y), b = at(x, y - 1), c = at(x - 1, y - 1);
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      rows.push((px[y * w + x] - pred) & 0xff);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE((zlib as any).crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.from(rows))), chunk('IEND', Buffer.alloc(0))]);
}

describe('PNG and zip decoding', () => {
  it('undoes every PNG filter type', () => {
    const rng = new mg.Random(3);
    const px = Uint8Array.from({ length: 13 * 9 }, () => rng.int(256));
    const img = decodePng(encodePng(13, 9, px, (y) => y % 5));
    expect([img.width, img.height]).toEqual([13, 9]);
    expect(Array.from(img.pixels, (v) => Math.round(v * 255))).toEqual(Array.from(px));
  });

  it('reads the official 1-bit Omniglot PNGs', () => {
    const zip = new ZipArchive(join(ROOT, 'images_background.zip'));
    const img = decodePng(zip.read('images_background/Arcadian/character01/0001_01.png'));
    expect([img.width, img.height]).toEqual([105, 105]);
    expect(new Set(img.pixels)).toEqual(new Set([0, 1]));
  });

  it('corrupt and missing files give errors naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-corrupt-'));
    expect(() => Omniglot.load({ root: dir, cacheDir: null })).toThrow(`Omniglot: ${join(dir, 'images_background.zip')} not found`);
    const src = readFileSync(join(ROOT, 'images_background_small1.zip'));
    writeFileSync(join(dir, 'truncated.zip'), src.subarray(0, src.length >> 1));
    expect(() => new ZipArchive(join(dir, 'truncated.zip'))).toThrow(`${join(dir, 'truncated.zip')}: not a zip archive`);
    // Flip one byte inside the first PNG's data: the CRC check names the archive and the entry.
    const zip = new ZipArchive(join(ROOT, 'images_background_small1.zip'));
    const first = zip.files().find((f) => f.endsWith('.png'))!;
    const e = zip.entries.get(first)!;
    const bad = Buffer.from(src);
    bad[e.headerOffset + 30 + first.length + src.readUInt16LE(e.headerOffset + 28) + 10] ^= 0xff;
    writeFileSync(join(dir, 'flipped.zip'), bad);
    expect(() => new ZipArchive(join(dir, 'flipped.zip')).read(first)).toThrow(new RegExp(`flipped.zip: entry '${first.replace(/[()]/g, '\\$&')}' (fails its CRC check|does not decompress)`));
    expect(() => decodePng(Buffer.from('not a png'), 'x.png')).toThrow('x.png: not a PNG file');
    copyFileSync(join(ROOT, 'images_evaluation.zip'), join(dir, 'images_background.zip'));
    writeFileSync(join(dir, 'images_evaluation.zip'), 'garbage');
    expect(() => Omniglot.load({ root: dir, cacheDir: null })).toThrow(`${join(dir, 'images_evaluation.zip')}: not a zip archive`);
  });
});

describe('Omniglot', () => {
  it('has 1,623 characters x 20 drawers and the Vinyals and MAML splits', () => {
    expect(omni.characters.length).toBe(1623);
    expect(omni.backgroundCount).toBe(964);
    expect([omni.split('train').numClasses, omni.split('val').numClasses, omni.split('test').numClasses]).toEqual([4112, 688, 1692]);
    expect([omni.split('trainval', 'maml').numClasses, omni.split('test', 'maml').numClasses]).toEqual([4800, 1692]);
  });

  it('splits share no character', () => {
    const chars = (s: ReturnType<Omniglot['split']>) => new Set(Array.from({ length: s.numClasses }, (_, k) => s.className(k).replace(/\/rot\d+$/, '')));
    for (const scheme of ['vinyals', 'maml'] as const) {
      const train = chars(omni.split('trainval', scheme)), test = chars(omni.split('test', scheme));
      expect([...train].filter((c) => test.has(c))).toEqual([]);
      expect(train.size + test.size).toBe(1623);
    }
  });

  it('images are ink-on-zero in [0, 1], and rotations are quarter turns', () => {
    const s = omni.split('train');
    const a = new Float32Array(784), b = new Float32Array(784);
    s.writeImage(0, 3, a, 0);     // rot000
    s.writeImage(1, 3, b, 0);     // rot090 of the same character
    expect(s.className(1)).toBe('Angelic/character01/rot090');
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a)).toBeLessThanOrEqual(1);
    expect(a.reduce((x, y) => x + y) / 784).toBeLessThan(0.5);   // mostly background
    for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) expect(b[i * 28 + j]).toBe(a[j * 28 + 27 - i]);
  });
});

describe('episodic sampler', () => {
  it('yields N-way K-shot episodes with labels 0..N-1, deterministic under a seed', () => {
    const s = omni.split('train');
    const e1 = new EpisodeSampler(s, { ways: 5, shots: 1, queries: 15, seed: 9 }).next();
    const e2 = new EpisodeSampler(s, { ways: 5, shots: 1, queries: 15, seed: 9 }).next();
    const e3 = new EpisodeSampler(s, { ways: 5, shots: 1, queries: 15, seed: 10 }).next();
    expect(e1.support.length).toBe(5 * 784);
    expect(e1.query.length).toBe(75 * 784);
    expect(Array.from(e1.supportLabels)).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(e1.queryLabels)).toEqual([0, 1, 2, 3, 4].flatMap((l) => new Array(15).fill(l)));
    expect(new Set(e1.classes).size).toBe(5);
    expect(e2).toEqual(e1);
    expect(e3.classes).not.toEqual(e1.classes);
  });

  it('samples fast enough never to be the bottleneck', () => {
    const sampler = new EpisodeSampler(omni.split('train'), { ways: 20, shots: 5, queries: 15, seed: 1 });
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) sampler.next();
    // 50 episodes of 400 images: far below one Conv4 step per episode, even on a loaded machine.
    expect((performance.now() - t0) / 50).toBeLessThan(50);
  });

  it('converts to tensors', async () => {
    await activate('ref');
    mg.tidy(() => {
      const e = new EpisodeSampler(omni.split('test'), { ways: 3, shots: 2, queries: 1, seed: 0 }).next();
      const t = episodeTensors(e);
      expect(t.xs.shape).toEqual([6, 1, 28, 28]);
      expect(t.xq.shape).toEqual([3, 1, 28, 28]);
    });
  });

  it('rejects impossible episodes clearly', () => {
    expect(() => new EpisodeSampler(omni.split('val'), { ways: 5, shots: 10, queries: 15 })).toThrow('has 20 examples, fewer than 10 shots + 15 queries');
  });
});

describe('sine tasks', () => {
  it('follow Finn et al.: amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5]; seeded', async () => {
    const a = new SineTasks({ shots: 10, seed: 4 }), b = new SineTasks({ shots: 10, seed: 4 });
    for (let i = 0; i < 200; i++) {
      const t = a.next();
      expect(t).toEqual(b.next());
      expect(t.amplitude).toBeGreaterThanOrEqual(0.1);
      expect(t.amplitude).toBeLessThanOrEqual(5);
      expect(t.phase).toBeGreaterThanOrEqual(0);
      expect(t.phase).toBeLessThanOrEqual(Math.PI);
      for (const x of t.xs) expect(Math.abs(x)).toBeLessThanOrEqual(5);
      t.xs.forEach((x, j) => expect(t.ys[j]).toBeCloseTo(t.amplitude * Math.sin(x - t.phase), 12));
    }
    await activate('ref');
    mg.tidy(() => expect(a.batch(25).xs.shape).toEqual([25, 10, 1]));
  });
});
