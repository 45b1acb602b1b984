// A PNG decoder for greyscale images (bit depths 1-16, colour type 0, not interlaced), enough for
// Omniglot. Chunk CRCs are checked; errors name the source.

import * as zlib from 'node:zlib';

export interface GreyImage { width: number; height: number; /** values in [0, 1], row-major */ pixels: Float32Array }

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const crc32: ((b: Uint8Array) => number) | undefined = (zlib as any).crc32;

export function decodePng(buf: Uint8Array, source = 'PNG'): GreyImage {
  const fail = (m: string): never => { throw new Error(`${source}: ${m}`); };
  if (buf.length < 8 || SIGNATURE.some((v, i) => buf[i] !== v)) fail('not a PNG file (bad signature)');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let width = 0, height = 0, depth = 0, colour = -1, interlace = 0;
  const idat: Uint8Array[] = [];
  let p = 8;
  for (;;) {
    if (p + 12 > buf.length) fail('truncated (no IEND chunk)');
    const len = view.getUint32(p);
    const type = String.fromCharCode(buf[p + 4], buf[p + 5], buf[p + 6], buf[p + 7]);
    if (p + 12 + len > buf.length) fail(`truncated in chunk ${type}`);
    const data = buf.subarray(p + 8, p + 8 + len);
    if (crc32 && crc32(buf.subarray(p + 4, p + 8 + len)) >>> 0 !== view.getUint32(p + 8 + len)) fail(`chunk ${type} fails its CRC check (corrupt)`);
    if (type === 'IHDR') {
      const d = new DataView(data.buffer, data.byteOffset, data.byteLength);
      [width, height, depth, colour, interlace] = [d.getUint32(0), d.getUint32(4), data[8], data[9], data[12]];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    p += 12 + len;
  }
  if (colour !== 0) fail(`colour type ${colour} is not supported (greyscale only)`);
  if (interlace !== 0) fail('interlaced PNGs are not supported');
  if (![1, 2, 4, 8, 16].includes(depth)) fail(`bit depth ${depth} is invalid`);
  let raw: Buffer;
  try { raw = zlib.inflateSync(Buffer.concat(idat)); } catch (e: any) { return fail(`image data does not decompress (${e.message})`); }
  const stride = Math.ceil((width * depth) / 8), bpp = Math.max(1, depth / 8);
  if (raw.length < height * (stride + 1)) fail('image data is shorter than the header says');
  // Undo the per-scanline filters (PNG spec section 9) in place.
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? rows[dst + x - bpp] : 0, b = y > 0 ? rows[dst - stride + x] : 0, c = x >= bpp && y > 0 ? rows[dst - stride + x - bpp] : 0;
      let pred = 0;
      if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) fail(`unknown filter type ${f} on row ${y}`);
      rows[dst + x] = (raw[src + x] + pred) & 0xff;
    }
  }
  const pixels = new Float32Array(width * height), max = 2 ** depth - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v: number;
      if (depth === 16) v = (rows[y * stride + 2 * x] << 8) | rows[y * stride + 2 * x + 1];
      else {
        const bit = x * depth;
        v = (rows[y * stride + (bit >> 3)] >> (8 - depth - (bit & 7))) & max;
      }
      pixels[y * width + x] = v / max;
    }
  }
  return { width, height, pixels };
}

/** Area-average resampling (each output pixel averages the input area it covers): antialiased. */
export function resizeArea(img: GreyImage, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const sx = img.width / width, sy = img.height / height;
  for (let oy = 0; oy < height; oy++) {
    const y0 = oy * sy, y1 = y0 + sy;
    for (let ox = 0; ox < width; ox++) {
      const x0 = ox * sx, x1 = x0 + sx;
      let acc = 0;
      for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let x = Math.floor(x0); x < Math.ceil(x1); x++) {
          acc += wy * (Math.min(x + 1, x1) - Math.max(x, x0)) * img.pixels[y * img.width + x];
        }
      }
      out[oy * width + ox] = acc / (sx * sy);
    }
  }
  return out;
}
