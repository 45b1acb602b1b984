// Continual-learning metrics on hand-made accuracy matrices and a scripted stream, every expected
// value worked out by hand in the comments (GEM's ACC / BWT / FWT, EWC's average-accuracy curve,
// OSAKA's online, fast-adaptation and recovery measures), and every input error.

import { describe, it, expect } from 'vitest';
import {
  averageAccuracy, backwardTransfer, forwardTransfer, averageAccuracyAfterEach, continualSummary, summarizeContinual,
  onlineAccuracy, accuracySinceSwitch, recoveryAccuracy, recoveryTime,
} from '../algorithms/index.js';
import type { StreamRecord } from '../algorithms/index.js';

// Row i: after training on tasks 0..i; column j: task j. Forgetting below the diagonal, some transfer
// above it, and no symmetry, so a transposed reading gives other numbers.
const R = [
  [0.9, 0.2, 0.15],
  [0.8, 0.95, 0.3],
  [0.7, 0.85, 0.9],
];
const b = [0.5, 0.1, 0.2];

describe('task-sequence metrics (GEM section 4)', () => {
  it('ACC, BWT, FWT and the average-accuracy curve of a 3 x 3 run: BWT negative, FWT positive', () => {
    // ACC = (0.7 + 0.85 + 0.9) / 3 = 2.45 / 3
    expect(averageAccuracy(R)).toBeCloseTo(2.45 / 3, 12);
    // BWT = ((0.7 - 0.9) + (0.85 - 0.95)) / 2 = (-0.2 - 0.1) / 2 = -0.15
    expect(backwardTransfer(R)).toBeCloseTo(-0.15, 12);
    // FWT = ((R[0][1] - b[1]) + (R[1][2] - b[2])) / 2 = ((0.2 - 0.1) + (0.3 - 0.2)) / 2 = 0.1; b[0] unused.
    expect(forwardTransfer(R, b)).toBeCloseTo(0.1, 12);
    expect(forwardTransfer(R, [0, 0.1, 0.2])).toBeCloseTo(0.1, 12);
    // Against a uniform chance level: ((0.2 - 0.1) + (0.3 - 0.1)) / 2 = 0.15.
    expect(forwardTransfer(R, [0.1, 0.1, 0.1])).toBeCloseTo(0.15, 12);
    // Curve: 0.9; (0.8 + 0.95) / 2 = 0.875; (0.7 + 0.85 + 0.9) / 3.
    const curve = averageAccuracyAfterEach(R);
    expect(curve).toHaveLength(3);
    [0.9, 0.875, 2.45 / 3].forEach((v, i) => expect(curve[i]).toBeCloseTo(v, 12));
    expect(continualSummary(R, b)).toEqual({ acc: averageAccuracy(R), bwt: backwardTransfer(R), fwt: forwardTransfer(R, b) });
    expect(continualSummary(R)).toEqual({ acc: averageAccuracy(R), bwt: backwardTransfer(R) });
    expect('fwt' in continualSummary(R)).toBe(false);
  });

  it('a 2 x 2 run with positive backward transfer, a 4 x 4 one with no forgetting, and a 1 x 1 accuracy', () => {
    // Learning task 1 improved task 0: BWT = 0.7 - 0.6 = 0.1; FWT = 0.3 - 0.1 = 0.2; ACC = 0.75.
    const R2 = [[0.6, 0.3], [0.7, 0.8]];
    expect(backwardTransfer(R2)).toBeCloseTo(0.1, 12);
    expect(forwardTransfer(R2, [0.1, 0.1])).toBeCloseTo(0.2, 12);
    expect(averageAccuracy(R2)).toBeCloseTo(0.75, 12);
    // A learner that remembers everything and knows nothing ahead: BWT 0, FWT = mean(0 - b_j) = -0.1.
    const R4 = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]];
    expect(backwardTransfer(R4)).toBe(0);
    expect(forwardTransfer(R4, [0.1, 0.1, 0.1, 0.1])).toBeCloseTo(-0.1, 12);
    expect(averageAccuracyAfterEach(R4)).toEqual([1, 1, 1, 1]);
    expect(averageAccuracy([[0.4]])).toBe(0.4);
    expect(averageAccuracyAfterEach([[0.4]])).toEqual([0.4]);
  });

  it('summarizeContinual: means with 95% intervals over runs, fwt only when every run has it', () => {
    // acc 0.8 and 0.6: mean 0.7, sd = sqrt(0.02), ci = 1.96 sd / sqrt(2) = 1.96 * 0.1.
    const s = summarizeContinual([{ acc: 0.8, bwt: -0.1, fwt: 0.05 }, { acc: 0.6, bwt: -0.3, fwt: 0.15 }]);
    expect(s.acc.mean).toBeCloseTo(0.7, 12);
    expect(s.acc.ci95).toBeCloseTo(0.196, 12);
    expect(s.bwt.mean).toBeCloseTo(-0.2, 12);
    expect(s.fwt!.mean).toBeCloseTo(0.1, 12);
    expect(s.acc.n).toBe(2);
    expect(summarizeContinual([{ acc: 0.5, bwt: 0 }]).fwt).toBeUndefined();
    expect(() => summarizeContinual([{ acc: 0.8, bwt: 0, fwt: 0.1 }, { acc: 0.6, bwt: 0 }])).toThrow(/summarizeContinual: 1 of 2 runs have fwt/);
    expect(() => summarizeContinual([])).toThrow(/summarizeContinual: needs at least one run/);
  });

  it('rejects matrices that are not square, empty, non-finite or outside [0, 1], with the function named', () => {
    expect(() => averageAccuracy([])).toThrow(/averageAccuracy: R must be a non-empty T x T array/);
    expect(() => averageAccuracy([[0.5, 0.5], [0.5]])).toThrow(/averageAccuracy: R must be square .* row 1 has 1 entries/);
    expect(() => backwardTransfer([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])).toThrow(/backwardTransfer: R must be square \(T x T with T = 2 rows\), but row 0 has 3 entries/);
    expect(() => averageAccuracyAfterEach([[0.5, NaN], [0.5, 0.5]])).toThrow(/averageAccuracyAfterEach: R\[0\]\[1\] must be a finite accuracy in \[0, 1\], got NaN/);
    expect(() => averageAccuracy([[0.5, 0.5], [0.5, Infinity]])).toThrow(/R\[1\]\[1\] .* got Infinity/);
    expect(() => averageAccuracy([[90, 20], [80, 95]])).toThrow(/averageAccuracy: R\[0\]\[0\] must be a finite accuracy in \[0, 1\], got 90/);
    expect(() => averageAccuracy([[0.5, -0.1], [0.5, 0.5]])).toThrow(/R\[0\]\[1\] .* got -0.1/);
    expect(() => averageAccuracy([[0.5, '0.5' as any], [0.5, 0.5]])).toThrow(/R\[0\]\[1\] .* got "0.5"/);
    expect(() => averageAccuracy('R' as any)).toThrow(/averageAccuracy: R must be a non-empty/);
    expect(() => backwardTransfer([[0.5]])).toThrow(/backwardTransfer: needs at least 2 tasks, got a 1 x 1 matrix/);
    expect(() => forwardTransfer([[0.5]], [0.1])).toThrow(/forwardTransfer: needs at least 2 tasks/);
    expect(() => continualSummary([[0.5]])).toThrow(/continualSummary: needs at least 2 tasks/);
    expect(() => forwardTransfer(R, [0.1, 0.1])).toThrow(/forwardTransfer: b must hold the random-initialisation accuracy of each of the 3 tasks, got 2 entries/);
    expect(() => forwardTransfer(R, undefined as any)).toThrow(/forwardTransfer: b must hold/);
    expect(() => forwardTransfer(R, [0.1, NaN, 0.1])).toThrow(/forwardTransfer: b\[1\] must be a finite accuracy in \[0, 1\], got NaN/);
    expect(() => continualSummary(R, [0.1, 0.1])).toThrow(/forwardTransfer: b must hold/);
  });
});

