// IDX reading (every type code, raw and gzipped, and every error), and the MNIST / Fashion-MNIST
// loaders on the real files: MNIST in ../shared/data/mnist (beside the checkout), Fashion-MNIST from
// Debian's dataset-fashion-mnist (installed by .ci/run).

import { describe, it, expect, beforeAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  readIdx, loadMnist, loadFashionMnist, MNIST_SHA256, FASHION_MNIST_SHA256, FASHION_MNIST_DEBIAN_DIR,
} from '../datasets/index.js';
import type { IdxType, MnistData } from '../datasets/index.js';

const MNIST = new URL('../../shared/data/mnist', import.meta.url).pathname;
const tmp = () => mkdtempSync(join(tmpdir(), 'mg-idx-'));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An independent IDX encoder: big-endian header and data through DataView. */
const CODES: Record<IdxType, { code: number; size: number; set: (v: DataView, at: number, x: number) => void }> = {
  ubyte: { code: 0x08, size: 1, set: (v, at, x) => v.setUint8(at, x) },
  sbyte: { code: 0x09, size: 1, set: (v, at, x) => v.setInt8(at, x) },
  short: { code: 0x0b, size: 2, set: (v, at, x) => v.setInt16(at, x, false) },
  int: { code: 0x0c, size: 4, set: (v, at, x) => v.setInt32(at, x, false) },
  float: { code: 0x0d, size: 4, set: (v, at, x) => v.setFloat32(at, x, false) },
  double: { code: 0x0e, size: 8, set: (v, at, x) => v.setFloat64(at, x, false) },
};
function encodeIdx(type: IdxType, dims: number[], values: number[]): Buffer {
  const { code, size, set } = CODES[type];
  const header = 4 + 4 * dims.length, buf = Buffer.alloc(header + values.length * size);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf[2] = code;
  buf[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  values.forEach((x, i) => set(v, header + i * size, x));
  return buf;
}

/** Values with distinct bytes (so a byte-order mistake shows) and each type's extremes. */
const SAMPLES: Record<IdxType, number[]> = {
  ubyte: [0, 255, 1, 128, 200, 7],
  sbyte: [-128, 127, -1, 0, 5, -77],
  short: [0x0102, -32768, 32767, -2, 0x7f01, -300],
  int: [0x01020304, -2147483648, 2147483647, -1, 65536, -123456789],
  float: [1.5, -0.15625, Math.fround(3.4e38), Math.fround(1e-40), Math.fround(0.1), -65504],
  double: [0.1, -1e300, 5e-324, Math.PI, 1 / 3, -2.5],
};
const ARRAYS: Record<IdxType, Function> = {
  ubyte: Uint8Array, sbyte: Int8Array, short: Int16Array, int: Int32Array, float: Float32Array, double: Float64Array,
};
const valuesOf = (type: IdxType, n: number) => Array.from({ length: n }, (_, i) => SAMPLES[type][i % 6] * (type === 'float' || type === 'double' ? 1 + Math.floor(i / 6) : 1));

describe('readIdx', () => {
  const dir = tmp();
  const cases = (Object.keys(CODES) as IdxType[]).flatMap((type) =>
    [[5], [2, 3, 4]].flatMap((dims) => [false, true].map((gz) => ({ type, dims, gz }))));
  it.each(cases)('round-trips $type $dims (gzipped: $gz)', ({ type, dims, gz }) => {
    const values = valuesOf(type, dims.reduce((a, b) => a * b, 1)).map((x) => (type === 'float' ? Math.fround(x) : x));
    const raw = encodeIdx(type, dims, values);
    const file = join(dir, `${type}-${dims.length}-${gz}.idx`);
    writeFileSync(file, gz ? gzipSync(raw) : raw);
    const r = readIdx(file);
    expect(r.type).toBe(type);
    expect(r.dims).toEqual(dims);
    expect(r.data).toBeInstanceOf(ARRAYS[type]);
    // A plain array of its own, not a Buffer or a view into the file's (possibly shared) memory.
    expect(Buffer.isBuffer(r.data)).toBe(false);
    expect([r.data.byteOffset, r.data.buffer.byteLength]).toEqual([0, r.data.byteLength]);
    expect(Array.from(r.data)).toEqual(values);
  });

  it('tells gzip from raw by the magic bytes, not by the name', () => {
    const raw = encodeIdx('short', [3], [1, -2, 0x0304]);
    const rawNamedGz = join(dir, 'raw.gz'), gzNamedRaw = join(dir, 'gzipped-idx1-ubyte');
    writeFileSync(rawNamedGz, raw);
    writeFileSync(gzNamedRaw, gzipSync(raw));
    expect(Array.from(readIdx(rawNamedGz).data)).toEqual([1, -2, 0x0304]);
    expect(Array.from(readIdx(gzNamedRaw).data)).toEqual([1, -2, 0x0304]);
  });

  it('reads an empty outer dimension', () => {
    const file = join(dir, 'empty.idx');
    writeFileSync(file, encodeIdx('ubyte', [0, 28, 28], []));
    const r = readIdx(file);
    expect(r.dims).toEqual([0, 28, 28]);
    expect(r.data.length).toBe(0);
  });

  const bad = (name: string, bytes: Uint8Array) => {
    const file = join(dir, name);
    writeFileSync(file, bytes);
    return () => readIdx(file);
  };
  const good = encodeIdx('int', [2, 3], [1, 2, 3, 4, 5, 6]); // 4 + 8 + 24 = 36 bytes

  it('a missing file names it', () => {
    const file = join(dir, 'no-such-file.idx');
    expect(() => readIdx(file)).toThrow(`${file}: not found`);
  });

  it('a file with the gzip magic that does not decompress names it', () => {
    const gz = gzipSync(good);
    expect(bad('cut.gz', gz.subarray(0, gz.length - 12))).toThrow(new RegExp(`^${join(dir, 'cut.gz')}: starts with the gzip magic but is not gzip-decodable`));
    expect(bad('junk.gz', Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(`${join(dir, 'junk.gz')}: starts with the gzip magic but is not gzip-decodable`);
  });

  it('a bad magic names the file and the magic', () => {
    const b = Buffer.from(good); b[0] = 1;
    expect(bad('magic.idx', b)).toThrow(`${join(dir, 'magic.idx')}: not an IDX file: bad magic 0x01000c02`);
    const c = Buffer.from(good); c[1] = 0x80;
    expect(bad('magic2.idx', c)).toThrow(`${join(dir, 'magic2.idx')}: not an IDX file: bad magic 0x00800c02`);
  });

  it('an unknown type code names the file and the code', () => {
    const b = Buffer.from(good); b[2] = 0x0a;
    expect(bad('type.idx', b)).toThrow(`${join(dir, 'type.idx')}: unknown IDX type code 0x0a`);
  });

  it('truncated headers and data give the expected and actual sizes', () => {
    expect(bad('tiny.idx', Buffer.from([0, 0]))).toThrow(`${join(dir, 'tiny.idx')}: truncated IDX header: expected at least 4 bytes, got 2`);
    expect(bad('header.idx', good.subarray(0, 10))).toThrow(`${join(dir, 'header.idx')}: truncated IDX header: expected 12 bytes for 2 dimensions, got 10`);
    expect(bad('data.idx', good.subarray(0, 35))).toThrow(`${join(dir, 'data.idx')}: truncated IDX data (int [2, 3]): expected 36 bytes, got 35`);
    expect(bad('data.gz', gzipSync(good.subarray(0, 20)))).toThrow(`${join(dir, 'data.gz')}: truncated IDX data (int [2, 3]): expected 36 bytes, got 20 after decompression`);
  });

  it('trailing bytes name the file and their number', () => {
    expect(bad('trail.idx', Buffer.concat([good, Buffer.from([0, 0, 0])])))
      .toThrow(`${join(dir, 'trail.idx')}: 3 trailing bytes after the IDX data (int [2, 3]): expected 36 bytes, got 39`);
    expect(bad('trail.gz', gzipSync(Buffer.concat([good, Buffer.from([9])]))))
      .toThrow(`${join(dir, 'trail.gz')}: 1 trailing bytes after the IDX data (int [2, 3]): expected 36 bytes, got 37 after decompression`);
  });
});

/** The decompressed bytes of a file in `root`. */
const unzipped = (root: string, name: string) => gunzipSync(readFileSync(join(root, `${name}.gz`)));
const histogram = (labels: Uint8Array) => labels.reduce((h, l) => { h[l]++; return h; }, new Array(10).fill(0));

/** Checks a loaded set against the decompressed files, independently of the loader. */
function checkAgainstFiles(d: MnistData, root: string, prefix: string) {
  const px = unzipped(root, `${prefix}-images-idx3-ubyte`), lb = unzipped(root, `${prefix}-labels-idx1-ubyte`);
  expect(d.images.length).toBe(d.count * 784);
  expect(Array.from(d.labels)).toEqual(Array.from(lb.subarray(8, 8 + d.count)));
  for (const i of [0, 1, 12345 % d.count, d.count - 1]) {
    const want = Array.from(px.subarray(16 + i * 784, 16 + (i + 1) * 784), (b) => Math.fround(b / 255));
    expect(Array.from(d.images.subarray(i * 784, (i + 1) * 784))).toEqual(want);
  }
  let min = Infinity, max = -Infinity;
  for (const v of d.images) { if (v < min) min = v; if (v > max) max = v; }
  expect([min, max]).toEqual([0, 1]);
}

describe('MNIST', () => {
  let train: MnistData, test: MnistData;
  const warnings: string[] = [];
  beforeAll(() => {
    train = loadMnist({ root: MNIST, set: 'train', onWarning: (m) => warnings.push(m) });
    test = loadMnist({ root: MNIST, set: 'test', onWarning: (m) => warnings.push(m) });
  }, 60_000);

  it('loads the official files with no digest warning', () => {
    expect(warnings).toEqual([]);
    expect([train.count, train.rows, train.cols, train.labels.length]).toEqual([60000, 28, 28, 60000]);
    expect([test.count, test.rows, test.cols, test.labels.length]).toEqual([10000, 28, 28, 10000]);
    expect(train.labels[0]).toBe(5);
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // The label histograms of ../shared/data/README.md.
    expect(histogram(train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(histogram(test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  });

  it('gives pixels / 255 in [0, 1], in file order', () => {
    checkAgainstFiles(train, MNIST, 'train');
    checkAgainstFiles(test, MNIST, 't10k');
  });

  it('digests in the table are those of the decompressed files', () => {
    for (const name of Object.keys(MNIST_SHA256)) expect(MNIST_SHA256[name]).toEqual([sha256(unzipped(MNIST, name))]);
  });

  it('limit keeps the first examples', () => {
    const d = loadMnist({ root: MNIST, set: 'test', limit: 100, onWarning: (m) => { throw new Error(m); } });
    expect(d.count).toBe(100);
    expect(d.images).toEqual(test.images.subarray(0, 100 * 784));
    expect(d.labels).toEqual(test.labels.subarray(0, 100));
    expect(loadMnist({ root: MNIST, set: 'test', limit: 1e9 }).count).toBe(10000);
    expect(() => loadMnist({ root: MNIST, set: 'test', limit: -1 })).toThrow('MNIST: limit must be a non-negative integer, got -1');
  });

  /** A folder with decompressed copies of the test files, after `edit` changes their bytes. */
  const copy = (edit: (images: Buffer, labels: Buffer) => [Buffer, Buffer]) => {
    const dir = tmp();
    const [im, lb] = edit(unzipped(MNIST, 't10k-images-idx3-ubyte'), unzipped(MNIST, 't10k-labels-idx1-ubyte'));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), im);
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), lb);
    return dir;
  };

  it('a corrupted copy warns about its digest and still loads', () => {
    const at = 16 + 5 * 784 + 300;
    const dir = copy((im, lb) => { im[at] ^= 0xff; return [im, lb]; });
    const got: string[] = [];
    const d = loadMnist({ root: dir, set: 'test', onWarning: (m) => got.push(m) });
    const file = join(dir, 't10k-images-idx3-ubyte');
    expect(got).toHaveLength(1);
    expect(got[0]).toContain(`${file} has SHA-256 `);
    expect(got[0]).toContain(`expected ${MNIST_SHA256['t10k-images-idx3-ubyte'][0]}`);
    expect(d.count).toBe(10000);
    expect(d.images[at - 16]).toBe(Math.fround((Math.round(test.images[at - 16] * 255) ^ 0xff) / 255));
  });

  it('a truncated copy fails naming the file', () => {
    const dir = copy((im, lb) => [im, lb.subarray(0, lb.length - 1)]);
    expect(() => loadMnist({ root: dir, set: 'test', onWarning: () => {} }))
      .toThrow(`${join(dir, 't10k-labels-idx1-ubyte')}: truncated IDX data (ubyte [10000]): expected 10008 bytes, got 10007`);
    const gzDir = tmp();
    writeFileSync(join(gzDir, 't10k-images-idx3-ubyte.gz'), readFileSync(join(MNIST, 't10k-images-idx3-ubyte.gz')).subarray(0, 100000));
    writeFileSync(join(gzDir, 't10k-labels-idx1-ubyte.gz'), readFileSync(join(MNIST, 't10k-labels-idx1-ubyte.gz')));
    expect(() => loadMnist({ root: gzDir, set: 'test', onWarning: () => {} }))
      .toThrow(`${join(gzDir, 't10k-images-idx3-ubyte.gz')}: starts with the gzip magic but is not gzip-decodable`);
  });

  it('missing files, disagreeing counts, bad labels and bad shapes name the files', () => {
    const empty = tmp();
    expect(() => loadMnist({ root: empty, set: 'train' }))
      .toThrow(`MNIST: neither ${join(empty, 'train-images-idx3-ubyte')} nor ${join(empty, 'train-images-idx3-ubyte')}.gz found`);
    const quiet = { onWarning: () => {} };
    const write = (images: Buffer, labels: Buffer) => {
      const dir = tmp();
      writeFileSync(join(dir, 'train-images-idx3-ubyte'), images);
      writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(labels));
      return dir;
    };
    const three = encodeIdx('ubyte', [3, 28, 28], valuesOf('ubyte', 3 * 784));
    let dir = write(three, encodeIdx('ubyte', [2], [1, 2]));
    expect(() => loadMnist({ root: dir, set: 'train', ...quiet }))
      .toThrow(`MNIST: ${join(dir, 'train-images-idx3-ubyte')} has 3 images but ${join(dir, 'train-labels-idx1-ubyte.gz')} has 2 labels`);
    dir = write(three, encodeIdx('ubyte', [3], [1, 10, 2]));
    expect(() => loadMnist({ root: dir, set: 'train', ...quiet }))
      .toThrow(`${join(dir, 'train-labels-idx1-ubyte.gz')}: label 10 at index 1 is outside 0..9`);
    dir = write(encodeIdx('ubyte', [2, 27, 28], valuesOf('ubyte', 2 * 27 * 28)), encodeIdx('ubyte', [2], [1, 2]));
    expect(() => loadMnist({ root: dir, set: 'train', ...quiet }))
      .toThrow(`${join(dir, 'train-images-idx3-ubyte')}: expected ubyte images [n, 28, 28], got ubyte [2, 27, 28]`);
    dir = write(three, encodeIdx('int', [3], [1, 2, 3]));
    expect(() => loadMnist({ root: dir, set: 'train', ...quiet }))
      .toThrow(`${join(dir, 'train-labels-idx1-ubyte.gz')}: expected ubyte labels [n], got int [3]`);
    // A well-formed small set loads (with digest warnings naming both files).
    dir = write(three, encodeIdx('ubyte', [3], [9, 0, 4]));
    const got: string[] = [];
    const d = loadMnist({ root: dir, set: 'train', onWarning: (m) => got.push(m) });
    expect([d.count, Array.from(d.labels)]).toEqual([3, [9, 0, 4]]);
    expect(got).toHaveLength(2);
    expect(got[0]).toContain(join(dir, 'train-images-idx3-ubyte'));
    expect(got[1]).toContain(`${join(dir, 'train-labels-idx1-ubyte.gz')} has SHA-256 ${sha256(encodeIdx('ubyte', [3], [9, 0, 4]))} (decompressed)`);
  });
});

describe('Fashion-MNIST (Debian dataset-fashion-mnist)', () => {
  let train: MnistData, test: MnistData;
  const warnings: string[] = [];
  beforeAll(() => {
    train = loadFashionMnist({ root: FASHION_MNIST_DEBIAN_DIR, set: 'train', onWarning: (m) => warnings.push(m) });
    test = loadFashionMnist({ root: FASHION_MNIST_DEBIAN_DIR, set: 'test', onWarning: (m) => warnings.push(m) });
  }, 60_000);

  it('loads Debian\'s files with no digest warning', () => {
    expect(warnings).toEqual([]);
    expect([train.count, test.count]).toEqual([60000, 10000]);
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(histogram(train.labels)).toEqual(new Array(10).fill(6000));
    expect(histogram(test.labels)).toEqual(new Array(10).fill(1000));
    checkAgainstFiles(train, FASHION_MNIST_DEBIAN_DIR, 'train');
    checkAgainstFiles(test, FASHION_MNIST_DEBIAN_DIR, 't10k');
  });

  it('digests in the table are those of the decompressed files', () => {
    for (const name of Object.keys(FASHION_MNIST_SHA256)) {
      expect(FASHION_MNIST_SHA256[name]).toEqual([sha256(unzipped(FASHION_MNIST_DEBIAN_DIR, name))]);
    }
  });

  it('each loader warns about the other data set\'s files', () => {
    const got: string[] = [];
    loadFashionMnist({ root: MNIST, set: 'test', onWarning: (m) => got.push(m) });
    loadMnist({ root: FASHION_MNIST_DEBIAN_DIR, set: 'test', onWarning: (m) => got.push(m) });
    expect(got).toHaveLength(4);
    expect(got[0]).toContain(`${join(MNIST, 't10k-images-idx3-ubyte.gz')} has SHA-256 ${MNIST_SHA256['t10k-images-idx3-ubyte'][0]} (decompressed), expected ${FASHION_MNIST_SHA256['t10k-images-idx3-ubyte'][0]} (the official Fashion-MNIST`);
    expect(got[3]).toContain(`${join(FASHION_MNIST_DEBIAN_DIR, 't10k-labels-idx1-ubyte.gz')} has SHA-256 ${FASHION_MNIST_SHA256['t10k-labels-idx1-ubyte'][0]} (decompressed), expected ${MNIST_SHA256['t10k-labels-idx1-ubyte'][0]} (the official MNIST`);
  });
});
