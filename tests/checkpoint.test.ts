// Checkpoints in the safetensors format: the bytes on disk are checked with a reader written here from
// the format's specification (not with our decoder), then round trips, damaged files, atomic writes
// and the legacy JSON format.

import { describe, it, expect, beforeAll, vi, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, existsSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, tensor, Tensor, saveCheckpoint, loadCheckpoint, encodeCheckpoint, decodeCheckpoint, encodeSafetensors, decodeSafetensors } from '../index.js';
import { isTransposedInFile } from '../engine/checkpoint.js';

beforeAll(async () => { await init({ backend: 'wasm' }); });
afterEach(() => { vi.restoreAllMocks(); });

const dir = () => mkdtempSync(join(tmpdir(), 'metagrad-ckpt-'));

/**
 * The spec, independently: u64 little-endian header size N, N bytes of UTF-8 JSON, then the data
 * buffer; each tensor's data_offsets are relative to the data buffer and the ranges tile it.
 */
function readSpec(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const dataStart = 8 + n, data = bytes.subarray(dataStart);
  const tensors: Record<string, { dtype: string; shape: number[]; offsets: [number, number]; values: Float32Array | Float64Array }> = {};
  let expectBegin = 0;
  const entries = Object.entries<any>(header).filter(([k]) => k !== '__metadata__')
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  for (const [name, e] of entries) {
    expect(['F32', 'F64']).toContain(e.dtype);
    const [begin, end] = e.data_offsets;
    expect(begin).toBe(expectBegin); // contiguous, no holes
    const width = e.dtype === 'F32' ? 4 : 8;
    expect(end - begin).toBe(e.shape.reduce((a: number, b: number) => a * b, 1) * width);
    const slice = data.slice(begin, end).buffer;
    tensors[name] = { dtype: e.dtype, shape: e.shape, offsets: [begin, end], values: e.dtype === 'F32' ? new Float32Array(slice) : new Float64Array(slice) };
    expectBegin = end;
  }
  expect(expectBegin).toBe(data.length);
  return { headerLength: n, dataStart, keys: Object.keys(header), metadata: header.__metadata__, tensors };
}

