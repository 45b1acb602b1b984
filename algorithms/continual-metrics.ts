// Continual-learning metrics, as plain numbers from recorded accuracies (no tensors), so they can be
// computed for any learner and checked by hand.
//
// Task sequences (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory", section 4): R[i][j] is the
// test accuracy on task j after training on tasks 0..i, T x T with values in [0, 1]. Rows are the
// moments of evaluation and columns the tasks, so the last row is the final model, the diagonal is
// each task just after it was learnt and the entries above the diagonal are tasks not yet trained on
// (what forward transfer reads). Every entry must be measured (finite), including those above the
// diagonal that only forwardTransfer reads.
//
// Streams (Caccia et al. 2020, "Online Fast Adaptation and Knowledge Accumulation", OSAKA): a
// sequence of per-step records scored before the step's labels were used for learning (test, then
// train), with a flag where the task switched. The stream is cut into segments at the switches; a
// segment's domain is the data distribution it came from, and a domain may come back.

import { summarize, type Summary } from './task.js';

/** R[i][j]: test accuracy on task j after training on tasks 0..i (T x T, values in [0, 1]). */
export type AccuracyMatrix = readonly (readonly number[])[];

/** The usual three numbers of a continual-learning run (GEM section 4). */
export interface Transfer {
  /** Average accuracy of the final model over all tasks. */
  acc: number;
  /** Backward transfer: how much learning later tasks changed accuracy on earlier ones (negative: forgetting). */
  bwt: number;
  /** Forward transfer: accuracy on a task before training on it, above that of a random initialisation. */
  fwt?: number;
}

const show = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** T after checking that R is a non-empty square matrix of accuracies in [0, 1]. */
function checkMatrix(fn: string, R: AccuracyMatrix): number {
  if (!Array.isArray(R) || R.length === 0) throw new Error(`${fn}: R must be a non-empty T x T array of rows, got ${show(R)}`);
  const T = R.length;
  R.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== T) {
      throw new Error(`${fn}: R must be square (T x T with T = ${T} rows), but row ${i} has ${Array.isArray(row) ? row.length + ' entries' : 'value ' + show(row)}`);
    }
    row.forEach((v, j) => {
      // Percentages (0..100) are the likeliest mix-up, and would silently scale every metric.
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
        throw new Error(`${fn}: R[${i}][${j}] must be a finite accuracy in [0, 1], got ${show(v)}`);
      }
    });
  });
  return T;
}

function checkAtLeastTwo(fn: string, T: number): void {
  // Both transfers average over T - 1 tasks; with one task there is nothing to transfer to or from.
  if (T < 2) throw new Error(`${fn}: needs at least 2 tasks, got a ${T} x ${T} matrix`);
}

/** ACC = mean_j R[T-1][j]: the final model's accuracy averaged over all tasks. */
export function averageAccuracy(R: AccuracyMatrix): number {
  const T = checkMatrix('averageAccuracy', R);
  return mean(R[T - 1]);
}

/**
 * BWT = mean over j < T-1 of (R[T-1][j] - R[j][j]): the change in accuracy on each earlier task
 * between just after learning it and the end. Negative means forgetting. Needs T >= 2.
 */
export function backwardTransfer(R: AccuracyMatrix): number {
  const T = checkMatrix('backwardTransfer', R);
  checkAtLeastTwo('backwardTransfer', T);
  return mean(Array.from({ length: T - 1 }, (_, j) => R[T - 1][j] - R[j][j]));
}

/**
 * FWT = mean over j >= 1 of (R[j-1][j] - b[j]): accuracy on task j just before training on it, above
 * b[j], the accuracy on task j of the model at its random initialisation (same seed). b has one entry
 * per task; b[0] is not used (task 0 has nothing before it) but is required so indices line up with R.
 * Needs T >= 2.
 */
export function forwardTransfer(R: AccuracyMatrix, b: readonly number[]): number {
  const T = checkMatrix('forwardTransfer', R);
  checkAtLeastTwo('forwardTransfer', T);
  if (!Array.isArray(b) || b.length !== T) {
    throw new Error(`forwardTransfer: b must hold the random-initialisation accuracy of each of the ${T} tasks, got ${Array.isArray(b) ? b.length + ' entries' : show(b)}`);
  }
  b.forEach((v, j) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) throw new Error(`forwardTransfer: b[${j}] must be a finite accuracy in [0, 1], got ${show(v)}`);
  });
  return mean(Array.from({ length: T - 1 }, (_, k) => R[k][k + 1] - b[k + 1]));
}