// A scripted stream: domain A, a switch to B, back to A (seen before), then C (new), with one step of
// 4 examples so that pooling over examples differs from averaging per-step accuracies.
const rec = (step: number, domain: string, switched: boolean, correct: number, total = 10): StreamRecord => ({ step, domain, switched, correct, total });
const stream: StreamRecord[] = [
  rec(0, 'A', false, 5), rec(1, 'A', false, 8), rec(2, 'A', false, 9),            // segment 0: A, 22/30
  rec(3, 'B', true, 2), rec(4, 'B', false, 5), rec(5, 'B', false, 7), rec(6, 'B', false, 8), // segment 1: B, 22/40
  rec(7, 'A', true, 6), rec(8, 'A', false, 9),                                       // segment 2: A again, 15/20
  rec(9, 'C', true, 1), rec(10, 'C', false, 2, 4),                                   // segment 3: C, 3/14
];

describe('stream metrics (OSAKA)', () => {
  it('onlineAccuracy pools over examples, overall and per domain', () => {
    const { overall, byDomain } = onlineAccuracy(stream);
    // (22 + 22 + 15 + 3) / (30 + 40 + 20 + 14) = 62 / 104 (the mean of per-step accuracies is 6.5 / 11).
    expect(overall).toBeCloseTo(62 / 104, 12);
    // A: (22 + 15) / 50; B: 22 / 40; C: 3 / 14 (not (0.1 + 0.5) / 2).
    expect(Object.keys(byDomain)).toEqual(['A', 'B', 'C']);
    expect(byDomain.A).toBeCloseTo(0.74, 12);
    expect(byDomain.B).toBeCloseTo(0.55, 12);
    expect(byDomain.C).toBeCloseTo(3 / 14, 12);
  });

  it('accuracySinceSwitch averages the k-th step after each switch, within the switch\'s segment', () => {
    // Switches at steps 3, 7, 9. k = 0: (2 + 6 + 1) / 30; k = 1: (5 + 9 + 2) / 24; k = 2: only step 5
    // (step 9 is k = 2 after the switch at 7 but belongs to the next segment): 0.7; k = 3: step 6, 0.8;
    // k = 4: nothing. The start of the stream (step 0, not flagged) is not a switch.
    const curve = accuracySinceSwitch(stream, 5);
    expect(curve).toHaveLength(5);
    [0.3, 2 / 3, 0.7, 0.8].forEach((v, k) => expect(curve[k]).toBeCloseTo(v, 12));
    expect(curve[4]).toBeNull();
    expect(accuracySinceSwitch(stream, 1)).toEqual([curve[0]]);
  });

  it('recoveryAccuracy separates segments of domains seen before from first visits', () => {
    // Seen before: segment 2 (A again), 15 / 20. First time: segments 0, 1, 3: (22 + 22 + 3) / 84.
    const r = recoveryAccuracy(stream);
    expect(r.seenBefore).toBeCloseTo(0.75, 12);
    expect(r.firstTime).toBeCloseTo(47 / 84, 12);
    // One domain and no switch: nothing is revisited. A switch to a new task within the same domain
    // starts a segment whose domain was seen before.
    expect(recoveryAccuracy(stream.slice(0, 3))).toEqual({ seenBefore: null, firstTime: 22 / 30 });
    const within = [rec(0, 'A', false, 4), rec(1, 'A', true, 6)];
    expect(recoveryAccuracy(within)).toEqual({ seenBefore: 0.6, firstTime: 0.4 });
  });

  it('recoveryTime counts steps until a step reaches the fraction of the previous segment\'s accuracy', () => {
    // Switch at 3: target 0.9 * 22/30 = 0.66; steps 3, 4, 5 score 0.2, 0.5, 0.7: time 2.
    // Switch at 7: target 0.9 * 22/40 = 0.495; step 7 scores 0.6: time 0.
    // Switch at 9: target 0.9 * 15/20 = 0.675; steps 9, 10 score 0.1, 0.5: never (null).
    const r = recoveryTime(stream);
    expect(r.perSwitch).toEqual([{ step: 3, time: 2 }, { step: 7, time: 0 }, { step: 9, time: null }]);
    expect(r.mean).toBe(1);
    // fraction 0.5: targets 0.3667, 0.275, 0.375: times 1 (step 4 scores 0.5), 0, 1 (step 10 scores 0.5).
    const half = recoveryTime(stream, 0.5);
    expect(half.perSwitch.map((p) => p.time)).toEqual([1, 0, 1]);
    expect(half.mean).toBeCloseTo(2 / 3, 12);
    // fraction 1 at the switch to C: 0.75 is never reached; none recovered gives mean null.
    expect(recoveryTime(stream.slice(7), 1)).toEqual({ mean: null, perSwitch: [{ step: 9, time: null }] });
    expect(recoveryTime(stream.slice(0, 3))).toEqual({ mean: null, perSwitch: [] });
    // Reaching the target exactly counts: fraction 1 of 0.5 is met by 5 / 10 one step after the switch.
    const exact = [rec(0, 'A', false, 5), rec(1, 'A', false, 5), rec(2, 'B', true, 4), rec(3, 'B', false, 5)];
    expect(recoveryTime(exact, 1)).toEqual({ mean: 1, perSwitch: [{ step: 2, time: 1 }] });
    // The target comes from the segment just before the switch, not the whole stream so far: at the
    // switch to C it is 1 * 6 / 20 = 0.3 (met at once by 0.4), not 16 / 30.
    const last = [rec(0, 'A', false, 10), rec(1, 'B', true, 2), rec(2, 'B', false, 4), rec(3, 'C', true, 4)];
    expect(recoveryTime(last, 1).perSwitch).toEqual([{ step: 1, time: null }, { step: 3, time: 0 }]);
  });

  it('times are in steps, not records, when steps are skipped; a flagged first record is a switch with nothing before it', () => {
    const sparse = [rec(0, 'A', true, 8), rec(10, 'B', true, 1), rec(20, 'B', false, 3), rec(30, 'B', false, 9)];
    // Switch at 10: target 0.72; 0.1 at step 10, 0.3 at 20, 0.9 at 30: 20 steps. The switch at 0 has no
    // segment before it, so no recovery time.
    expect(recoveryTime(sparse)).toEqual({ mean: 20, perSwitch: [{ step: 10, time: 20 }] });
    // k = 0: steps 0 and 10, (8 + 1) / 20; k = 10: step 20; k = 20: step 30; every other k: nothing.
    const curve = accuracySinceSwitch(sparse, 21);
    expect(curve[0]).toBeCloseTo(0.45, 12);
    expect(curve[10]).toBeCloseTo(0.3, 12);
    expect(curve[20]).toBeCloseTo(0.9, 12);
    expect(curve.filter((v) => v !== null)).toHaveLength(3);
  });

  it('rejects malformed streams and options, naming the function, the record and the value', () => {
    expect(() => onlineAccuracy([])).toThrow(/onlineAccuracy: records must be a non-empty array/);
    expect(() => recoveryTime([rec(0, 'A', false, 5), rec(0, 'A', false, 5)])).toThrow(/recoveryTime: record 1: steps must strictly increase, got step 0 after step 0/);
    expect(() => onlineAccuracy([rec(1.5, 'A', false, 5)])).toThrow(/onlineAccuracy: record 0: step must be an integer, got 1.5/);
    expect(() => onlineAccuracy([rec(0, 'A', false, 11)])).toThrow(/onlineAccuracy: record 0 \(step 0\): correct must be a finite number in \[0, total = 10\], got 11/);
    expect(() => onlineAccuracy([rec(0, 'A', false, NaN)])).toThrow(/correct must be .* got NaN/);
    expect(() => onlineAccuracy([rec(0, 'A', false, 0, 0)])).toThrow(/onlineAccuracy: record 0 \(step 0\): total must be a finite number > 0, got 0/);
    expect(() => onlineAccuracy([rec(0, 'A', false, 1, Infinity)])).toThrow(/total must be .* got Infinity/);
    expect(() => onlineAccuracy([{ step: 0, domain: 3, switched: false, correct: 1, total: 1 } as any])).toThrow(/onlineAccuracy: record 0 \(step 0\): domain must be a string, got 3/);
    expect(() => onlineAccuracy([{ step: 0, domain: 'A', switched: 1, correct: 1, total: 1 } as any])).toThrow(/switched must be a boolean, got 1/);
    expect(() => onlineAccuracy([null as any])).toThrow(/onlineAccuracy: record 0 is not a stream record/);
    expect(() => accuracySinceSwitch([rec(0, 'A', false, 5), rec(1, 'B', false, 5)], 3))
      .toThrow(/accuracySinceSwitch: record 1: domain changes from 'A' to 'B' at step 1 without switched: true/);
    expect(() => accuracySinceSwitch(stream, 0)).toThrow(/accuracySinceSwitch: horizon must be a positive integer, got 0/);
    expect(() => accuracySinceSwitch(stream, 2.5)).toThrow(/horizon must be a positive integer, got 2.5/);
    expect(() => recoveryTime(stream, 0)).toThrow(/recoveryTime: fraction must be in \(0, 1\], got 0/);
    expect(() => recoveryTime(stream, 1.5)).toThrow(/recoveryTime: fraction must be in \(0, 1\], got 1.5/);
    expect(() => recoveryAccuracy(undefined as any)).toThrow(/recoveryAccuracy: records must be a non-empty array/);
  });
});
