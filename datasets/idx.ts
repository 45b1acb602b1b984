// IDX files (LeCun's format for MNIST and its drop-in replacements) and the MNIST / Fashion-MNIST
// loaders built on them, raw or gzip-compressed, for small image-classification optimizees (the
// learned-optimiser experiments train an MNIST MLP). Checksums are over the decompressed bytes, so a
// re-compressed copy (Debian's Fashion-MNIST .gz files differ from upstream's) is still recognised.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export type IdxType = 'ubyte' | 'sbyte' | 'short' | 'int' | 'float' | 'double';
export type IdxArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxFile {
  /** Dimension sizes, outermost first (for MNIST images [n, 28, 28]). */
  dims: number[];
  /** The values in row-major order, in the array type matching the file's type code. */
  data: IdxArray;
  /** The file's element type (type code 0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int, 0x0D float, 0x0E double). */
  type: IdxType;
}

const TYPES: Record<number, { type: IdxType; size: number }> = {
  0x08: { type: 'ubyte', size: 1 },
  0x09: { type: 'sbyte', size: 1 },
  0x0b: { type: 'short', size: 2 },
  0x0c: { type: 'int', size: 4 },
  0x0d: { type: 'float', size: 4 },
  0x0e: { type: 'double', size: 8 },
};
const hex = (n: number, digits: number) => '0x' + n.toString(16).padStart(digits, '0');

/** A file's bytes, decompressed when they start with the gzip magic 1f 8b (whatever the name). */
function readBytes(file: string): { bytes: Buffer; gzipped: boolean } {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e: any) {
    if (e.code === 'ENOENT') throw new Error(`${file}: not found`);
    throw new Error(`${file}: cannot read (${e.code ?? e.message})`);
  }
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return { bytes: raw, gzipped: false };
  try {
    return { bytes: gunzipSync(raw), gzipped: true };
  } catch (e: any) {
    throw new Error(`${file}: starts with the gzip magic but is not gzip-decodable (${e.message})`);
  }
}

