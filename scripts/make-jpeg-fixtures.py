#!/usr/bin/python3
"""Makes the JPEG and mini-ImageNet test fixtures under tests/fixtures/mini-imagenet/.

jpeg/: small JPEGs of colour gradients, noise and hard-edged shapes, each with PIL's own decoding
beside it (<name>.rgb: raw RGB or grey bytes, row-major) and manifest.json describing them, so
tests/mini-imagenet.test.ts can hold datasets/jpeg.ts to PIL (libjpeg) without Python at test time.
Most files are written by PIL (libjpeg). PIL cannot write restart markers, non-interleaved scans,
4:4:0 or 4:1:1 sampling or Adobe RGB files, so those come from the small baseline encoder below
(an independent implementation of T.81's encoding side: forward DCT, quantisation, Huffman coding
with the tables PIL writes); PIL still decodes them for the expected pixels.

root/: a tiny mini-ImageNet in Ravi & Larochelle's layout (images/*.jpg, train.csv, val.csv,
test.csv): 3 + 2 + 2 classes of 4 images, each class a distinct colour, 84x84 except one 100x70
image (resized by the loader) and one greyscale image. expected/: PIL's box (area) resize of that
100x70 image to 21x21, for the loader's resizing.

Run from the repository root: /usr/bin/python3 scripts/make-jpeg-fixtures.py (needs python3-pil and
numpy; output is deterministic for a given PIL/libjpeg). Made with Debian 12's python3-pil 9.4.0
and libjpeg62-turbo 2.1.5.
"""

import io
import json
import os
import shutil

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'mini-imagenet')


