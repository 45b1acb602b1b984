// A JPEG decoder for sequential-DCT, Huffman-coded images with 8-bit samples (SOF0 baseline and
// SOF1 extended sequential; ITU-T T.81), written from the specification for mini-ImageNet's JPEGs.
// 1 (grey) or 3 components, any integer sampling factors, restart intervals, 8- and 16-bit
// quantisation tables. Progressive, lossless, hierarchical, arithmetic-coded and 12-bit files are
// refused with an error saying so. Errors name the file (and what is wrong with it).
//
// Where T.81 leaves the decoder a choice, it copies libjpeg (the decoder behind PIL, with which
// mini-ImageNet is usually prepared and read in Python pipelines): its "fancy" triangle-filter
// chroma upsampling for 2:1 ratios (4:2:2, 4:2:0, 4:4:0), plain replication for other ratios, its
// fixed-point YCbCr -> RGB table, and its choice of colour space from JFIF/Adobe markers. The IDCT
// is a plain float one, so pixels can differ from libjpeg's integer IDCT by about 1.

/** A decoded image: `data` is row-major, interleaved RGB when channels is 3, grey when 1. */
export interface JpegImage { width: number; height: number; channels: 1 | 3; data: Uint8Array }

/** Zig-zag scan position -> natural (row-major) index in an 8x8 block (T.81 figure A.6). */
const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

/** IDCT basis (T.81 A.3.3): COS[x * 8 + u] = C(u)/2 * cos((2x + 1) u pi / 16). */
const COS = Float64Array.from({ length: 64 }, (_, i) => {
  const x = i >> 3, u = i & 7;
  return (u === 0 ? Math.SQRT1_2 : 1) / 2 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
});

/** Pixels per image beyond which a header is taken for corruption rather than allocated. */
const MAX_PIXELS = 1 << 27;
/** Bits resolved by one table look-up; longer codes (rare) walk T.81's MAXCODE table. */
const LOOKUP_BITS = 9;

interface Huffman {
  /** Indexed by the next LOOKUP_BITS bits: (code length << 8) | value, or 0 for a longer code. */
  lookup: Uint16Array;
  /** T.81 F.2.2.3: per code length, the largest code (-1 for none), the first code and its value index. */
  maxcode: Int32Array;
  mincode: Int32Array;
  valptr: Int32Array;
  values: Uint8Array;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Samples actually coded (T.81 A.1.1): ceil(width * h / hmax) x ceil(height * v / vmax). */
  cw: number;
  ch: number;
  /** Blocks allocated per row and column (whole MCUs, so interleaved scans fit). */
  bw: number;
  bh: number;
  /** Quantised coefficients in natural order, 64 per block, row-major blocks. */
  coefs: Int32Array;
  /** The quantisation table in force at the component's first scan (natural order), as libjpeg latches it. */
  quant: Uint16Array | null;
  scanned: boolean;
}

/** The entropy-coded segment reader: bits MSB first, 0xFF 0x00 unstuffed, stopping at a marker. */
class BitReader {
  acc = 0;
  n = 0;
  /** Zero bits appended past a marker or the end of the data; consuming any of them is an error. */
  fake = 0;
  atMarker = false;

  constructor(readonly d: Uint8Array, public pos: number, readonly fail: (m: string) => never) {}

  private fill(): void {
    while (this.n <= 24) {
      let b = 0;
      if (!this.atMarker && this.pos < this.d.length) {
        b = this.d[this.pos];
        if (b === 0xff) {
          if (this.pos + 1 < this.d.length && this.d[this.pos + 1] === 0) this.pos += 2;
          else { this.atMarker = true; b = 0; this.fake += 8; }
        } else this.pos++;
      } else this.fake += 8;
      this.acc = (this.acc << 8) | b;
      this.n += 8;
    }
  }

  peek(k: number): number {
    if (this.n < k) this.fill();
    return (this.acc >>> (this.n - k)) & ((1 << k) - 1);
  }

  skip(k: number): void {
    if (k > this.n - this.fake) {
      this.fail(this.pos >= this.d.length ? 'entropy-coded data ends early (truncated file)' : 'entropy-coded data ends early at a marker (corrupt or truncated scan)');
    }
    this.n -= k;
  }

