// The tensor API: creation, layout ops, composites, random streams, printing, and clear errors.

import { describe, it, expect } from 'vitest';
import * as mg from '../index.js';
import { activate, backendNames } from './support/backends.js';

const f64 = { dtype: 'float64' as const };

describe('random numbers', () => {
  it('Philox4x32-10 matches the Random123 known-answer vectors', () => {
    const hex = (w: number[]) => w.map((x) => x.toString(16).padStart(8, '0')).join(' ');
    expect(hex(mg.philox(0, 0, 0, 0, 0, 0))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    expect(hex(mg.philox(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(mg.philox(0xa4093822, 0x299f31d0, 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344))).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });

  it('a seed gives the same stream on every backend; normal samples look normal', async () => {
    const seen: number[][] = [];
    for (const b of backendNames) {
      await activate(b);
      mg.tidy(() => { seen.push(Array.from(new mg.Random(5).normal([1000], f64).dataSync())); });
    }
    for (const s of seen) expect(s).toEqual(seen[0]);
    const m = seen[0].reduce((a, b) => a + b) / 1000;
    const sd = Math.sqrt(seen[0].reduce((a, b) => a + (b - m) ** 2, 0) / 1000);
    expect(Math.abs(m)).toBeLessThan(0.1);
    expect(Math.abs(sd - 1)).toBeLessThan(0.1);
    expect(new mg.Random(1).next()).not.toBe(new mg.Random(2).next());
  });
});

for (const b of backendNames) {
  describe(`tensor API on ${b}`, () => {
    it('creates, reshapes and slices', async () => {
      await activate(b);
      mg.tidy(() => {
        const x = mg.arange(6).reshape([2, -1]);
        expect(x.shape).toEqual([2, 3]);
        expect(x.arraySync()).toEqual([[0, 1, 2], [3, 4, 5]]);
        expect(x.T.arraySync()).toEqual([[0, 3], [1, 4], [2, 5]]);
        expect(mg.slice(x, [0, 1], [2, -1]).arraySync()).toEqual([[1, 2], [4, 5]]);
        expect(mg.concat([x, x], 0).shape).toEqual([4, 3]);
        expect(mg.stack([x, x], 1).shape).toEqual([2, 2, 3]);
        expect(mg.pad(mg.ones([1, 2]), [[1, 0], [0, 1]]).arraySync()).toEqual([[0, 0, 0], [1, 1, 0]]);
        expect(mg.gather(x, [2, 0, 2], 1).arraySync()).toEqual([[2, 0, 2], [5, 3, 5]]);
        expect(mg.oneHot([1, 0], 3).arraySync()).toEqual([[0, 1, 0], [1, 0, 0]]);
        expect(mg.eye(2).arraySync()).toEqual([[1, 0], [0, 1]]);
        expect(mg.where(mg.tensor([1, 0, 1]), 5, mg.tensor([7, 8, 9])).arraySync()).toEqual([5, 8, 5]);
        expect(mg.split(mg.arange(6), [2, 4]).map((t) => t.arraySync())).toEqual([[0, 1], [2, 3, 4, 5]]);
        expect(mg.linspace(0, 1, 3).arraySync()).toEqual([0, 0.5, 1]);
        expect(mg.sum(x, 1).arraySync()).toEqual([3, 12]);
        expect(mg.max(x, 0, true).arraySync()).toEqual([[3, 4, 5]]);
        expect(mg.mean(x).arraySync()).toBe(2.5);
        expect(mg.matmul(mg.tensor([1, 2]), mg.tensor([[1], [1]])).arraySync()).toEqual([3]);
      });
      const x = mg.tensor(2.5);
      expect(await x.item()).toBe(2.5);
      x.dispose();
    });

    it('composites: softmax sums to one, cross-entropy matches its definition', async () => {
      await activate(b);
      mg.tidy(() => {
        const logits = mg.tensor([[1, 2, 3], [1, 1, 1]], undefined, f64);
        expect(Array.from(mg.softmax(logits).sum(1).dataSync()).map((v) => +v.toFixed(12))).toEqual([1, 1]);
        const ce = mg.crossEntropy(logits, [2, 0]).dataSync()[0];
        const want = (-(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
        expect(ce).toBeCloseTo(want, 12);
        expect(mg.logSumExp(mg.tensor([1000, 1000], undefined, f64)).dataSync()[0]).toBeCloseTo(1000 + Math.log(2), 10);
      });
    });

    it('prints readably', async () => {
      await activate(b);
      mg.tidy(() => {
        expect(mg.tensor([[1, 2], [3, 4]]).toString()).toBe('Tensor(shape=[2, 2], dtype=float32,\n[[1., 2.],\n [3., 4.]])');
        expect(mg.arange(100).toString()).toContain('...');
      });
    });

    it('errors name the op and the shapes', async () => {
      await activate(b);
      mg.tidy(() => {
        expect(() => mg.add(mg.ones([2, 3]), mg.ones([4]))).toThrow('add: shapes [2, 3] and [4] cannot be broadcast together');
        expect(() => mg.matmul(mg.ones([2, 3]), mg.ones([4, 5]))).toThrow('matmul: inner dimensions differ: [2, 3] @ [4, 5] (3 vs 4)');
        expect(() => mg.mul(mg.ones([2]), mg.ones([2], f64))).toThrow('mul: dtype mismatch: [2] float32 vs [2] float64');
        expect(() => mg.conv2d(mg.ones([1, 2, 5, 5]), mg.ones([4, 3, 3, 3]))).toThrow('conv2d: input [1, 2, 5, 5] has 2 channels but filter [4, 3, 3, 3] expects 3');
        expect(() => mg.reshape(mg.ones([2, 3]), [4])).toThrow('reshape: cannot reshape [2, 3] (6 elements) to [4]');
        expect(() => mg.sum(mg.ones([2]), 3)).toThrow('sum: axis 3 is out of range for rank 1 (-1..0)');
        expect(() => mg.grad((x: mg.Tensor) => x.mul(2))(mg.ones([2]))).toThrow('grad: the function must return a one-element tensor (a scalar loss), got a tensor of shape [2]');
      });
    });

    it('using a disposed tensor throws a clear error', async () => {
      await activate(b);
      const x = mg.ones([3]);
      x.dispose();
      expect(() => x.add(1)).toThrow(/add: tensor #\d+ \[3\] float32 was disposed/);
      expect(() => x.dataSync()).toThrow(/dataSync: tensor #\d+ \[3\] float32 was disposed/);
    });

    it('NaN and Inf are detected on demand', async () => {
      await activate(b);
      await mg.tidy(async () => {
        const x = mg.tensor([1, -1]);
        expect(await mg.isFinite(x.log())).toBe(false);
        expect(await mg.isFinite(x.exp())).toBe(true);
        mg.setCheckNumerics(true);
        try {
          expect(() => x.sqrt()).toThrow('sqrt: produced NaN at flat index 1 of output [2] from inputs [2]');
        } finally {
          mg.setCheckNumerics(false);
        }
      });
    });
  });
}
