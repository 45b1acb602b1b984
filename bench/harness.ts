// Timing. Each contender is warmed up, then given an iteration count that makes one repetition last
// at least `minRepMs`; the repetitions of all contenders are interleaved (rep 1 of each, rep 2 of
// each, ...) with the order rotated every rep, so load spikes and thermal drift on a shared machine
// land on every engine alike instead of on whichever ran last.

export interface Contender {
  impl: string;
  threads: number;
  /** Runs before each of this contender's repetitions, untimed (tfjs's setBackend). */
  activate?: () => Promise<void>;
  /** One operation; frees what it made (tidy) before returning. */
  op: () => void;
  /** Milliseconds an equivalent call already took in this process (a cross-check): if that is long, it was the warm-up. */
  warmedUpMs?: number;
  /** Waits for queued work to complete (WebGPU); awaited inside the timed region of each repetition. */
  finish?: () => Promise<void>;
}

export interface TimingOptions {
  reps: number;
  minRepMs: number;
  warmupMs: number;
}

export interface Timing {
  /** Milliseconds per operation, one entry per repetition. */
  msPerOp: number[];
  itersPerRep: number;
}

// Run with --expose-gc (npm run bench does) so each repetition starts from a collected heap.
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const SLOW_OP_MS = 5000;

export async function timeInterleaved(cs: readonly Contender[], o: TimingOptions): Promise<Timing[]> {
  const iters: number[] = [];
  for (const c of cs) {
    await c.activate?.();
    // The first call pays for JIT, kernel setup and memory growth. An op that takes seconds is warm
    // after one call (or after the caller's equivalent one); more would only make the run longer.
    let per = c.warmedUpMs ?? 0;
    if (per < SLOW_OP_MS) {
      const tc = performance.now();
      c.op();
      await c.finish?.();
      per = performance.now() - tc;
    }
    if (per < SLOW_OP_MS) {
      let n = 0;
      const t0 = performance.now();
      do { c.op(); n++; await c.finish?.(); } while (performance.now() - t0 < o.warmupMs);
      per = (performance.now() - t0) / n;
    }
    iters.push(Math.max(1, Math.ceil(o.minRepMs / Math.max(per, 1e-6))));
  }
  const out: Timing[] = cs.map((_, i) => ({ msPerOp: [], itersPerRep: iters[i] }));
  for (let r = 0; r < o.reps; r++) {
    for (let k = 0; k < cs.length; k++) {
      const i = (r + k) % cs.length;
      const c = cs[i];
      await c.activate?.();
      gc();
      const t0 = performance.now();
      for (let j = 0; j < iters[i]; j++) c.op();
      await c.finish?.();
      out[i].msPerOp.push((performance.now() - t0) / iters[i]);
    }
  }
  return out;
}

export interface Stats { median: number; min: number; max: number }

export function stats(v: readonly number[]): Stats {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1] };
}