/**
 * The curve i -> mean_{j <= i} R[i][j], i = 0..T-1: average accuracy over the tasks seen so far after
 * each task (EWC's Figure 2B, Kirkpatrick et al. 2017). Its last point is averageAccuracy(R).
 */
export function averageAccuracyAfterEach(R: AccuracyMatrix): number[] {
  checkMatrix('averageAccuracyAfterEach', R);
  return R.map((row, i) => mean(row.slice(0, i + 1)));
}

/** ACC and BWT of R, and FWT when the random-initialisation accuracies b are given. Needs T >= 2. */
export function continualSummary(R: AccuracyMatrix, b?: readonly number[]): Transfer {
  const T = checkMatrix('continualSummary', R);
  checkAtLeastTwo('continualSummary', T);
  const out: Transfer = { acc: averageAccuracy(R), bwt: backwardTransfer(R) };
  if (b !== undefined) out.fwt = forwardTransfer(R, b);
  return out;
}

/**
 * Means with 95% confidence intervals of the metrics of several runs (seeds). fwt is summarised only
 * when every run has it: a mean over a subset of the runs would not be comparable to acc and bwt.
 */
export function summarizeContinual(runs: readonly Transfer[]): { acc: Summary; bwt: Summary; fwt?: Summary } {
  if (!Array.isArray(runs) || runs.length === 0) throw new Error(`summarizeContinual: needs at least one run, got ${show(runs)}`);
  const withFwt = runs.filter((r) => r.fwt !== undefined).length;
  if (withFwt !== 0 && withFwt !== runs.length) {
    throw new Error(`summarizeContinual: ${withFwt} of ${runs.length} runs have fwt; give b to all runs or to none`);
  }
  const out: { acc: Summary; bwt: Summary; fwt?: Summary } = { acc: summarize(runs.map((r) => r.acc)), bwt: summarize(runs.map((r) => r.bwt)) };
  if (withFwt) out.fwt = summarize(runs.map((r) => r.fwt!));
  return out;
}

// ---- Streams (OSAKA) ----

/**
 * One step of an online stream, scored before the step's labels were used for learning (so the
 * accuracy is a prediction on unseen data, not a training accuracy).
 */
export interface StreamRecord {
  /** The step number: integers, strictly increasing along the stream (gaps allowed). */
  step: number;
  /** Which distribution the step's data came from. May change only where `switched` is set. */
  domain: string;
  /** A task switch happened at this step: this record starts a new segment. */
  switched: boolean;
  /** Examples predicted correctly at this step, out of `total` (> 0). */
  correct: number;
  total: number;
}

interface Segment { domain: string; start: number; end: number; switched: boolean }

/**
 * Checks the stream and cuts it into segments [start, end) of record indices. The first record always
 * starts a segment; it counts as a switch only when flagged.
 */
function segments(fn: string, records: readonly StreamRecord[]): Segment[] {
  if (!Array.isArray(records) || records.length === 0) throw new Error(`${fn}: records must be a non-empty array of stream records, got ${show(records)}`);
  const out: Segment[] = [];
  records.forEach((r, i) => {
    const at = `${fn}: record ${i}`;
    if (typeof r !== 'object' || r === null) throw new Error(`${at} is not a stream record: ${show(r)}`);
    if (!Number.isSafeInteger(r.step)) throw new Error(`${at}: step must be an integer, got ${show(r.step)}`);
    if (i > 0 && r.step <= records[i - 1].step) {
      throw new Error(`${at}: steps must strictly increase, got step ${r.step} after step ${records[i - 1].step}`);
    }
    if (typeof r.domain !== 'string') throw new Error(`${at} (step ${r.step}): domain must be a string, got ${show(r.domain)}`);
    if (typeof r.switched !== 'boolean') throw new Error(`${at} (step ${r.step}): switched must be a boolean, got ${show(r.switched)}`);
    if (typeof r.total !== 'number' || !Number.isFinite(r.total) || r.total <= 0) {
      throw new Error(`${at} (step ${r.step}): total must be a finite number > 0, got ${show(r.total)}`);
    }
    if (typeof r.correct !== 'number' || !Number.isFinite(r.correct) || r.correct < 0 || r.correct > r.total) {
      throw new Error(`${at} (step ${r.step}): correct must be a finite number in [0, total = ${r.total}], got ${show(r.correct)}`);
    }
    if (i === 0 || r.switched) {
      if (out.length) out[out.length - 1].end = i;
      out.push({ domain: r.domain, start: i, end: records.length, switched: r.switched });
    } else if (r.domain !== records[i - 1].domain) {
      // A change of distribution that is not marked as a switch would be attributed to the wrong segment.
      throw new Error(`${at}: domain changes from '${records[i - 1].domain}' to '${r.domain}' at step ${r.step} without switched: true`);
    }
  });
  return out;
}

