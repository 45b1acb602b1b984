// Dataset loaders and samplers, on the real Omniglot in ../shared/data (beside the checkout).

import { describe, it, expect, beforeAll, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { Omniglot, EpisodeSampler, SineTasks, ZipArchive, decodePng, episodeTensors } from '../datasets/index.js';
import { OMNIGLOT_SHA256, defaultCacheDir } from '../datasets/omniglot.js';
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
    const warnings: string[] = [];
    expect(() => Omniglot.load({ root: dir, cacheDir: null, onWarning: (m) => { warnings.push(m); } })).toThrow(`${join(dir, 'images_evaluation.zip')}: not a zip archive`);
    // Both archives are unknown ones (the checksums come first): each warning names its file.
    expect(warnings.map((w) => w.slice(0, w.indexOf(' has SHA-256 ')))).toEqual(['images_background.zip', 'images_evaluation.zip'].map((z) => `metagrad: ${join(dir, z)}`));
  });
});

describe('Omniglot', () => {
  it('has 1,623 characters x 20 drawers and the Vinyals and MAML splits', () => {
    expect(omni.characters.length).toBe(1623);
    expect(omni.backgroundCount).toBe(964);
    expect([omni.split('train').numClasses, omni.split('val').numClasses, omni.split('test').numClasses]).toEqual([4112, 688, 1692]);
    expect([omni.split('trainval', 'maml').numClasses, omni.split('test', 'maml').numClasses]).toEqual([4800, 1692]);
  });

  it('the two task families: the halves of images_background\'s alphabets, a quarter of each alphabet\'s characters held out', () => {
    const chars = (s: ReturnType<Omniglot['split']>) => Array.from({ length: s.numClasses }, (_, k) => s.className(k));
    const alphabets = (names: string[]) => new Set(names.map((n) => n.split('/')[0]));
    const [aTrain, aTest, bTrain, bTest] = (['family-a', 'family-b'] as const).flatMap((f) => [chars(omni.split('train', f)), chars(omni.split('test', f))]);
    for (const n of [...aTrain, ...aTest, ...bTrain, ...bTest]) expect(n).toMatch(/\/rot000$/);
    const all = [...aTrain, ...aTest, ...bTrain, ...bTest];
    expect(new Set(all).size).toBe(all.length);                 // no character twice
    expect(all.length).toBe(964);                               // all of images_background
    expect(alphabets([...aTrain, ...aTest]).size).toBe(15);
    expect(alphabets([...bTrain, ...bTest]).size).toBe(15);
    expect([...alphabets([...aTrain, ...aTest])].filter((x) => alphabets(bTrain).has(x))).toEqual([]);
    expect(alphabets(aTest)).toEqual(alphabets(aTrain));         // held-out characters of the same alphabets
    expect(aTest.length / (aTrain.length + aTest.length)).toBeCloseTo(0.25, 1);
    expect(() => omni.split('val', 'family-a')).toThrow("Omniglot: the 'family-a' scheme has no validation split (use 'train' or 'test')");
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

describe('Omniglot cache and checksums', () => {
  const ZIPS = ['images_background.zip', 'images_evaluation.zip'];
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const pixelsOf = (o: Omniglot) => (o as unknown as { pixels: Uint8Array }).pixels;
  const noDecoding = () => { throw new Error('decoded the zips although the cache is warm'); };
  /** A new folder holding the archives (copied, so they can be changed, or linked). */
  const newRoot = (how: 'copy' | 'link') => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-omni-root-'));
    for (const z of ZIPS) (how === 'copy' ? copyFileSync : symlinkSync)(join(ROOT, z), join(dir, z));
    return dir;
  };
  /** A new cache folder, warmed with copies of the shared cache's 28 x 28 files (filled by beforeAll). */
  const warmCache = (dir = mkdtempSync(join(tmpdir(), 'mg-omni-cache-'))) => {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(cacheDir).filter((f) => /^omniglot-28\..*bin$/.test(f))) copyFileSync(join(cacheDir, f), join(dir, f));
    return dir;
  };

  it('documents the SHA-256 of every copy used here', () => {
    for (const [file, sums] of Object.entries(OMNIGLOT_SHA256)) {
      for (const s of sums) expect(s).toMatch(/^[0-9a-f]{64}$/);
      if (existsSync(join(ROOT, file))) expect(sums, file).toContain(sha256(readFileSync(join(ROOT, file))));
    }
  });

  it('the cache is keyed by content: a copy of the archives is served from it, a same-size corrupted one never is', () => {
    const root = newRoot('copy'), cache = warmCache(), warnings: string[] = [];
    const onWarning = (m: string) => { warnings.push(m); };
    const warm = Omniglot.load({ root, cacheDir: cache, onWarning, onProgress: noDecoding });
    expect(warnings).toEqual([]);
    expect(warm.characters).toEqual(omni.characters);
    // Flip bytes in the middle of images_background.zip: same size, different content.
    const path = join(root, 'images_background.zip'), bad = readFileSync(path);
    for (let i = 0; i < 64; i++) bad[(bad.length >> 1) + i] ^= 0xff;
    writeFileSync(path, bad);
    expect(statSync(path).size).toBe(statSync(join(ROOT, 'images_background.zip')).size);
    let loaded: Omniglot | undefined, error: Error | undefined;
    try {
      loaded = Omniglot.load({ root, cacheDir: cache, onWarning });
    } catch (e) {
      error = e as Error;
    }
    // The checksum warning names the file, its SHA-256 and the expected ones.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`metagrad: ${path} has SHA-256 ${sha256(bad)}, expected `);
    for (const s of OMNIGLOT_SHA256['images_background.zip']) expect(warnings[0]).toContain(s);
    // Then it fails in decoding, naming the archive, or decodes something else: never the cached arrays.
    if (error) expect(error.message).toContain(path);
    else expect(Buffer.compare(pixelsOf(loaded!), pixelsOf(omni))).not.toBe(0);
  }, 120_000);

  it('a cache folder that cannot be created warns once, before decoding, and loads uncached', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mg-omni-nodir-')), 'a-file');
    writeFileSync(file, '');
    const dir = join(file, 'metagrad');   // under a regular file: ENOTDIR, even for root
    const events: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    // The default onWarning writes one line to stderr.
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: any, ...rest: any[]) => {
      if (String(chunk).startsWith('metagrad:')) { events.push(String(chunk)); return true; }
      return write(chunk, ...rest);
    }) as typeof process.stderr.write);
    let o: Omniglot;
    try {
      o = Omniglot.load({ root: ROOT, cacheDir: dir, onProgress: () => { if (events.at(-1) !== 'decoding') events.push('decoding'); } });
    } finally {
      spy.mockRestore();
    }
    expect(events).toEqual([`metagrad: cannot write the Omniglot cache in ${dir} (ENOTDIR); running uncached (use --cache-dir DIR or --no-cache)\n`, 'decoding']);
    expect(existsSync(dir)).toBe(false);
    expect(o.characters).toEqual(omni.characters);
    expect(o.backgroundCount).toBe(omni.backgroundCount);
    expect(Buffer.compare(pixelsOf(o), pixelsOf(omni))).toBe(0);
  }, 120_000);

  it('defaults to $XDG_CACHE_HOME/metagrad (an absolute XDG_CACHE_HOME only), else ~/.cache/metagrad', () => {
    const saved = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, HOME: process.env.HOME };
    try {
      const xdg = mkdtempSync(join(tmpdir(), 'mg-xdg-'));
      process.env.XDG_CACHE_HOME = xdg;
      expect(defaultCacheDir()).toBe(join(xdg, 'metagrad'));
      // Omniglot.load without cacheDir reads (and would write) the cache there.
      warmCache(join(xdg, 'metagrad'));
      const warnings: string[] = [];
      const o = Omniglot.load({ root: ROOT, onWarning: (m) => { warnings.push(m); }, onProgress: noDecoding });
      expect(warnings).toEqual([]);
      expect(o.characters).toEqual(omni.characters);
      process.env.XDG_CACHE_HOME = 'relative/cache';
      expect(defaultCacheDir()).toBe(join(homedir(), '.cache', 'metagrad'));
      delete process.env.XDG_CACHE_HOME;
      expect(defaultCacheDir()).toBe(join(homedir(), '.cache', 'metagrad'));
      process.env.HOME = '/some/home';
      expect(defaultCacheDir()).toBe('/some/home/.cache/metagrad');
      process.env.HOME = '';   // no home folder at all: reported (and run uncached) by Omniglot.load
      expect(defaultCacheDir()).toBe('~/.cache/metagrad');
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  });

  it('warns once, naming the file, about a split file that is not the published one', () => {
    const root = newRoot('link'), warnings: string[] = [];
    mkdirSync(join(root, 'splits', 'vinyals'), { recursive: true });
    copyFileSync(join(ROOT, 'splits', 'vinyals', 'train.txt'), join(root, 'splits', 'vinyals', 'train.txt'));
    const val = join(root, 'splits', 'vinyals', 'val.txt');
    const lines = readFileSync(join(ROOT, 'splits', 'vinyals', 'val.txt'), 'utf8').split('\n').filter((l) => l.trim());
    writeFileSync(val, lines.slice(0, -4).join('\n') + '\n');
    // The archives are the same bytes, so the shared cache serves them.
    const o = Omniglot.load({ root, cacheDir, onWarning: (m) => { warnings.push(m); }, onProgress: noDecoding });
    expect(warnings).toEqual([]);
    expect(o.split('val').numClasses).toBe(684);
    o.split('val');
    expect(o.split('train').numClasses).toBe(4112);
    expect(warnings).toEqual([
      `metagrad: ${val} has SHA-256 ${sha256(readFileSync(val))}, expected ${OMNIGLOT_SHA256['splits/vinyals/val.txt'][0]} (the Vinyals et al. val split); using it anyway`,
    ]);
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