  /** s raw bits, sign-extended as T.81 F.2.2.1 (EXTEND) says. */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.peek(s);
    this.skip(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  decode(t: Huffman): number {
    const e = t.lookup[this.peek(LOOKUP_BITS)];
    if (e) { this.skip(e >> 8); return e & 0xff; }
    const bits = this.peek(16);
    for (let l = LOOKUP_BITS + 1; l <= 16; l++) {
      const code = bits >>> (16 - l);
      if (code <= t.maxcode[l]) { this.skip(l); return t.values[t.valptr[l] + code - t.mincode[l]]; }
    }
    return this.fail('invalid Huffman code (corrupt data)');
  }

  /** Drops the partial byte (a restart or the scan's end is byte-aligned, padded with 1 bits). */
  reset(): void { this.acc = 0; this.n = 0; this.fake = 0; this.atMarker = false; }
}

const SOF_NAMES: Record<number, string> = {
  0xc2: 'progressive JPEG (SOF2)',
  0xc3: 'lossless JPEG (SOF3)',
  0xc5: 'hierarchical JPEG (SOF5, differential sequential)',
  0xc6: 'hierarchical JPEG (SOF6, differential progressive)',
  0xc7: 'hierarchical JPEG (SOF7, differential lossless)',
  0xc9: 'arithmetic-coded JPEG (SOF9)',
  0xca: 'arithmetic-coded progressive JPEG (SOF10)',
  0xcb: 'arithmetic-coded lossless JPEG (SOF11)',
  0xcc: 'arithmetic coding (DAC marker)',
  0xcd: 'arithmetic-coded hierarchical JPEG (SOF13)',
  0xce: 'arithmetic-coded hierarchical JPEG (SOF14)',
  0xcf: 'arithmetic-coded hierarchical JPEG (SOF15)',
};

const hex = (m: number) => `0xFF${m.toString(16).toUpperCase().padStart(2, '0')}`;

/**
 * Decodes a baseline or extended-sequential (SOF0/SOF1) Huffman JPEG with 8-bit samples and 1 or 3
 * components to RGB (3 components; YCbCr unless an Adobe marker or R/G/B component ids say RGB) or
 * grey (1 component). `name` (a path, say) starts every error message.
 */
export function decodeJpeg(bytes: Uint8Array, name = 'JPEG'): JpegImage {
  const fail = (m: string): never => { throw new Error(`${name}: ${m}`); };
  const d = bytes;
  if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8) fail('not a JPEG file (no SOI marker)');
  const quant: (Uint16Array | null)[] = [null, null, null, null];
  const dcTables: (Huffman | null)[] = [null, null, null, null];
  const acTables: (Huffman | null)[] = [null, null, null, null];
  let restartInterval = 0;
  let width = 0, height = 0, hmax = 1, vmax = 1, mcusX = 0, mcusY = 0;
  const comps: Component[] = [];
  let jfif = false, adobe = -1;
  let pos = 2, scans = 0;

  const u16 = (p: number) => (d[p] << 8) | d[p + 1];