/** Pooled accuracy (sum correct / sum total) of records [start, end). */
function pooled(records: readonly StreamRecord[], start: number, end: number): number {
  let c = 0, t = 0;
  for (let i = start; i < end; i++) { c += records[i].correct; t += records[i].total; }
  return c / t;
}

/**
 * Online accuracy, pooled over examples (sum correct / sum total, so a step with more examples weighs
 * more; with equal step sizes it is the mean of the per-step accuracies): over the whole stream and
 * per domain (keys in order of first appearance).
 */
export function onlineAccuracy(records: readonly StreamRecord[]): { overall: number; byDomain: Record<string, number> } {
  segments('onlineAccuracy', records);
  const sums = new Map<string, [number, number]>();
  for (const r of records) {
    const s = sums.get(r.domain) ?? [0, 0];
    s[0] += r.correct; s[1] += r.total;
    sums.set(r.domain, s);
  }
  return {
    overall: pooled(records, 0, records.length),
    byDomain: Object.fromEntries([...sums].map(([d, [c, t]]) => [d, c / t])),
  };
}

/**
 * The fast-adaptation curve: entry k (k = 0..horizon-1) is the accuracy, pooled over all switches, of
 * the records k steps after a switch (step - switch step = k; k = 0 is the switch step itself, scored
 * before its labels were seen), counting only records in the segment the switch started. null where
 * no switch has a record k steps after it (the segments were shorter, or steps were skipped).
 */
export function accuracySinceSwitch(records: readonly StreamRecord[], horizon: number): (number | null)[] {
  const segs = segments('accuracySinceSwitch', records);
  if (!Number.isSafeInteger(horizon) || horizon < 1) throw new Error(`accuracySinceSwitch: horizon must be a positive integer, got ${show(horizon)}`);
  const correct = new Array<number>(horizon).fill(0), total = new Array<number>(horizon).fill(0);
  for (const s of segs) {
    if (!s.switched) continue;
    const first = records[s.start].step;
    for (let i = s.start; i < s.end; i++) {
      const k = records[i].step - first;
      if (k >= horizon) break;
      correct[k] += records[i].correct;
      total[k] += records[i].total;
    }
  }
  return correct.map((c, k) => (total[k] ? c / total[k] : null));
}

/**
 * Knowledge accumulation: pooled accuracy on segments whose domain appeared in an earlier segment
 * (seenBefore: the learner could recall it) and on segments showing their domain for the first time
 * (firstTime). A switch to a new task within the same domain counts as seen before. null when there
 * is no segment of that kind.
 */
export function recoveryAccuracy(records: readonly StreamRecord[]): { seenBefore: number | null; firstTime: number | null } {
  const segs = segments('recoveryAccuracy', records);
  const seen = new Set<string>();
  const sums = { seenBefore: [0, 0], firstTime: [0, 0] };
  for (const s of segs) {
    const acc = seen.has(s.domain) ? sums.seenBefore : sums.firstTime;
    seen.add(s.domain);
    for (let i = s.start; i < s.end; i++) { acc[0] += records[i].correct; acc[1] += records[i].total; }
  }
  const ratio = ([c, t]: number[]) => (t ? c / t : null);
  return { seenBefore: ratio(sums.seenBefore), firstTime: ratio(sums.firstTime) };
}

/**
 * Recovery time after each switch that follows a segment: steps (step - switch step) until the first
 * record of the new segment whose accuracy (correct / total) reaches `fraction` of the previous
 * segment's pooled accuracy; 0 when the switch step itself does. null for a switch whose segment ends
 * first. `mean` is over the switches that recovered (null when none did); `perSwitch` says which.
 */
export function recoveryTime(records: readonly StreamRecord[], fraction = 0.9)
  : { mean: number | null; perSwitch: { step: number; time: number | null }[] } {
  const segs = segments('recoveryTime', records);
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) throw new Error(`recoveryTime: fraction must be in (0, 1], got ${show(fraction)}`);
  const perSwitch: { step: number; time: number | null }[] = [];
  for (let n = 1; n < segs.length; n++) {
    const prev = segs[n - 1], s = segs[n];
    const target = fraction * pooled(records, prev.start, prev.end);
    const first = records[s.start].step;
    let time: number | null = null;
    for (let i = s.start; i < s.end; i++) {
      if (records[i].correct / records[i].total >= target) { time = records[i].step - first; break; }
    }
    perSwitch.push({ step: first, time });
  }
  const times = perSwitch.map((p) => p.time).filter((t): t is number => t !== null);
  return { mean: times.length ? mean(times) : null, perSwitch };
}