def pattern(w, h, seed):
    """Gradients in each channel, a noisy quadrant, a saturated disc and stripes (hard chroma edges)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 255 * (1 - (x + y) / max(w + h - 2, 1))], -1)
    noisy = (x >= w // 2) & (y >= h // 2)
    img[noisy] = rng.randint(0, 256, size=(int(noisy.sum()), 3))
    disc = (x - w * 0.3) ** 2 + (y - h * 0.6) ** 2 < (min(w, h) * 0.22) ** 2
    img[disc] = [230, 20, 40]
    stripes = (y < h // 4) & ((x // 3) % 2 == 0)
    img[stripes] = [20, 40, 220]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def pil_jpeg(arr, **kw):
    b = io.BytesIO()
    Image.fromarray(arr).save(b, 'JPEG', **kw)
    return b.getvalue()


# ---- a small baseline encoder (T.81 Annex A, F.1) -------------------------------------------------

def segments(data):
    """(marker, payload) of each segment before the first scan."""
    out, p = [], 2
    while data[p + 1] != 0xDA:
        m, n = data[p + 1], (data[p + 2] << 8) | data[p + 3]
        out.append((m, data[p + 4:p + 2 + n]))
        p += 2 + n
    return out


def pil_tables(quality):
    """The quantisation tables (natural order) and the standard Huffman tables PIL writes."""
    ref = pil_jpeg(np.zeros((8, 8, 3), np.uint8), quality=quality)
    q, huff, zz = {}, {}, zigzag()
    for m, payload in segments(ref):
        p = 0
        while m == 0xC4 and p < len(payload):
            counts = list(payload[p + 1:p + 17])
            huff[(payload[p] >> 4, payload[p] & 15)] = (counts, list(payload[p + 17:p + 17 + sum(counts)]))
            p += 17 + sum(counts)
        while m == 0xDB and p < len(payload):  # 8-bit tables, in zig-zag order in the file
            nat = [0] * 64
            for i in range(64):
                nat[zz[i]] = payload[p + 1 + i]
            q[payload[p] & 15] = np.array(nat, np.float64).reshape(8, 8)
            p += 65
    return q, huff


def zigzag():
    order = sorted(((x + y, (y if (x + y) % 2 else x), y * 8 + x) for y in range(8) for x in range(8)))
    return [i for _, _, i in order]


def huff_codes(counts, values):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class Bits:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, code, length):
        self.acc = (self.acc << length) | code
        self.n += length
        while self.n >= 8:
            b = (self.acc >> (self.n - 8)) & 255
            self.out.append(b)
            if b == 255:
                self.out.append(0)  # byte stuffing
            self.n -= 8
            self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with 1 bits


DCT = np.array([[(np.sqrt(0.5) if u == 0 else 1) / 2 * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)] for u in range(8)])


def category(v):
    return 0 if v == 0 else int(abs(v)).bit_length()


def encode(planes, sampling, qsel, quality, restart=0, interleaved=True, marker_app=b'jfif', dqt16=False, sof=0xC0):
    """planes: full-resolution float arrays in the coded colour space; sampling: (h, v) per component."""
    h_img, w_img = planes[0].shape
    q, huff = pil_tables(quality)
    hmax, vmax = max(s[0] for s in sampling), max(s[1] for s in sampling)
    mx, my = -(-w_img // (8 * hmax)), -(-h_img // (8 * vmax))
    comps = []
    for plane, (h, v), t in zip(planes, sampling, qsel):
        fx, fy = hmax // h, vmax // v
        padded = np.pad(plane, ((0, my * vmax * 8 - h_img), (0, mx * hmax * 8 - w_img)), mode='edge')
        small = padded.reshape(padded.shape[0] // fy, fy, padded.shape[1] // fx, fx).mean(axis=(1, 3))
        bh, bw = small.shape[0] // 8, small.shape[1] // 8
        blocks = np.zeros((bh, bw, 8, 8), np.int64)
        for by in range(bh):
            for bx in range(bw):
                f = DCT @ (small[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] - 128) @ DCT.T
                blocks[by, bx] = np.round(f / q[t])
        cw, ch = -(-w_img * h // hmax), -(-h_img * v // vmax)
        comps.append(dict(id=len(comps) + 1, h=h, v=v, t=t, blocks=blocks, cw=cw, ch=ch))
    zz = zigzag()
    tables = {k: huff_codes(*huff[k]) for k in huff}

    def code_block(bits, c, blk, pred):
        dc_t, ac_t = tables[(0, min(c['t'], 1))], tables[(1, min(c['t'], 1))]
        coef = blk.reshape(64)[zz]
        diff = int(coef[0]) - pred
        s = category(diff)
        bits.put(*dc_t[s])
        if s:
            bits.put(diff if diff > 0 else diff + (1 << s) - 1, s)
        run = 0
        for k in range(1, 64):
            v = int(coef[k])
            if v == 0:
                run += 1
                continue
            while run > 15:
                bits.put(*ac_t[0xF0])
                run -= 16
            s = category(v)
            bits.put(*ac_t[(run << 4) | s])
            bits.put(v if v > 0 else v + (1 << s) - 1, s)
            run = 0
        if run:
            bits.put(*ac_t[0x00])
        return int(coef[0])

    def scan(cs):
        bits, preds, rst = Bits(), [0] * len(cs), 0
        if len(cs) == 1:
            c = cs[0]
            bx_n, by_n = -(-c['cw'] // 8), -(-c['ch'] // 8)
            units = [[(0, by, bx)] for by in range(by_n) for bx in range(bx_n)]
        else:
            units = [[(i, yy * c['v'] + by, xx * c['h'] + bx) for i, c in enumerate(cs) for by in range(c['v']) for bx in range(c['h'])]
                     for yy in range(my) for xx in range(mx)]
        for m, unit in enumerate(units):
            if restart and m and m % restart == 0:
                bits.flush()
                bits.out += bytes([0xFF, 0xD0 + rst])
                rst = (rst + 1) % 8
                preds = [0] * len(cs)
            for i, by, bx in unit:
                preds[i] = code_block(bits, cs[i], cs[i]['blocks'][by, bx], preds[i])
        bits.flush()
        ids = bytes(sum(([c['id'], (min(c['t'], 1) << 4) | min(c['t'], 1)] for c in cs), []))
        return seg(0xDA, bytes([len(cs)]) + ids + bytes([0, 63, 0])) + bytes(bits.out)

    def seg(m, payload):
        return bytes([0xFF, m, (len(payload) + 2) >> 8, (len(payload) + 2) & 255]) + payload

    out = b'\xFF\xD8'
    if marker_app == b'jfif':
        out += seg(0xE0, b'JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00')
    elif marker_app == b'adobe-rgb':
        out += seg(0xEE, b'Adobe\x00\x64\x00\x00\x00\x00\x00')  # transform 0: no colour transform
    for t in sorted(set(qsel)):
        nat = q[t].reshape(64)
        vals = [int(nat[zz[i]]) for i in range(64)]
        out += seg(0xDB, bytes([(0x10 if dqt16 else 0) | t]) + b''.join(v.to_bytes(2 if dqt16 else 1, 'big') for v in vals))
    out += seg(sof, bytes([8, h_img >> 8, h_img & 255, w_img >> 8, w_img & 255, len(comps)]) +
               b''.join(bytes([c['id'], (c['h'] << 4) | c['v'], c['t']]) for c in comps))
    for (tc, th), (counts, values) in sorted(huff.items()):
        if len(comps) > 1 or th == 0:
            out += seg(0xC4, bytes([(tc << 4) | th] + counts + values))
    if restart:
        out += seg(0xDD, bytes([restart >> 8, restart & 255]))
    if interleaved:
        out += scan(comps)
    else:
        for c in comps:
            out += scan([c])
    return out + b'\xFF\xD9'


def ycbcr(arr):
    a = arr.astype(np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return [0.299 * r + 0.587 * g + 0.114 * b,
            -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
            0.5 * r - 0.418688 * g - 0.081312 * b + 128]


# ---- fixtures ----------------------------------------------------------------------------------

def make_jpegs(folder):
    os.makedirs(folder)
    manifest = []

    def add(name, data, note):
        with open(os.path.join(folder, name + '.jpg'), 'wb') as f:
            f.write(data)
        im = Image.open(io.BytesIO(data))
        entry = {'name': name, 'note': note}
        if im.info.get('progressive') or im.info.get('progression'):
            entry['unsupported'] = 'progressive'
        else:
            im.load()
            with open(os.path.join(folder, name + '.rgb'), 'wb') as f:
                f.write(im.tobytes())
            entry.update(width=im.width, height=im.height, channels=len(im.getbands()))
        manifest.append(entry)

    rgb = pattern(45, 35, 1)
    add('pil-444-q90', pil_jpeg(rgb, quality=90, subsampling=0), 'PIL, 4:4:4, quality 90')
    add('pil-444-q100', pil_jpeg(rgb, quality=100, subsampling=0), 'PIL, 4:4:4, quality 100 (large coefficients)')
    add('pil-422-q75', pil_jpeg(rgb, quality=75, subsampling=1), 'PIL, 4:2:2, quality 75')
    add('pil-420-q75', pil_jpeg(rgb, quality=75, subsampling=2), 'PIL, 4:2:0, quality 75')
    add('pil-420-optimized', pil_jpeg(pattern(40, 24, 2), quality=85, subsampling=2, optimize=True),
        'PIL, 4:2:0, optimised (image-specific) Huffman tables')
    add('pil-420-odd', pil_jpeg(pattern(33, 17, 3), quality=50, subsampling=2), 'PIL, 4:2:0, 33x17 (partial MCUs)')
    add('pil-420-tiny', pil_jpeg(pattern(3, 5, 4), quality=80, subsampling=2), 'PIL, 4:2:0, 3x5 (chroma 2 wide: replicated)')
    add('pil-grey', pil_jpeg(pattern(37, 29, 5)[..., 1].copy(), quality=85), 'PIL, greyscale')
    qt = [[2 + (i // 8) * 3 + (i % 8) * 3 for i in range(64)], [3 + (i // 8) * 4 + (i % 8) * 4 for i in range(64)]]
    qt[0][63], qt[1][62], qt[1][63] = 300, 400, 1000  # > 255: libjpeg writes 16-bit DQT and SOF1 (and warns 'too coarse for baseline')
    add('pil-sof1-dqt16', pil_jpeg(rgb, qtables=qt, subsampling=0), 'PIL, SOF1 with 16-bit quantisation tables')
    add('pil-progressive', pil_jpeg(rgb, quality=80, progressive=True), 'PIL, progressive (must be refused)')

    ycc = ycbcr(rgb)
    # 40 x 20 at 4:2:0: a lone component's scan covers fewer blocks (5 x 3 luma) than its share of
    # whole MCUs (6 x 4), which is what tells non-interleaved scans apart (T.81 A.2.2).
    ycc2 = ycbcr(pattern(40, 20, 6))
    add('enc-420-rst', encode(ycc2, [(2, 2), (1, 1), (1, 1)], [0, 1, 1], 80, restart=2),
        'own encoder, 4:2:0, restart every 2 MCUs')
    add('enc-444-rst1', encode(ycc, [(1, 1), (1, 1), (1, 1)], [0, 1, 1], 90, restart=1),
        'own encoder, 4:4:4, restart every MCU')
    add('enc-440', encode(ycc, [(1, 2), (1, 1), (1, 1)], [0, 1, 1], 80), 'own encoder, 4:4:0 (vertical 2:1)')
    add('enc-411', encode(ycc, [(4, 1), (1, 1), (1, 1)], [0, 1, 1], 80), 'own encoder, 4:1:1 (horizontal 4:1, replicated)')
    add('enc-420-scans-rst', encode(ycc2, [(2, 2), (1, 1), (1, 1)], [0, 1, 1], 80, restart=5, interleaved=False),
        'own encoder, 4:2:0, one scan per component, restart every 5 blocks')
    add('enc-grey-rst', encode([rgb[..., 0].astype(np.float64)], [(1, 1)], [0], 85, restart=3), 'own encoder, greyscale, restart every 3 MCUs')
    add('enc-adobe-rgb', encode([rgb[..., i].astype(np.float64) for i in range(3)], [(1, 1)] * 3, [0, 0, 0], 90, marker_app=b'adobe-rgb'),
        'own encoder, Adobe APP14 transform 0 (RGB, no YCbCr)')
    add('enc-sof1', encode(ycc, [(2, 1), (1, 1), (1, 1)], [0, 1, 1], 70, sof=0xC1, dqt16=True),
        'own encoder, SOF1, 4:2:2, 16-bit DQT with small values')
    with open(os.path.join(folder, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')


CLASSES = {
    'train': [('n90000001', (200, 40, 40)), ('n90000002', (40, 180, 60)), ('n90000003', (40, 60, 200))],
    'val': [('n90000004', (220, 200, 40)), ('n90000005', (190, 40, 190))],
    'test': [('n90000006', (40, 190, 200)), ('n90000007', (128, 128, 128))],
}


def class_image(colour, w, h, seed):
    """The class colour with a soft gradient and a faint texture: distinct per class, small as JPEG."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    shade = 20 * np.sin(x / w * np.pi * (1 + seed % 3)) + 15 * (y / h - 0.5)
    img = np.array(colour, np.float64)[None, None, :] + shade[..., None] + rng.normal(0, 3, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_root(folder):
    os.makedirs(os.path.join(folder, 'images'))
    os.makedirs(os.path.join(folder, '..', 'expected'), exist_ok=True)
    seed = 100
    for split, classes in CLASSES.items():
        lines = ['filename,label']
        for wnid, colour in classes:
            for k in range(1, 5):
                name = f'{wnid}_{k:08d}.jpg'
                seed += 1
                w, h = (100, 70) if (wnid, k) == ('n90000001', 2) else (84, 84)
                img = class_image(colour, w, h, seed)
                path = os.path.join(folder, 'images', name)
                if (wnid, k) == ('n90000007', 3):
                    Image.fromarray(img[..., 0].copy()).save(path, 'JPEG', quality=75)  # a greyscale file
                else:
                    Image.fromarray(img).save(path, 'JPEG', quality=75, subsampling=2 if k % 2 else 0)
                if (w, h) != (84, 84):
                    small = Image.open(path).resize((21, 21), Image.BOX)
                    with open(os.path.join(folder, '..', 'expected', name[:-4] + '.box21.rgb'), 'wb') as f:
                        f.write(small.tobytes())
                lines.append(f'{name},{wnid}')
        with open(os.path.join(folder, f'{split}.csv'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    make_jpegs(os.path.join(OUT, 'jpeg'))
    make_root(os.path.join(OUT, 'root'))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f'wrote {OUT}: {total} bytes')
