// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw little-endian data. The format is read by PyTorch, JAX and the Hub's tools without running
// any code, so our checkpoints can be inspected and loaded elsewhere, and it is trivially streamable.
//
// The codec (encode/decode*) is pure and browser-safe; only save/loadCheckpoint touch the file system,
// and they import node: modules lazily so the unbundled ESM build still loads in a browser.

import { Tensor } from './tensor.js';
import { tensor } from './ops.js';
import { treeLeaves, treePaths } from './pytree.js';

/** Pure, browser-safe codec for the safetensors format. */
export interface RawTensor { dtype: 'float32' | 'float64'; shape: number[]; data: Float32Array | Float64Array }

const FILE_DTYPE = { float32: 'F32', float64: 'F64' } as const;
const OUR_DTYPE: Record<string, RawTensor['dtype']> = { F32: 'float32', F64: 'float64' };
const BYTES = { float32: 4, float64: 8 } as const;
// The reference implementation refuses headers over 100 MB; past that a "length" is garbage, not truncation.
const MAX_HEADER = 100_000_000;

// We write typed-array bytes as they lie in memory; the format is little-endian.
function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('checkpoint: big-endian hosts are not supported');
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
// Header lengths read from garbage are ~1e18: print them short.
const big = (n: bigint) => (n < 10n ** 15n ? String(n) : Number(n).toExponential(1).replace('e+', 'e'));