  for (;;) {
    // A marker: 0xFF, any number of 0xFF fill bytes (B.1.1.2), then the code.
    if (pos >= d.length) fail('ends without an EOI marker (truncated file)');
    if (d[pos] !== 0xff) fail(`expected a marker at byte ${pos}, found 0x${d[pos].toString(16)} (corrupt file)`);
    while (pos < d.length && d[pos] === 0xff) pos++;
    if (pos >= d.length) fail('ends without an EOI marker (truncated file)');
    const marker = d[pos++];
    if (marker === 0xd9) break; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM, stray RSTn: no payload
    if (marker === 0xd8 || marker === 0x00) fail(`unexpected marker ${hex(marker)} at byte ${pos - 2} (corrupt file)`);
    if (pos + 2 > d.length) fail(`truncated in the length of segment ${hex(marker)}`);
    const len = u16(pos);
    if (len < 2) fail(`segment ${hex(marker)} has an invalid length ${len}`);
    const start = pos + 2, end = pos + len;
    if (end > d.length) fail(`truncated in segment ${hex(marker)} (it needs ${len} bytes, ${d.length - pos} are left)`);
    pos = end;

    if (SOF_NAMES[marker]) fail(`${SOF_NAMES[marker]} is not supported (only baseline and extended sequential Huffman JPEGs, SOF0 and SOF1)`);
    if (marker === 0xc0 || marker === 0xc1) {
      if (comps.length) fail('has more than one frame header (SOF)');
      if (len < 8) fail('SOF segment too short');
      const precision = d[start];
      if (precision !== 8) fail(`${precision}-bit samples are not supported (8-bit only)`);
      height = u16(start + 1);
      width = u16(start + 3);
      const nc = d[start + 5];
      if (width === 0) fail('image width is 0');
      if (height === 0) fail('image height 0 (defined later by a DNL marker) is not supported');
      if (width * height > MAX_PIXELS) fail(`image of ${width} x ${height} pixels is too large`);
      if (nc !== 1 && nc !== 3) fail(`${nc} components are not supported (1, grey, or 3, colour${nc === 4 ? '; this is a CMYK or YCCK file' : ''})`);
      if (len !== 8 + 3 * nc) fail(`SOF segment length ${len} does not match its ${nc} components`);
      for (let i = 0; i < nc; i++) {
        const p = start + 6 + 3 * i, h = d[p + 1] >> 4, v = d[p + 1] & 15, tq = d[p + 2];
        if (h < 1 || h > 4 || v < 1 || v > 4) fail(`component ${d[p]} has invalid sampling factors ${h}x${v}`);
        if (tq > 3) fail(`component ${d[p]} names quantisation table ${tq} (0-3 allowed)`);
        if (comps.some((c) => c.id === d[p])) fail(`component id ${d[p]} appears twice in the frame header`);
        comps.push({ id: d[p], h, v, tq, cw: 0, ch: 0, bw: 0, bh: 0, coefs: new Int32Array(0), quant: null, scanned: false });
      }
      hmax = Math.max(...comps.map((c) => c.h));
      vmax = Math.max(...comps.map((c) => c.v));
      mcusX = Math.ceil(width / (8 * hmax));
      mcusY = Math.ceil(height / (8 * vmax));
      for (const c of comps) {
        // libjpeg, like this decoder, only upsamples by whole factors.
        if (hmax % c.h || vmax % c.v) fail(`fractional sampling (component ${c.id}: ${c.h}x${c.v} of ${hmax}x${vmax}) is not supported`);
        c.cw = Math.ceil((width * c.h) / hmax);
        c.ch = Math.ceil((height * c.v) / vmax);
        c.bw = mcusX * c.h;
        c.bh = mcusY * c.v;
        c.coefs = new Int32Array(c.bw * c.bh * 64);
      }
    } else if (marker === 0xc4) {
      let p = start;
      while (p < end) {
        if (p + 17 > end) fail('DHT segment too short');
        const tc = d[p] >> 4, th = d[p] & 15;
        if (tc > 1 || th > 3) fail(`DHT defines table class ${tc}, id ${th} (class 0-1, id 0-3 allowed)`);
        const counts = d.subarray(p + 1, p + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        if (total > 256 || p + 17 + total > end) fail('DHT segment is inconsistent (more codes than bytes or than 256)');
        const table = buildHuffman(counts, d.slice(p + 17, p + 17 + total), fail);
        (tc === 0 ? dcTables : acTables)[th] = table;
        p += 17 + total;
      }
    } else if (marker === 0xdb) {
      let p = start;
      while (p < end) {
        const pq = d[p] >> 4, tq = d[p] & 15, size = pq ? 128 : 64;
        if (pq > 1 || tq > 3) fail(`DQT defines precision ${pq}, table ${tq} (precision 0-1, table 0-3 allowed)`);
        if (p + 1 + size > end) fail('DQT segment too short');
        const t = new Uint16Array(64);
        for (let k = 0; k < 64; k++) t[ZIGZAG[k]] = pq ? u16(p + 1 + 2 * k) : d[p + 1 + k];
        quant[tq] = t;
        p += 1 + size;
      }
    } else if (marker === 0xdd) {
      if (len !== 4) fail('DRI segment has the wrong length');
      restartInterval = u16(start);
    } else if (marker === 0xda) {
      if (!comps.length) fail('scan (SOS) before the frame header (SOF)');
      const ns = d[start];
      if (ns < 1 || ns > 4 || len !== 6 + 2 * ns) fail(`SOS segment is inconsistent (${ns} components, length ${len})`);
      const scanComps: { c: Component; dc: Huffman; ac: Huffman }[] = [];
      for (let i = 0; i < ns; i++) {
        const id = d[start + 1 + 2 * i], td = d[start + 2 + 2 * i] >> 4, ta = d[start + 2 + 2 * i] & 15;
        const c = comps.find((x) => x.id === id);
        if (!c) fail(`scan names component ${id}, which the frame does not have`);
        if (c!.scanned) fail(`component ${id} is coded in more than one scan (only sequential, not progressive, scans are supported)`);
        const dc = td < 4 ? dcTables[td] : null, ac = ta < 4 ? acTables[ta] : null;
        if (!dc) fail(`scan uses DC Huffman table ${td}, which is not defined`);
        if (!ac) fail(`scan uses AC Huffman table ${ta}, which is not defined`);
        if (!quant[c!.tq]) fail(`component ${id} uses quantisation table ${c!.tq}, which is not defined`);
        c!.quant = quant[c!.tq]!.slice();
        c!.scanned = true;
        scanComps.push({ c: c!, dc: dc!, ac: ac! });
      }
      const ss = d[start + 1 + 2 * ns], se = d[start + 2 + 2 * ns], ah = d[start + 3 + 2 * ns] >> 4, al = d[start + 3 + 2 * ns] & 15;
      if (ss !== 0 || se !== 63 || ah !== 0 || al !== 0) fail(`scan has spectral selection ${ss}-${se} and approximation ${ah}/${al}, not a sequential scan's 0-63 and 0/0`);
      pos = decodeScan(d, pos, scanComps, restartInterval, mcusX, mcusY, fail);
      scans++;
    } else if (marker === 0xe0) {
      if (len >= 7 && String.fromCharCode(...d.subarray(start, start + 5)) === 'JFIF\0') jfif = true;
    } else if (marker === 0xee) {
      // Adobe APP14: "Adobe", version, flags0, flags1, then the colour transform (0 = none, 1 = YCbCr).
      if (len >= 14 && String.fromCharCode(...d.subarray(start, start + 5)) === 'Adobe') adobe = d[start + 11];
    } else if (marker === 0xdc) {
      fail('DNL marker (height defined after the first scan) is not supported');
    }
    // Other APPn, COM and reserved segments carry nothing the pixels need: skipped.
  }

  if (!comps.length || scans === 0) fail('has no image data (EOI before any frame or scan)');
  for (const c of comps) if (!c.scanned) fail(`component ${c.id} is never coded in a scan (truncated file?)`);

  const planes = comps.map((c) => upsample(idctPlane(c), c.bw * 8, c.cw, c.ch, hmax / c.h, vmax / c.v, width, height));
  const n = width * height;
  if (comps.length === 1) return { width, height, channels: 1, data: planes[0] };
  const data = new Uint8Array(n * 3);
  // Which colour space the three components are in, decided as libjpeg does (jdapimin.c).
  const ids = comps.map((c) => c.id);
  const rgb = jfif ? false : adobe >= 0 ? adobe === 0 : ids[0] === 82 && ids[1] === 71 && ids[2] === 66;
  const [p0, p1, p2] = planes;
  if (rgb) {
    for (let i = 0; i < n; i++) { data[3 * i] = p0[i]; data[3 * i + 1] = p1[i]; data[3 * i + 2] = p2[i]; }
  } else {
    for (let i = 0; i < n; i++) {
      const y = p0[i], cb = p1[i], cr = p2[i];
      data[3 * i] = clamp(y + CR_R[cr]);
      data[3 * i + 1] = clamp(y + ((CB_G[cb] + CR_G[cr]) >> 16));
      data[3 * i + 2] = clamp(y + CB_B[cb]);
    }
  }
  return { width, height, channels: 3, data };
}

/** T.81 Annex C code generation plus a LOOKUP_BITS-bit look-up table. */
function buildHuffman(counts: Uint8Array, values: Uint8Array, fail: (m: string) => never): Huffman {
  const lookup = new Uint16Array(1 << LOOKUP_BITS);
  const maxcode = new Int32Array(18).fill(-1), mincode = new Int32Array(17), valptr = new Int32Array(17);
  let code = 0, k = 0;
  for (let l = 1; l <= 16; l++) {
    const count = counts[l - 1];
    valptr[l] = k;
    mincode[l] = code;
    for (let i = 0; i < count; i++, k++, code++) {
      if (l <= LOOKUP_BITS) {
        const shift = LOOKUP_BITS - l, first = code << shift;
        lookup.fill((l << 8) | values[k], first, first + (1 << shift));
      }
    }
    if (count) maxcode[l] = code - 1;
    // More codes of a length than that length can hold: the table is not a prefix code.
    if (code > 1 << l) fail('DHT defines an invalid Huffman table (too many codes of one length)');
    code <<= 1;
  }
  return { lookup, maxcode, mincode, valptr, values };
}

/** Decodes one sequential scan into the components' coefficient arrays; returns where the next marker starts. */
function decodeScan(
  d: Uint8Array, pos: number, scan: { c: Component; dc: Huffman; ac: Huffman }[], restartInterval: number,
  mcusX: number, mcusY: number, fail: (m: string) => never,
): number {
  const bits = new BitReader(d, pos, fail);
  const preds = new Int32Array(scan.length);
  const decodeBlock = (s: number, row: number, col: number) => {
    const { c, dc, ac } = scan[s];
    const out = c.coefs, base = (row * c.bw + col) * 64;
    const t = bits.decode(dc);
    if (t > 11) fail(`DC difference of ${t} bits (more than 8-bit samples allow; corrupt data)`);
    preds[s] += bits.receiveExtend(t);
    out[base] = preds[s];
    for (let k = 1; k < 64;) {
      const rs = bits.decode(ac), r = rs >> 4, size = rs & 15;
      if (size === 0) {
        if (r !== 15) break; // EOB
        k += 16; // ZRL: sixteen zeros
        continue;
      }
      k += r;
      if (k > 63 || size > 10) fail('AC coefficients run past the end of a block (corrupt data)');
      out[base + ZIGZAG[k]] = bits.receiveExtend(size);
      k++;
    }
  };
  // One component alone is coded block by block over just the blocks it has (A.2.2); several are
  // interleaved in MCUs of h x v blocks each (A.2.3).
  const single = scan.length === 1;
  const c0 = scan[0].c;
  const blocksX = single ? Math.ceil(c0.cw / 8) : mcusX;
  const total = single ? blocksX * Math.ceil(c0.ch / 8) : mcusX * mcusY;
  let expectRst = 0;
  for (let m = 0; m < total; m++) {
    if (restartInterval && m > 0 && m % restartInterval === 0) {
      bits.reset();
      const [code, next] = findMarker(d, bits.pos, fail);
      if (code !== 0xd0 + expectRst) fail(`expected restart marker RST${expectRst} before MCU ${m}, found ${hex(code)} (corrupt or truncated data)`);
      expectRst = (expectRst + 1) & 7;
      bits.pos = next;
      preds.fill(0);
    }
    const my = Math.floor(m / blocksX), mx = m - my * blocksX;
    if (single) decodeBlock(0, my, mx);
    else {
      for (let s = 0; s < scan.length; s++) {
        const { h, v } = scan[s].c;
        for (let by = 0; by < v; by++) for (let bx = 0; bx < h; bx++) decodeBlock(s, my * v + by, mx * h + bx);
      }
    }
  }
  bits.reset();
  // Bytes left before the next marker (an encoder's padding) are skipped, as libjpeg skips them.
  const [, next] = findMarker(d, bits.pos, fail);
  return next - 2;
}

/** The next marker at or after pos (skipping stuffed 0xFF 0x00 and fill bytes): [code, position after it]. */
function findMarker(d: Uint8Array, pos: number, fail: (m: string) => never): [number, number] {
  for (let p = pos; p + 1 < d.length; p++) {
    if (d[p] === 0xff && d[p + 1] !== 0 && d[p + 1] !== 0xff) return [d[p + 1], p + 2];
  }
  return fail('entropy-coded data runs to the end of the file (truncated: no EOI marker)');
}

/** Dequantises and inverse-transforms every block of a component into a plane of bw*8 x bh*8 samples. */
function idctPlane(c: Component): Uint8Array {
  const stride = c.bw * 8, plane = new Uint8Array(stride * c.bh * 8);
  const q = c.quant!, f = new Float64Array(64), tmp = new Float64Array(64), nz = new Int32Array(8);
  for (let by = 0; by < c.bh; by++) {
    for (let bx = 0; bx < c.bw; bx++) {
      const base = (by * c.bw + bx) * 64, at = by * 8 * stride + bx * 8;
      let ac = false;
      for (let i = 0; i < 64; i++) {
        f[i] = c.coefs[base + i] * q[i];
        if (i && f[i] !== 0) ac = true;
      }
      if (!ac) {
        // A flat block (most of them in smooth images): every sample is DC / 8 + 128.
        const v = clamp(Math.round(f[0] / 8 + 128));
        for (let y = 0; y < 8; y++) plane.fill(v, at + y * stride, at + y * stride + 8);
        continue;
      }
      // Separable: rows (over u), then columns (over v), skipping the all-zero rows of coefficients
      // (most of the high vertical frequencies, in natural images), which contribute nothing.
      let rows = 0;
      for (let v = 0; v < 8; v++) {
        let any = false;
        for (let u = 0; u < 8; u++) if (f[v * 8 + u] !== 0) { any = true; break; }
        if (!any) continue;
        nz[rows++] = v;
        for (let x = 0; x < 8; x++) {
          let s = 0;
          for (let u = 0; u < 8; u++) s += COS[x * 8 + u] * f[v * 8 + u];
          tmp[v * 8 + x] = s;
        }
      }
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          let s = 128;
          for (let r = 0; r < rows; r++) s += COS[y * 8 + nz[r]] * tmp[nz[r] * 8 + x];
          plane[at + y * stride + x] = clamp(Math.round(s));
        }
      }
    }
  }
  return plane;
}

