// Helpers shared by the kernel files. Every kernel is generic over the element type T (f32 or f64);
// the exported entry points in index.ts instantiate both. Pointers are byte addresses, sizes and
// strides are element counts.

/** Byte shift for one element of T: 2 for f32, 3 for f64. */
// @ts-ignore: decorator
@inline export function shiftOf<T>(): usize {
  return sizeof<T>() == 4 ? 2 : 3;
}

/** Address of element i of an array of T starting at base. */
// @ts-ignore: decorator
@inline export function at<T>(base: usize, i: usize): usize {
  return base + (i << shiftOf<T>());
}

/** Lanes per v128 for T. */
// @ts-ignore: decorator
@inline export function lanes<T>(): usize {
  return 16 / sizeof<T>();
}

/** Reads the i-th i32 of an argument block (shapes, strides, offsets passed from JS). */
// @ts-ignore: decorator
@inline export function arg(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}

// Index counters for the N-d loops. One static block per instance: the main instance uses this one;
// in the threaded build, every worker instance shares the memory, so each is given its own block
// (useThreadState in index.ts) before it runs anything.
export const MAX_RANK = 32;
export let IDX: usize = memory.data(MAX_RANK * 4);

export function setIdx(p: usize): void {
  IDX = p;
}

/** Zeroes the first `rank` counters of IDX. */
export function resetIdx(rank: i32): void {
  memory.fill(IDX, 0, <usize>max(rank, 0) << 2);
}

// memory.copy / memory.fill are calls into the engine (tens of ns each): short runs are faster as
// plain loops. Used by im2col and the copy kernels, which move many short rows.
const SHORT_RUN: usize = 32;

/** Copies n elements of T (non-overlapping). */
// @ts-ignore: decorator
@inline export function copyElems<T>(dst: usize, src: usize, n: usize): void {
  if (n < SHORT_RUN) {
    for (let i: usize = 0; i < n; i++) store<T>(at<T>(dst, i), load<T>(at<T>(src, i)));
  } else {
    memory.copy(dst, src, n * sizeof<T>());
  }
}

/** Zeroes n elements of T. */
// @ts-ignore: decorator
@inline export function zeroElems<T>(dst: usize, n: usize): void {
  if (n < SHORT_RUN) {
    for (let i: usize = 0; i < n; i++) store<T>(at<T>(dst, i), <T>0);
  } else {
    memory.fill(dst, 0, n * sizeof<T>());
  }
}

// ---- kernel working memory ------------------------------------------------------------------
// Scratch buffers of a kernel call are taken with scratch() and given back with unscratch(), which
// keep them in a small table: when an allocation fails halfway through a call (memory cannot grow),
// the host frees what the call had taken (releaseScratch in index.ts), so nothing leaks.
const SCRATCH_SLOTS = 16;
const SCRATCH: usize = memory.data(SCRATCH_SLOTS * 4);
let scratchWanted: usize = 0;

export function scratch(bytes: usize): usize {
  scratchWanted = bytes;
  const p = heap.alloc(bytes);
  for (let i = 0; i < SCRATCH_SLOTS; i++) {
    const slot = SCRATCH + (<usize>i << 2);
    if (load<u32>(slot) == 0) { store<u32>(slot, <u32>p); return p; }
  }
  abort('more than 16 scratch buffers in one kernel call');
  return 0;
}

export function unscratch(p: usize): void {
  for (let i = 0; i < SCRATCH_SLOTS; i++) {
    const slot = SCRATCH + (<usize>i << 2);
    if (load<u32>(slot) == <u32>p) { store<u32>(slot, 0); break; }
  }
  heap.free(p);
}

/** Frees every scratch buffer still held: after a kernel call that failed. */
export function releaseScratch(): void {
  for (let i = 0; i < SCRATCH_SLOTS; i++) {
    const slot = SCRATCH + (<usize>i << 2);
    const p = load<u32>(slot);
    if (p != 0) { store<u32>(slot, 0); heap.free(<usize>p); }
  }
}

/** Bytes of the last scratch request (the one that failed, after a failure). */
export function scratchRequest(): usize {
  return scratchWanted;
}