export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata: Record<string, string> = {}): Uint8Array {
  assertLittleEndian();
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`encodeSafetensors: metadata '${k}' is a ${typeof v}, but safetensors metadata values must be strings`);
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  // Sorted names make the file a function of its contents (diffable, hashable).
  const names = Object.keys(tensors).sort();
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (name === '__metadata__') throw new Error(`encodeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t.dtype in FILE_DTYPE)) throw new Error(`encodeSafetensors: tensor '${name}' has dtype ${t.dtype} (only float32 and float64 are written)`);
    const want = t.dtype === 'float32' ? Float32Array : Float64Array;
    if (!(t.data instanceof want)) throw new Error(`encodeSafetensors: tensor '${name}' is ${t.dtype} but its data is a ${t.data.constructor.name}`);
    if (size(t.shape) !== t.data.length) throw new Error(`encodeSafetensors: tensor '${name}' has shape [${t.shape}] but ${t.data.length} values`);
    header[name] = { dtype: FILE_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Trailing spaces (allowed by the spec) put the data at an 8-byte boundary, so readers can map
  // Float64Arrays straight onto the file.
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): { tensors: Record<string, RawTensor>; metadata: Record<string, string> } {
  assertLittleEndian();
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  if (bytes.length === 0) fail('file is empty');
  if (bytes.length < 8) fail(`truncated: the file has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const room = BigInt(bytes.length - 8);
  if (n > room) {
    if (n > BigInt(MAX_HEADER) || (bytes.length > 8 && bytes[8] !== 0x7b)) fail(`not a safetensors file (header length ${big(n)} exceeds the file)`);
    fail(`truncated: the header says ${n} bytes but the file has ${bytes.length}`);
  }
  const hlen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hlen)));
  } catch (e: any) {
    fail(`header is not valid JSON (${e.message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const data = bytes.subarray(8 + hlen);
  const metadata: Record<string, string> = {};
  const ranges: { name: string; begin: number; end: number }[] = [];
  const tensors: Record<string, RawTensor> = {};
  for (const [name, entry] of Object.entries(header as Record<string, any>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') fail(`__metadata__ value '${k}' is ${JSON.stringify(v)}, not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object') fail(`tensor '${name}' has no dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: off } = entry;
    const isIndex = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    if (typeof dtype !== 'string') fail(`tensor '${name}' has no dtype`);
    if (!(dtype in OUR_DTYPE)) fail(`tensor '${name}' has dtype ${dtype} (only F32 and F64 are read)`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) fail(`tensor '${name}' has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isIndex)) fail(`tensor '${name}' has data_offsets ${JSON.stringify(off)}, not [begin, end]`);
    const [begin, end] = off as [number, number];
    if (begin > end) fail(`tensor '${name}' data_offsets [${begin}, ${end}) are reversed`);
    if (end > data.length) fail(`tensor '${name}' data [${begin}, ${end}) runs past the end of the data (${data.length} bytes): the file is truncated`);
    const dt = OUR_DTYPE[dtype];
    const need = size(shape) * BYTES[dt];
    if (need !== end - begin) fail(`tensor '${name}' shape [${shape}] needs ${need} bytes but its offsets cover ${end - begin}`);
    ranges.push({ name, begin, end });
    // Copy to a fresh buffer: aligned for the typed array whatever bytes.byteOffset is, and the tensors
    // do not keep the (possibly huge) file alive. Not data.slice(): on a Node Buffer that is a view.
    const buf = new ArrayBuffer(end - begin);
    new Uint8Array(buf).set(data.subarray(begin, end));
    tensors[name] = { dtype: dt, shape: [...shape], data: dt === 'float32' ? new Float32Array(buf) : new Float64Array(buf) };
  }
  // The spec forbids holes and overlaps: sorted by offset, the ranges must tile the data exactly.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i];
    if (r.begin < at) fail(`tensor '${r.name}' data [${r.begin}, ${r.end}) overlaps tensor '${ranges[i - 1].name}' [${ranges[i - 1].begin}, ${ranges[i - 1].end})`);
    if (r.begin > at) fail(`bytes [${at}, ${r.begin}) of the data belong to no tensor (the format forbids gaps)`);
    at = r.end;
  }
  if (at !== data.length) fail(`bytes [${at}, ${data.length}) of the data belong to no tensor (the format forbids gaps)`);
  return { tensors, metadata };
}

/** Names whose tensors are stored transposed (PyTorch layout): see below. */
// Our linear layers compute x @ w with w [in, out] and our LSTM's wx/wh are [in, 4h]/[h, 4h];
// PyTorch's nn.Linear weight and LSTM weight_ih/weight_hh are [out, in]/[4h, in] (same gate order),
// so storing them transposed lets PyTorch load them directly. Prefixed names (optimizer slots such as
// optimizer.m.params.head.w) mirror their parameter and get the same layout. Conv weights are
// already [out, in, kh, kw] and are rank 4, so they are left alone.
export function isTransposedInFile(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && /(^|\.)(w|wx|wh)$/.test(name);
}

// Host-side transpose of a row-major [rows, cols] matrix.
function transpose<A extends Float32Array | Float64Array>(a: A, rows: number, cols: number): A {
  const out = new (a.constructor as any)(a.length) as A;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** A tree of Tensors (plain nested objects/arrays, as engine/pytree.ts treeLeaves/treePaths walk it) plus JSON metadata. */
export async function encodeCheckpoint(tree: unknown, metadata: Record<string, unknown> = {}): Promise<Uint8Array> {
  const leaves = treeLeaves(tree), paths = treePaths(tree);
  const raw: Record<string, RawTensor> = {};
  for (let i = 0; i < leaves.length; i++) {
    const name = paths[i], t = leaves[i];
    // A bare tensor has path '' and {a: {b}} and {'a.b'} collide: both would lose data silently.
    if (name === '') throw new Error('encodeCheckpoint: a checkpoint needs named tensors; wrap the tensor in an object');
    if (name in raw) throw new Error(`encodeCheckpoint: two tensors have the path '${name}'`);
    let data = await t.data();
    let shape = [...t.shape];
    if (isTransposedInFile(name, shape)) { data = transpose(data, shape[0], shape[1]); shape = [shape[1], shape[0]]; }
    raw[name] = { dtype: t.dtype, shape, data };
  }
  // safetensors metadata is string -> string; JSON strings keep numbers, configs and nulls typed.
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) {
    const s = JSON.stringify(v);
    if (s !== undefined) meta[k] = s; // undefined/functions are dropped, as JSON.stringify does for objects
  }
  return encodeSafetensors(raw, meta);
}

export function decodeCheckpoint(bytes: Uint8Array, source?: string): { tensors: Record<string, Tensor>; metadata: Record<string, any> } {
  const file = decodeSafetensors(bytes, source);
  const tensors: Record<string, Tensor> = {};
  for (const [name, r] of Object.entries(file.tensors)) {
    const t = isTransposedInFile(name, r.shape)
      ? { data: transpose(r.data, r.shape[0], r.shape[1]), shape: [r.shape[1], r.shape[0]] }
      : r;
    tensors[name] = tensor(t.data, t.shape, { dtype: r.dtype });
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(file.metadata)) {
    // Files from other tools carry plain strings (PyTorch writes {"format": "pt"}): keep those as is.
    try { metadata[k] = JSON.parse(v); } catch { metadata[k] = v; }
  }
  return { tensors, metadata };
}

// Temporaries of saves in progress in this process: never "stale", even though they carry our pid.
const inFlight = new Set<string>();

export async function saveCheckpoint(file: string, tree: unknown, metadata?: Record<string, unknown>): Promise<void> {
  const bytes = await encodeCheckpoint(tree, metadata);
  const fs = await import('node:fs/promises');
  const { dirname, basename, join } = await import('node:path');
  const dir = dirname(file), base = basename(file);
  const wrap = (e: any): never => { throw new Error(`${file}: cannot write checkpoint (${e.code ?? e.message})`, { cause: e }); };
  await fs.mkdir(dir, { recursive: true }).catch(wrap);
  await removeStaleTemporaries(fs, dir, base, join);
  // A fresh name per save (pid + random) so concurrent writers never share a temporary; same folder
  // so the rename is atomic (same file system): readers see the old file or the new, never a torn one.
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  inFlight.add(tmp);
  try {
    const h = await fs.open(tmp, 'w');
    try {
      await h.writeFile(bytes);
      await h.sync(); // the data must be on disk before the rename makes it the checkpoint
    } finally {
      await h.close();
    }
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    wrap(e);
  } finally {
    inFlight.delete(tmp);
  }
  // Persist the rename itself; not every platform can fsync a folder (Windows), hence best effort.
  try { const d = await fs.open(dir, 'r'); try { await d.sync(); } finally { await d.close(); } } catch { /* best effort */ }
}

/** Removes `${base}.<pid>.*.tmp` left by crashed writers: dead pids, or ours but not a save in progress. */
async function removeStaleTemporaries(fs: typeof import('node:fs/promises'), dir: string, base: string, join: (...p: string[]) => string): Promise<void> {
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped}\\.(\\d+)\\.(?:.+\\.)?tmp$`);
  let names: string[];
  try { names = await fs.readdir(dir); } catch { return; }
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const pid = Number(m[1]), path = join(dir, name);
    if (pid === process.pid ? inFlight.has(path) : alive(pid)) continue;
    await fs.rm(path, { force: true }).catch(() => {}); // another writer may be cleaning up too
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e: any) { return e.code !== 'ESRCH'; } // EPERM: alive, another user's
}