/** Parses IDX bytes (already decompressed); `file` and `gzipped` only word the errors. */
function parseIdx(bytes: Uint8Array, file: string, gzipped: boolean): IdxFile {
  const after = gzipped ? ' after decompression' : '';
  const fail = (msg: string): never => { throw new Error(`${file}: ${msg}`); };
  if (bytes.length < 4) fail(`truncated IDX header: expected at least 4 bytes, got ${bytes.length}${after}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(`not an IDX file: bad magic ${hex(view.getUint32(0), 8)} (an IDX file starts with two zero bytes, a type code and the number of dimensions)`);
  }
  const info = TYPES[bytes[2]];
  if (!info) fail(`unknown IDX type code ${hex(bytes[2], 2)} (known: 0x08 ubyte, 0x09 sbyte, 0x0b short, 0x0c int, 0x0d float, 0x0e double)`);
  const ndims = bytes[3], header = 4 + 4 * ndims;
  if (bytes.length < header) fail(`truncated IDX header: expected ${header} bytes for ${ndims} dimensions, got ${bytes.length}${after}`);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = header + count * info.size;
  const shape = `${info.type} [${dims.join(', ')}]`;
  if (bytes.length < expected) fail(`truncated IDX data (${shape}): expected ${expected} bytes, got ${bytes.length}${after}`);
  if (bytes.length > expected) {
    fail(`${bytes.length - expected} trailing bytes after the IDX data (${shape}): expected ${expected} bytes, got ${bytes.length}${after}`);
  }
  let data: IdxArray;
  switch (info.type) {
    // Copies (not views: a Buffer's slice is a view, and its memory may be shared), as plain typed arrays.
    case 'ubyte': data = new Uint8Array(bytes.subarray(header, expected)); break;
    case 'sbyte': data = new Int8Array(bytes.buffer, bytes.byteOffset + header, count).slice(); break;
    case 'short': data = Int16Array.from({ length: count }, (_, i) => view.getInt16(header + 2 * i)); break;
    case 'int': data = Int32Array.from({ length: count }, (_, i) => view.getInt32(header + 4 * i)); break;
    case 'float': data = Float32Array.from({ length: count }, (_, i) => view.getFloat32(header + 4 * i)); break;
    case 'double': data = Float64Array.from({ length: count }, (_, i) => view.getFloat64(header + 8 * i)); break;
  }
  return { dims, data: data!, type: info.type };
}

/**
 * Reads an IDX file, raw or gzip-compressed (told apart by the gzip magic 1f 8b, not by the name).
 * Errors name the file and the fault: not found, not gzip-decodable, bad magic, unknown type code,
 * truncated header or data (expected N bytes, got M), trailing bytes.
 */
export function readIdx(file: string): IdxFile {
  const { bytes, gzipped } = readBytes(file);
  return parseIdx(bytes, file, gzipped);
}

export interface MnistOptions {
  /** Folder holding the four standard files (train-images-idx3-ubyte, ...), each raw or with .gz. */
  root: string;
  set: 'train' | 'test';
  /**
   * One-line warnings: a file whose SHA-256 (of its decompressed bytes) is not a known one (see
   * MNIST_SHA256, FASHION_MNIST_SHA256); the file is loaded anyway. Default: console.warn.
   */
  onWarning?: (message: string) => void;
  /** Keep only the first `limit` examples (all of them when absent or larger than the set). */
  limit?: number;
}

export interface MnistData {
  /** count x 28 x 28 pixels, row-major, as byte / 255 in [0, 1] (0 = background). */
  images: Float32Array;
  /** count labels in 0..9. */
  labels: Uint8Array;
  count: number;
  rows: 28;
  cols: 28;
}

/**
 * SHA-256 of the decompressed MNIST files, by file name without .gz. The gzip files these come from
 * are the official ones (MD5 f68b3c2dcbeaaa9fbdd348bbdeb94873, d53e105ee54ea40749a09fcbcd1e9432,
 * 9fb629c4189551a2d022fa330f9573f3, ec29112dd5afa0611ce80d1b7f02629c), byte-identical copies of
 * which are in ../shared/data/mnist (see its README).
 */
export const MNIST_SHA256: Readonly<Record<string, readonly string[]>> = {
  'train-images-idx3-ubyte': ['ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db'],
  'train-labels-idx1-ubyte': ['65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5'],
  't10k-images-idx3-ubyte': ['0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7'],
  't10k-labels-idx1-ubyte': ['ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2'],
};

/**
 * SHA-256 of the decompressed Fashion-MNIST files (Xiao et al. 2017), by file name without .gz,
 * computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1. Debian's .gz files differ
 * from zalandoresearch/fashion-mnist's (e.g. train-images MD5 cf8536b0aa1a6ac5fa3f23001093305c, not
 * 8d4fb7e6c68d591d4c3dfef9ec88bf0d), but the decompressed bytes are upstream's: their MD5s
 * (f4a8712d7a061bf5bd6d2ca38dc4d50a, 9018921c3c673c538a1fc5bad174d6f9, 8181f5470baa50b63fa0f6fddb340f0a,
 * 15d484375f8d13e6eb1aabb0c3f46965) are the raw-file MD5s that other loaders check for the upstream set.
 */
export const FASHION_MNIST_SHA256: Readonly<Record<string, readonly string[]>> = {
  'train-images-idx3-ubyte': ['c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888'],
  'train-labels-idx1-ubyte': ['bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9'],
  't10k-images-idx3-ubyte': ['5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b'],
  't10k-labels-idx1-ubyte': ['0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'],
};

/** Where Debian's package dataset-fashion-mnist installs the four .gz files. */
export const FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const ROWS = 28, COLS = 28, CLASSES = 10;

function loadDigits(dataset: string, table: Readonly<Record<string, readonly string[]>>, opts: MnistOptions): MnistData {
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  if (opts.set !== 'train' && opts.set !== 'test') throw new Error(`${dataset}: set must be 'train' or 'test', got '${opts.set}'`);
  const { limit } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
    throw new Error(`${dataset}: limit must be a non-negative integer, got ${limit}`);
  }
  const prefix = opts.set === 'train' ? 'train' : 't10k';
  const read = (name: string) => {
    const raw = join(opts.root, name), gz = raw + '.gz';
    const file = existsSync(raw) ? raw : existsSync(gz) ? gz : null;
    if (!file) throw new Error(`${dataset}: neither ${raw} nor ${gz} found (expected the standard ${dataset} IDX files in ${opts.root})`);
    const { bytes, gzipped } = readBytes(file);
    const digest = sha256(bytes), known = table[name];
    if (!known.includes(digest)) {
      warn(`metagrad: ${file} has SHA-256 ${digest}${gzipped ? ' (decompressed)' : ''}, expected ${known[0]} ` +
        `(the official ${dataset} ${name}); loading it anyway`);
    }
    return { file, idx: parseIdx(bytes, file, gzipped) };
  };
  const img = read(`${prefix}-images-idx3-ubyte`), lab = read(`${prefix}-labels-idx1-ubyte`);
  const { dims: id } = img.idx, { dims: ld } = lab.idx;
  if (img.idx.type !== 'ubyte' || id.length !== 3 || id[1] !== ROWS || id[2] !== COLS) {
    throw new Error(`${img.file}: expected ubyte images [n, ${ROWS}, ${COLS}], got ${img.idx.type} [${id.join(', ')}]`);
  }
  if (lab.idx.type !== 'ubyte' || ld.length !== 1) throw new Error(`${lab.file}: expected ubyte labels [n], got ${lab.idx.type} [${ld.join(', ')}]`);
  if (id[0] !== ld[0]) throw new Error(`${dataset}: ${img.file} has ${id[0]} images but ${lab.file} has ${ld[0]} labels`);
  const allLabels = lab.idx.data as Uint8Array;
  const bad = allLabels.findIndex((v) => v >= CLASSES);
  if (bad >= 0) throw new Error(`${lab.file}: label ${allLabels[bad]} at index ${bad} is outside 0..${CLASSES - 1}`);
  const count = Math.min(id[0], limit ?? Infinity), per = ROWS * COLS;
  const pixels = img.idx.data as Uint8Array;
  const images = new Float32Array(count * per);
  for (let i = 0; i < images.length; i++) images[i] = pixels[i] / 255;
  return { images, labels: allLabels.slice(0, count), count, rows: ROWS, cols: COLS };
}

/**
 * MNIST (LeCun et al.) from opts.root: train-images-idx3-ubyte and train-labels-idx1-ubyte for 'train'
 * (60,000), t10k-... for 'test' (10,000), each raw or .gz (the raw file when both exist). A file whose
 * decompressed SHA-256 is not in MNIST_SHA256 gives a warning and is loaded anyway; malformed files,
 * image and label counts that disagree and labels outside 0..9 are errors naming the file.
 */
export function loadMnist(opts: MnistOptions): MnistData {
  return loadDigits('MNIST', MNIST_SHA256, opts);
}

/**
 * Fashion-MNIST (Xiao et al. 2017; same file names, sizes and format as MNIST, labels are 10 clothing
 * classes), checked against FASHION_MNIST_SHA256. Debian's dataset-fashion-mnist installs it in
 * FASHION_MNIST_DEBIAN_DIR.
 */
export function loadFashionMnist(opts: MnistOptions): MnistData {
  return loadDigits('Fashion-MNIST', FASHION_MNIST_SHA256, opts);
}
