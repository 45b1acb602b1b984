// Result rows and memory tracking shared by the benchmark files (bench/run.ts drives them).

import { memory } from '../index.js';
import type { Tfjs } from './tfjs.js';
import type { Contender, TimingOptions } from './harness.js';
import { stats } from './harness.js';

/** Throughput units are higher-is-better (work / time); ms is lower-is-better. */
export type Unit = 'GFLOP/s' | 'GB/s' | 'ms';

export interface Row {
  benchmark: string;
  implementation: string;
  unit: Unit;
  median: number | null;
  min: number | null;
  max: number | null;
  reps: number;
  itersPerRep: number;
  threads: number;
  /** On peer rows: how many times faster ours is than this row (ours/peer for GFLOP/s, peer/ours for ms). */
  oursSpeedup: number | null;
  /** Cross-engine agreement measured on this row (peer rows), and whether it is within tolerance. */
  check?: { what: string; value: number; tolerance: number; ok: boolean };
  /** Set when this implementation could not run the benchmark: the message it threw. */
  error?: string;
  /** Tensors the failed call left behind in the peer's engine (tfjs does not free them). */
  leakedTensors?: number;
  /** The machine's 1-minute load average when the benchmark started. */
  loadAvg1m?: number;
}

export interface Snapshot { tensors: number; bytes: number; /** ours: tensors alive, including those only a recorded graph holds */ alive?: number }

export interface MemoryCheck {
  benchmark: string;
  engine: string;
  /** Live tensors and bytes before the benchmark, after its setup, after all its timed runs, after its cleanup. */
  before: Snapshot;
  afterSetup: Snapshot | null;
  afterRuns: Snapshot | null;
  afterCleanup: Snapshot;
  /** Tensors the peer itself leaked during setup (tfjs after a gradient call that threw). */
  peerLeak: number;
  flat: boolean;
}

export interface Ctx {
  tfjs: Tfjs;
  tf: Tfjs['tf'];
  oursImpl: string;
  oursThreads: number;
  /** For WebGPU: waits until the GPU has finished, so its work is inside the timed region. */
  finish?: () => Promise<void>;
  timing: TimingOptions;
  quick: boolean;
  memory: MemoryCheck[];
}

export const oursMem = (): Snapshot => { const m = memory(); return { tensors: m.tensors, alive: m.aliveTensors, bytes: m.bytes }; };
export const tfMem = (tf: Tfjs['tf']): Snapshot => { const m = tf.memory(); return { tensors: m.numTensors, bytes: m.numBytes }; };
export const same = (a: Snapshot | null, b: Snapshot | null) => !!a && !!b && a.tensors === b.tensors && a.alive === b.alive && a.bytes === b.bytes;
export const fmtSnap = (m: Snapshot | null) => (m ? `${m.tensors} tensors${m.alive === undefined ? '' : ` (${m.alive} alive)`}, ${m.bytes} B` : 'not reached');

export interface Marks { setup(): void; runs(): void; peerLeak(n: number): void }

/**
 * Runs `body` between memory snapshots of one engine: flat means the timed runs ended where they
 * started and cleanup returned to the state before the benchmark.
 */
export async function tracked<T>(ctx: Ctx, bench: string, engine: string, snap: () => Snapshot, body: (mark: Marks) => Promise<T>): Promise<T> {
  const before = snap();
  let afterSetup: Snapshot | null = null, afterRuns: Snapshot | null = null, peerLeak = 0;
  try {
    return await body({ setup: () => { afterSetup = snap(); }, runs: () => { afterRuns = snap(); }, peerLeak: (n) => { peerLeak = n; } });
  } finally {
    const afterCleanup = snap();
    ctx.memory.push({ benchmark: bench, engine, before, afterSetup, afterRuns, afterCleanup, peerLeak,
      flat: same(afterSetup, afterRuns) && (peerLeak > 0 ? afterCleanup.tensors === before.tensors + peerLeak : same(before, afterCleanup)) });
  }
}

/** Rows from timings; `work` is the FLOPs (GFLOP/s) or bytes moved (GB/s) of one operation. */
export function timedRows(bench: string, unit: Unit, cs: Contender[], ts: { msPerOp: number[]; itersPerRep: number }[], work: number): Row[] {
  const rows = cs.map((c, i): Row => {
    const v = unit === 'ms' ? ts[i].msPerOp : ts[i].msPerOp.map((ms) => work / (ms * 1e6));
    const s = stats(v);
    return { benchmark: bench, implementation: c.impl, unit, ...s, reps: v.length, itersPerRep: ts[i].itersPerRep, threads: c.threads, oursSpeedup: null };
  });
  const ours = rows[0];
  for (const r of rows.slice(1)) {
    r.oursSpeedup = unit === 'ms' ? r.median! / ours.median! : ours.median! / r.median!;
  }
  return rows;
}

export const errorRow = (bench: string, impl: string, unit: Unit, threads: number, e: unknown): Row => ({
  benchmark: bench, implementation: impl, unit, median: null, min: null, max: null, reps: 0, itersPerRep: 0, threads,
  oursSpeedup: null, error: e instanceof Error ? e.message : String(e),
});

export const check = (what: string, value: number, tolerance: number) => ({ what, value, tolerance, ok: value <= tolerance });

