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