export async function loadCheckpoint(file: string): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, any> }> {
  const fs = await import('node:fs/promises');
  let bytes: Uint8Array;
  try { bytes = await fs.readFile(file); } catch (e: any) { throw new Error(`${file}: cannot read checkpoint (${e.code ?? e.message})`, { cause: e }); }
  // Legacy JSON starts with '{'. A safetensors file can too (header length ≡ 123 mod 256, never ours:
  // ours are multiples of 8), but then its header JSON starts at byte 8 and its length fits the file.
  const looksSafetensors = bytes.length >= 9 && bytes[8] === 0x7b &&
    new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) <= BigInt(bytes.length - 8);
  if (bytes[0] === 0x7b && !looksSafetensors) return loadLegacy(file, bytes);
  return decodeCheckpoint(bytes, file);
}

/** The old metagrad-checkpoint-1 JSON (our own layout, not transposed). */
function loadLegacy(file: string, bytes: Uint8Array): { tensors: Record<string, Tensor>; metadata: Record<string, any> } {
  let doc: any;
  try { doc = JSON.parse(new TextDecoder().decode(bytes)); } catch (e: any) { throw new Error(`${file}: JSON checkpoint is not valid JSON (${e.message})`); }
  if (doc?.format !== 'metagrad-checkpoint-1' || typeof doc.tensors !== 'object' || doc.tensors === null) {
    throw new Error(`${file}: not a metagrad checkpoint (neither safetensors nor format 'metagrad-checkpoint-1' JSON)`);
  }
  const msg = `${file}: JSON checkpoints are deprecated; re-save as checkpoint.safetensors`;
  if (typeof process !== 'undefined' && typeof process.emitWarning === 'function') process.emitWarning(msg, 'DeprecationWarning');
  else console.warn(msg);
  const tensors: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries<any>(doc.tensors)) {
    if (t?.dtype !== 'float32' && t?.dtype !== 'float64') throw new Error(`${file}: tensor '${name}' has dtype ${t?.dtype} (only float32 and float64 are read)`);
    if (!Array.isArray(t.shape) || !Array.isArray(t.values) || size(t.shape) !== t.values.length) {
      throw new Error(`${file}: tensor '${name}' has shape ${JSON.stringify(t.shape)} but ${t.values?.length} values`);
    }
    tensors[name] = tensor(t.values, t.shape, { dtype: t.dtype });
  }
  return { tensors, metadata: { ...(doc.meta ?? {}), legacyFormat: true } };
}