/**
 * A component's samples at full resolution, width x height, from its coded cw x ch samples (row
 * stride `stride`) and its sampling ratios hf x vf. Ratios of 2 use libjpeg's triangle ("fancy")
 * filter bit for bit (jdsample.c: each output sample weighs its nearest input 3/4 and the next
 * nearest 1/4, with edges replicated at the coded size), so subsampled files decode as PIL decodes
 * them; other ratios replicate samples, as libjpeg does.
 */
function upsample(plane: Uint8Array, stride: number, cw: number, ch: number, hf: number, vf: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  if (hf === 1 && vf === 1) {
    for (let y = 0; y < height; y++) out.set(plane.subarray(y * stride, y * stride + width), y * width);
    return out;
  }
  const row = (y: number) => Math.min(Math.max(y, 0), ch - 1) * stride, col = (x: number) => Math.min(Math.max(x, 0), cw - 1);
  // libjpeg falls back to replication for horizontal doubling of components 2 samples wide or less.
  const fancyH = hf === 2 && cw > 2, fancyV = vf === 2 && (hf === 1 || fancyH);
  for (let y = 0; y < height; y++) {
    const sy = Math.floor(y / vf);
    const r0 = row(sy), r1 = row(y & 1 ? sy + 1 : sy - 1); // nearest and next-nearest input rows
    for (let x = 0; x < width; x++) {
      const sx = Math.floor(x / hf), c0 = col(sx), c1 = col(x & 1 ? sx + 1 : sx - 1);
      let v: number;
      if (fancyH && fancyV) {
        // h2v2_fancy_upsample: column sums of 3 x nearest row + next row, then the same across.
        const near = 3 * plane[r0 + c0] + plane[r1 + c0], next = 3 * plane[r0 + c1] + plane[r1 + c1];
        v = (3 * near + next + (x & 1 ? 7 : 8)) >> 4;
      } else if (fancyH) {
        v = (3 * plane[r0 + c0] + plane[r0 + c1] + (x & 1 ? 2 : 1)) >> 2; // h2v1_fancy_upsample
      } else if (fancyV) {
        v = (3 * plane[r0 + c0] + plane[r1 + c0] + (y & 1 ? 2 : 1)) >> 2; // h1v2_fancy_upsample
      } else v = plane[r0 + c0];
      out[y * width + x] = v;
    }
  }
  return out;
}

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

// libjpeg's YCbCr -> RGB tables (jdcolor.c): 16-bit fixed point, rounded, so colours match PIL's exactly.
const FIX = (x: number) => Math.round(x * 65536);
const CR_R = Int32Array.from({ length: 256 }, (_, i) => (FIX(1.402) * (i - 128) + 32768) >> 16);
const CB_B = Int32Array.from({ length: 256 }, (_, i) => (FIX(1.772) * (i - 128) + 32768) >> 16);
const CR_G = Int32Array.from({ length: 256 }, (_, i) => -FIX(0.71414) * (i - 128));
const CB_G = Int32Array.from({ length: 256 }, (_, i) => -FIX(0.34414) * (i - 128) + 32768);
