// Work splitting for the threaded build (asc --enable threads --importMemory --sharedMemory; see
// ../THREADING.md). The host instantiates this module once on the main thread and once per worker,
// all over one shared memory. Only the main instance ever has nThreads > 1: a kernel with enough
// work writes one job per thread into the job slots (plain words in shared memory) and calls the
// host's parallelFor(n), which wakes the workers on slots 1..n-1, runs slot 0 on the main thread
// (runSlot in index.ts) and returns when all are done. Jobs only ever run the serial kernels, so
// nothing nests, and they never allocate: every buffer a job needs is allocated by the main thread
// before the split, and each worker instance has its own pack buffers and index counters.
//
// In the single-threaded build (no threads feature) `threaded` is constant false, the dispatch
// below is compiled out and the module has no parallelFor import.

/** Threads of the pool including the main thread (main instance of the threaded build only). */
let nThreads: i32 = 1;
let jobBase: usize = 0;

/** Bytes per job slot: 32 argument words, then 32-word blocks for a shape and strides. */
export const JOB_BYTES: usize = 384;
export const JOB_SHAPE: usize = 128;
export const JOB_STRIDES: usize = 256;

// Job kinds (word 0 of a slot).
export const J_NONE = 0;
export const J_GEMM = 1;
export const J_UNARY = 2;
export const J_BINARY = 3;
export const J_REDUCE = 4;
export const J_WINO = 5;
export const J_DIRECT = 6;
export const J_MATMUL = 7;
export const J_POOL = 8;
export const J_COPY = 9;
export const J_WINO_DW = 10;

// @ts-ignore: decorator
@external("env", "parallelFor")
declare function parallelFor(n: i32): void;

/**
 * Called by the host: the pool size and the job slots (one per thread). Worker instances get
 * n = 1 (they never split) and the same slots.
 */
export function setThreads(n: i32, jobs: usize): void {
  nThreads = n;
  jobBase = jobs;
}

/**
 * Jobs per thread for splits without duplicated work (everything but the GEMM, which packs its
 * shared operand once per job): threads take jobs as they come (threads.ts), so more, smaller jobs
 * even out a thread that starts late or is descheduled. The host allocates the slots for
 * nThreads * JOBS_PER_THREAD + 16 jobs.
 */
export const JOBS_PER_THREAD = 4;

/** Jobs for a split over `units` items on `threads` threads (1 for one thread). */
// @ts-ignore: decorator
@inline export function jobsFor(threads: i32, units: i32): i32 {
  return threads <= 1 ? 1 : min(threads * JOBS_PER_THREAD, units);
}

/** The number of threads to split a call with `work` units over (1: run inline). */
// @ts-ignore: decorator
@inline export function ways(work: f64, minWork: f64): i32 {
  if (!ASC_FEATURE_THREADS) return 1;
  return nThreads > 1 && work >= minWork ? nThreads : 1;
}

// @ts-ignore: decorator
@inline export function slot(t: i32): usize {
  return jobBase + <usize>t * JOB_BYTES;
}

// @ts-ignore: decorator
@inline export function setArg(t: i32, i: i32, v: usize): void {
  store<u32>(slot(t) + (<usize>i << 2), <u32>v);
}

// @ts-ignore: decorator
@inline export function jobArg(s: usize, i: i32): usize {
  return <usize>load<u32>(s + (<usize>i << 2));
}

/** Runs slots 0..n-1 (n >= 1) on whichever threads take them; returns when all are done. */
export function runJobs(n: i32): void {
  if (ASC_FEATURE_THREADS) parallelFor(n);
}

/** [lo, hi) of part t of `units` items split into `parts` near-equal ranges. */
// @ts-ignore: decorator
@inline export function partLo(units: i32, parts: i32, t: i32): i32 {
  return <i32>(<i64>units * <i64>t / <i64>parts);
}
