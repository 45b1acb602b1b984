// The contract between the engine and a backend. The engine owns shapes, autodiff and lifetimes;
// a backend owns memory and one kernel per primitive. Kernel names are the primitive names listed in
// engine/primitives.ts, where each one's exact semantics are written down.

export type DType = 'float32' | 'float64';
export type TypedArray = Float32Array | Float64Array;

/** Opaque handle to `size` elements of `dtype`, contiguous and row-major, in backend memory. */
export interface Storage {
  readonly dtype: DType;
  readonly size: number;
}

/** What a kernel sees of one input: its storage plus the logical shape. */
export interface TensorInfo {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** The output the engine expects; shape inference is done before the kernel runs. */
export interface OutputSpec {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** A kernel returns a newly allocated storage that the engine then owns. */
export type Kernel = (inputs: readonly TensorInfo[], attrs: any, out: OutputSpec) => Storage;

export interface Backend {
  readonly name: string;
  readonly kernels: Readonly<Record<string, Kernel>>;
  /** Zero-filled storage. */
  alloc(dtype: DType, size: number): Storage;
  upload(dtype: DType, data: ArrayLike<number>): Storage;
  free(s: Storage): void;
  /** Synchronous read-back, or null where the backend cannot (WebGPU). */
  readSync(s: Storage): TypedArray | null;
  read(s: Storage): Promise<TypedArray>;
  /**
   * For backends that cannot read synchronously (WebGPU), what setCheckNumerics uses instead of
   * readSync: queues a check, on the device, that `s` holds only finite values. The first checked
   * storage (in call order) found holding NaN or +-Inf makes the next read() or sync() reject with
   * `describe(flat index of its first non-finite element, that value)`; later checks are dropped.
   */
  checkFinite?(s: Storage, describe: (index: number, value: number) => string): void;
  /** Bytes currently allocated for live storages. */
  bytesInUse(): number;
  /**
   * The most bytes one storage, and all of them together, can take: the engine refuses a larger
   * request before building anything (host arrays included).
   */
  readonly limits?: { storageBytes: number; totalBytes: number };
}

export const bytesPerElement = (d: DType): number => (d === 'float32' ? 4 : 8);

export function typedArrayFor(dtype: DType, n: number | ArrayLike<number>): TypedArray {
  return dtype === 'float32' ? new Float32Array(n as any) : new Float64Array(n as any);
}