const seq = (n: number, k = 0) => Array.from({ length: n }, (_, i) => i + k + 0.5);
const bits = (a: Float32Array | Float64Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

describe('checkpoint file layout (read with a spec reader)', () => {
  it('writes header fields, an 8-byte aligned data start, PyTorch-layout weights and JSON-string metadata', async () => {
    const d = dir(), file = join(d, 'run', 'checkpoint.safetensors'); // 'run' does not exist yet
    const tree = {
      params: {
        head: { w: tensor(seq(6), [3, 2]), b: tensor([1, 2], [2]) },
        conv: { w: tensor(seq(4 * 2 * 9), [4, 2, 3, 3]) },
        lstm: { wx: tensor(seq(2 * 8), [2, 8], { dtype: 'float64' }), wh: tensor(seq(2 * 8, 100), [2, 8]) },
      },
    };
    await saveCheckpoint(file, tree, { iteration: 7, config: { lr: 0.1, name: 'sine' } });
    const f = readSpec(new Uint8Array(readFileSync(file)));
    expect(f.dataStart % 8).toBe(0);
    expect(f.keys.filter((k) => k !== '__metadata__')).toEqual(
      ['params.conv.w', 'params.head.b', 'params.head.w', 'params.lstm.wh', 'params.lstm.wx']);
    // Linear weight [in=3, out=2] is stored [out, in]: row o holds w[:, o].
    expect(f.tensors['params.head.w'].shape).toEqual([2, 3]);
    expect(Array.from(f.tensors['params.head.w'].values)).toEqual([0.5, 2.5, 4.5, 1.5, 3.5, 5.5]);
    // Conv weight is already [out, in, kh, kw]: stored as is.
    expect(f.tensors['params.conv.w'].shape).toEqual([4, 2, 3, 3]);
    expect(Array.from(f.tensors['params.conv.w'].values)).toEqual(seq(72));
    // LSTM weights [in, 4h] -> PyTorch weight_ih [4h, in]; dtype kept.
    expect(f.tensors['params.lstm.wx']).toMatchObject({ dtype: 'F64', shape: [8, 2] });
    expect(f.tensors['params.lstm.wx'].values[1]).toBe(8.5); // [0][1] in the file = wx[1][0]
    expect(f.tensors['params.lstm.wh']).toMatchObject({ dtype: 'F32', shape: [8, 2] });
    expect(f.tensors['params.head.b']).toMatchObject({ dtype: 'F32', shape: [2], offsets: [f.tensors['params.conv.w'].offsets[1], f.tensors['params.conv.w'].offsets[1] + 8] });
    expect(f.metadata).toEqual({ iteration: '7', config: JSON.stringify({ lr: 0.1, name: 'sine' }) });
    expect(readdirSync(join(d, 'run'))).toEqual(['checkpoint.safetensors']); // no temporaries left
  });

  it('transposes rank-2 w/wx/wh, with or without a prefix, and nothing else', () => {
    expect(isTransposedInFile('w', [3, 2])).toBe(true);
    expect(isTransposedInFile('params.head.w', [3, 2])).toBe(true);
    expect(isTransposedInFile('optimizer.m.params.head.w', [3, 2])).toBe(true);
    expect(isTransposedInFile('params.lstm.wx', [2, 8])).toBe(true);
    expect(isTransposedInFile('params.lstm.wh', [2, 8])).toBe(true);
    expect(isTransposedInFile('params.conv.w', [4, 2, 3, 3])).toBe(false);
    expect(isTransposedInFile('params.head.b', [2])).toBe(false);
    expect(isTransposedInFile('params.head.w', [6])).toBe(false);
    expect(isTransposedInFile('params.neww', [3, 2])).toBe(false);
    expect(isTransposedInFile('params.w.scale', [3, 2])).toBe(false);
  });

  it('keeps engine/checkpoint.ts loadable in a browser (no top-level node: imports)', () => {
    const src = readFileSync(new URL('../engine/checkpoint.ts', import.meta.url), 'utf8');
    expect(src).not.toMatch(/^\s*import[^(]*['"]node:/m);
  });
});

describe('round trips', () => {
  // Deterministic values covering the awkward cases: signed zeros, denormals, extremes, infinities.
  function values(n: number, special: number[]): number[] {
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 10 ** ((s % 13) - 6);
    return [...special, ...Array.from({ length: n - special.length }, rnd)];
  }
  const f32special = [-0, 0, 1.401298464324817e-45, -1.401298464324817e-45, 1.1754942106924411e-38, 3.4028234663852886e38, -3.4028234663852886e38, Infinity, -Infinity];
  const f64special = [-0, 0, 5e-324, -5e-324, 2.225073858507201e-308, 1.7976931348623157e308, -1.7976931348623157e308, Infinity, -Infinity, 0.1 + 0.2];

  it('float32 and float64 tensors round-trip bit for bit (transposed ones too)', async () => {
    const tree = {
      a: tensor(Float32Array.from(values(24, f32special)), [2, 3, 4], { dtype: 'float32' }),
      lin: { w: tensor(Float32Array.from(values(15, f32special)), [5, 3], { dtype: 'float32' }) },
      b: [tensor(Float64Array.from(values(20, f64special)), [20], { dtype: 'float64' }), tensor(Float64Array.from(values(12, f64special)), [4, 3], { dtype: 'float64' })],
      w: tensor(Float64Array.from(values(12, f64special)), [3, 4], { dtype: 'float64' }),
      s: tensor(3.25, [], { dtype: 'float64' }),
      empty: tensor([], [0, 3]),
    };
    const file = join(dir(), 'x.safetensors');
    await saveCheckpoint(file, tree);
    const { tensors, metadata } = await loadCheckpoint(file);
    expect(metadata).toEqual({});
    const want: Record<string, Tensor> = { a: tree.a, 'lin.w': tree.lin.w, 'b.0': tree.b[0], 'b.1': tree.b[1], w: tree.w, s: tree.s, empty: tree.empty };
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(want).sort());
    for (const [k, t] of Object.entries(want)) {
      expect(tensors[k].dtype, k).toBe(t.dtype);
      expect(tensors[k].shape, k).toEqual(t.shape);
      const [got, exp] = [await tensors[k].data(), await t.data()];
      expect(got.constructor, k).toBe(exp.constructor);
      expect(bits(got), k).toEqual(bits(exp));
    }
    expect(Object.is((await tensors.a.data())[0], -0)).toBe(true);
  });

  it('metadata round-trips through JSON strings', async () => {
    const meta = { iteration: 1500, lr: 1e-3, name: 'omniglot', done: false, none: null, list: [1, 'two', { three: 3 }], config: { a: { b: [0.5] } }, text: '{"not": "parsed twice"}' };
    const bytes = await encodeCheckpoint({ p: { w: tensor([1, 2, 3, 4], [2, 2]) } }, meta);
    const { tensors, metadata } = decodeCheckpoint(bytes, 'mem');
    expect(metadata).toEqual(meta);
    expect(await tensors['p.w'].array()).toEqual([[1, 2], [3, 4]]);
  });

  it('the raw codec round-trips and reads plain-string metadata of other tools', () => {
    const a = new Float32Array([1, -0, 3]), b = new Float64Array([Math.PI]);
    const bytes = encodeSafetensors({ z: { dtype: 'float32', shape: [3], data: a }, y: { dtype: 'float64', shape: [1, 1], data: b } }, { format: 'pt' });
    const { tensors, metadata } = decodeSafetensors(bytes, 'mem');
    expect(metadata).toEqual({ format: 'pt' });
    expect(bits(tensors.z.data)).toEqual(bits(a));
    expect(tensors.y).toEqual({ dtype: 'float64', shape: [1, 1], data: b });
    expect(decodeCheckpoint(bytes).metadata).toEqual({ format: 'pt' });
    // A view at an odd offset into a larger buffer (as a Node Buffer from a pool can be) reads the same.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(decodeSafetensors(shifted.subarray(3), 'mem').tensors).toEqual(tensors);
  });

  it('concurrent saves of one file in one process do not clobber each other', async () => {
    const d = dir(), file = join(d, 'c.safetensors');
    await Promise.all([1, 2, 3, 4, 5].map((i) => saveCheckpoint(file, { w: tensor([i], [1]) }, { i })));
    const { metadata, tensors } = await loadCheckpoint(file);
    expect((await tensors.w.data())[0]).toBe(metadata.i);
    expect(readdirSync(d)).toEqual(['c.safetensors']);
  });
});

describe('damaged files give errors naming the file and the fault', () => {
  let good: Uint8Array, headerLength: number;
  beforeAll(async () => {
    good = await encodeCheckpoint({ params: { w: tensor(seq(12), [3, 4]), b: tensor(seq(4), [4]) } }, { iteration: 3 });
    headerLength = readSpec(good).headerLength;
  });
  const load = async (bytes: Uint8Array) => {
    const file = join(dir(), 'runs', 'x', 'checkpoint.safetensors');
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, bytes);
    return { file, result: loadCheckpoint(file) };
  };
  const header = (h: unknown, data = new Uint8Array(0)) => {
    const json = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  };

  it('truncated in the header', async () => {
    const { file, result } = await load(good.slice(0, 40));
    await expect(result).rejects.toThrow(`${file}: truncated: the header says ${headerLength} bytes but the file has 40`);
  });

  it('truncated in the data', async () => {
    const { file, result } = await load(good.slice(0, good.length - 10));
    await expect(result).rejects.toThrow(new RegExp(`^${file}: tensor 'params\\.\\w' data \\[\\d+, \\d+\\) runs past the end of the data \\(\\d+ bytes\\): the file is truncated`));
  });

  it('empty, or shorter than the length field', async () => {
    let { file, result } = await load(new Uint8Array(0));
    await expect(result).rejects.toThrow(`${file}: file is empty`);
    ({ file, result } = await load(good.slice(0, 5)));
    await expect(result).rejects.toThrow(`${file}: truncated`);
  });

  it('garbage header bytes', async () => {
    const bad = good.slice();
    bad.fill(0xff, 20, 30);
    const { file, result } = await load(bad);
    await expect(result).rejects.toThrow(`${file}: header is not valid JSON (`);
  });

  it('a huge header length', async () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, 8_000_000_000_000_000_000n, true);
    const { file, result } = await load(bad);
    await expect(result).rejects.toThrow(`${file}: not a safetensors file (header length 8.0e18 exceeds the file)`);
  });

  it('a missing file', async () => {
    const file = join(dir(), 'nope.safetensors');
    await expect(loadCheckpoint(file)).rejects.toThrow(`${file}: cannot read checkpoint (ENOENT)`);
  });

  it('structural faults in the header', () => {
    const f32 = (n: number) => new Uint8Array(n * 4);
    const cases: [Uint8Array, string][] = [
      [header([1, 2]), 'src: header is not a JSON object'],
      [header({ 'params.w': { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, f32(1)), "src: tensor 'params.w' has dtype BF16 (only F32 and F64 are read)"],
      [header({ 'params.w': { dtype: 'F32', shape: [3, 4], data_offsets: [0, 40] } }, f32(10)), "src: tensor 'params.w' shape [3,4] needs 48 bytes but its offsets cover 40"],
      [header({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)), "src: tensor 'b' data [4, 12) overlaps tensor 'a' [0, 8)"],
      [header({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(3)), 'src: bytes [4, 8) of the data belong to no tensor'],
      [header({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), 'src: bytes [4, 8) of the data belong to no tensor'],
      [header({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, f32(1)), "src: tensor 'a' data_offsets [4, 0) are reversed"],
      [header({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), "src: tensor 'a' has shape [-1], not a list of non-negative integers"],
      [header({ __metadata__: { step: 3 } }), "src: __metadata__ value 'step' is 3, not a string"],
      [header({ a: 1 }), "src: tensor 'a' has no dtype, shape and data_offsets"],
    ];
    for (const [bytes, msg] of cases) expect(() => decodeSafetensors(bytes, 'src'), msg).toThrow(msg);
  });
});

describe('atomic writes', () => {
  it('a target folder that is a file fails with the path named', async () => {
    const d = dir();
    writeFileSync(join(d, 'blocker'), 'x');
    const file = join(d, 'blocker', 'checkpoint.safetensors');
    await expect(saveCheckpoint(file, { w: tensor([1], [1]) })).rejects.toThrow(`${file}: cannot write checkpoint (`);
  });

  it('a failed write leaves the previous checkpoint intact and no temporary behind', async () => {
    const d = dir(), file = join(d, 'checkpoint.safetensors');
    await saveCheckpoint(file, { w: tensor([1, 2], [2]) }, { iteration: 1 });
    const before = readFileSync(file);
    // Block the next temporary's path with a folder so opening it fails mid-save.
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const tmp = `${file}.${process.pid}.${(0.5).toString(36).slice(2, 10)}.tmp`;
    mkdirSync(tmp);
    await expect(saveCheckpoint(file, { w: tensor([3, 4], [2]) }, { iteration: 2 })).rejects.toThrow(`${file}: cannot write checkpoint (EISDIR)`);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect((await loadCheckpoint(file)).metadata).toEqual({ iteration: 1 });
    // A failure before any byte is written (a disposed tensor) leaves it intact too.
    const gone = tensor([5, 6], [2]);
    gone.dispose();
    await expect(saveCheckpoint(file, { w: gone })).rejects.toThrow(/disposed/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('removes stale temporaries of dead writers (and its own old ones), keeping live writers\' and other files\'', async () => {
    const d = dir(), file = join(d, 'checkpoint.safetensors');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited, so its pid is not running
    const stale = [`checkpoint.safetensors.${dead}.k3j2.tmp`, `checkpoint.safetensors.${process.pid}.old.tmp`];
    const kept = [`checkpoint.safetensors.${process.ppid}.live.tmp`, `other.safetensors.${dead}.k3j2.tmp`, 'checkpoint.safetensors.notes'];
    for (const f of [...stale, ...kept]) writeFileSync(join(d, f), 'partial');
    await saveCheckpoint(file, { w: tensor([1], [1]) });
    for (const f of stale) expect(existsSync(join(d, f)), f).toBe(false);
    expect(readdirSync(d).sort()).toEqual(['checkpoint.safetensors', ...kept].sort());
  });
});

describe('legacy JSON checkpoints', () => {
  it('are read in our own layout, flagged, with a deprecation warning', async () => {
    const file = join(dir(), 'checkpoint.json');
    writeFileSync(file, JSON.stringify({
      format: 'metagrad-checkpoint-1', meta: { iteration: 500, config: { lr: 0.01 } },
      tensors: { 'head.w': { shape: [3, 2], dtype: 'float32', values: seq(6) }, 'head.b': { shape: [2], dtype: 'float64', values: [0.1, -0.2] } },
    }));
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const { tensors, metadata } = await loadCheckpoint(file);
    expect(metadata).toEqual({ iteration: 500, config: { lr: 0.01 }, legacyFormat: true });
    expect(tensors['head.w'].shape).toEqual([3, 2]); // not transposed
    expect(Array.from(await tensors['head.w'].data())).toEqual(seq(6));
    expect(tensors['head.b'].dtype).toBe('float64');
    expect(Array.from(await tensors['head.b'].data())).toEqual([0.1, -0.2]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toBe(`${file}: JSON checkpoints are deprecated; re-save as checkpoint.safetensors`);
  });

  it('rejects JSON that is not a metagrad checkpoint', async () => {
    const file = join(dir(), 'checkpoint.json');
    writeFileSync(file, '{"hello": 1}');
    await expect(loadCheckpoint(file)).rejects.toThrow(`${file}: not a metagrad checkpoint`);
  });
});
