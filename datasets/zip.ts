// A minimal zip reader (stored and deflated entries, CRC-checked) on Node's zlib, enough for the
// official dataset archives. Errors name the archive and the entry.

import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';

export interface ZipEntry { name: string; method: number; compressedSize: number; size: number; crc: number; headerOffset: number }

const crc32: ((b: Uint8Array) => number) | undefined = (zlib as any).crc32;

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly buf: Buffer;

  constructor(readonly path: string) {
    try {
      this.buf = readFileSync(path);
    } catch (e: any) {
      throw new Error(`${path}: cannot read the archive (${e.code ?? e.message})`);
    }
    this.readDirectory();
  }

  private fail(msg: string): never { throw new Error(`${this.path}: ${msg}`); }

  private readDirectory() {
    const b = this.buf;
    // The end-of-central-directory record sits in the last 22 + up to 65535 (comment) bytes.
    let eocd = -1;
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (b.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
    }
    if (eocd < 0) this.fail('not a zip archive (no end-of-central-directory record); the file may be truncated or corrupt');
    const count = b.readUInt16LE(eocd + 10);
    let p = b.readUInt32LE(eocd + 16);
    for (let i = 0; i < count; i++) {
      if (p + 46 > b.length || b.readUInt32LE(p) !== 0x02014b50) this.fail(`corrupt central directory at entry ${i}`);
      const nameLen = b.readUInt16LE(p + 28), extraLen = b.readUInt16LE(p + 30), commentLen = b.readUInt16LE(p + 32);
      const e: ZipEntry = {
        name: b.toString('utf8', p + 46, p + 46 + nameLen),
        method: b.readUInt16LE(p + 10),
        crc: b.readUInt32LE(p + 16),
        compressedSize: b.readUInt32LE(p + 20),
        size: b.readUInt32LE(p + 24),
        headerOffset: b.readUInt32LE(p + 42),
      };
      this.entries.set(e.name, e);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** Names of file entries (not directories). */
  files(): string[] { return [...this.entries.keys()].filter((n) => !n.endsWith('/')); }

  read(name: string): Buffer {
    const e = this.entries.get(name) ?? this.fail(`has no entry '${name}'`);
    const b = this.buf, h = e.headerOffset;
    if (h + 30 > b.length || b.readUInt32LE(h) !== 0x04034b50) this.fail(`corrupt local header for '${name}'`);
    const start = h + 30 + b.readUInt16LE(h + 26) + b.readUInt16LE(h + 28);
    if (start + e.compressedSize > b.length) this.fail(`entry '${name}' runs past the end of the file (truncated?)`);
    const raw = b.subarray(start, start + e.compressedSize);
    let data: Buffer;
    try {
      data = e.method === 0 ? Buffer.from(raw) : e.method === 8 ? zlib.inflateRawSync(raw) : this.fail(`entry '${name}' uses unsupported compression method ${e.method}`);
    } catch (err: any) {
      if (err.message.startsWith(this.path)) throw err;
      this.fail(`entry '${name}' does not decompress (${err.message})`);
    }
    if (data.length !== e.size) this.fail(`entry '${name}' has ${data.length} bytes, the directory says ${e.size}`);
    if (crc32 && crc32(data) >>> 0 !== e.crc) this.fail(`entry '${name}' fails its CRC check (corrupt)`);
    return data;
  }
}
