// The worker pool of the threaded WASM backend (Node only; see THREADING.md).
//
// Every worker instantiates the threaded kernels module over the backend's shared memory and then
// loops: sleep on SEQ (spinning briefly first), run its job slot, count itself into DONE. The main
// instance calls `parallelFor(n)` (an import) from inside a kernel; `run` below bumps SEQ, runs
// slot 0 on the main thread, and waits for DONE. No message is posted per kernel call: the job
// words live in WASM memory, the counters in a small SharedArrayBuffer of their own.

/** Words of the control block. */
const SEQ = 0, DONE = 1, NJOBS = 2, STOP = 3, ERR = 4, MSG_LEN = 5, MSG = 8, MSG_CAP = 248;
const CTRL_WORDS = MSG + MSG_CAP;

/**
 * Spin iterations before sleeping in Atomics.wait (a wake-up from the futex costs tens of µs; a
 * spin of this length is ~20-50 µs). Workers spin after each job so back-to-back kernel calls do
 * not pay the wake-up, the main thread spins while its slice's partner finishes.
 */
const SPIN = 20000;

// The worker's whole program (started with `eval: true`: no file to locate, which also works when
// this module runs from TypeScript sources under vitest).
const WORKER_SOURCE = `
// CommonJS normally; ESM when the parent runs with --input-type=module (then getBuiltinModule).
const { workerData, parentPort } = typeof require === 'function'
  ? require('node:worker_threads') : process.getBuiltinModule('node:worker_threads');
const { module, memory, ctrl: sab, id, nWorkers, state, jobs, spin } = workerData;
const ctrl = new Int32Array(sab);
const [SEQ, DONE, NJOBS, STOP, ERR, MSG_LEN, MSG, MSG_CAP] = [${SEQ}, ${DONE}, ${NJOBS}, ${STOP}, ${ERR}, ${MSG_LEN}, ${MSG}, ${MSG_CAP}];
const env = {
  memory,
  abort(msg, file, line, col) { throw new Error('wasm kernel abort at ' + line + ':' + col); },
  parallelFor() { throw new Error('parallelFor called in a worker'); },
};
const ex = new WebAssembly.Instance(module, { env }).exports;
ex.useThreadState(state);
ex.setThreads(1, jobs);
parentPort.postMessage('ready');
let seen = 0;
for (;;) {
  let s = Atomics.load(ctrl, SEQ);
  for (let i = 0; s === seen && i < spin; i++) s = Atomics.load(ctrl, SEQ);
  if (s === seen) { Atomics.wait(ctrl, SEQ, seen); continue; }
  seen = s;
  if (Atomics.load(ctrl, STOP) !== 0) break;
  if (id < Atomics.load(ctrl, NJOBS)) {
    try {
      ex.runSlot(id);
    } catch (e) {
      if (Atomics.compareExchange(ctrl, ERR, 0, id) === 0) {
        const m = 'worker ' + id + ': ' + (e && e.message ? e.message : String(e));
        const n = Math.min(m.length, MSG_CAP);
        for (let i = 0; i < n; i++) ctrl[MSG + i] = m.charCodeAt(i);
        ctrl[MSG_LEN] = n;
      }
    }
  }
  if (Atomics.add(ctrl, DONE, 1) === nWorkers - 1) Atomics.notify(ctrl, DONE);
}
`;

export interface Pool {
  /** Workers (threads - 1). */
  readonly workers: number;
  /** Calls of `run` so far (a diagnostic: how many kernel calls were split). */
  readonly calls: number;
  /** Runs job slots 0..n-1: slot 0 through `local` on this thread, slot t on worker t. */
  run(n: number): void;
  /** Stops the workers (idempotent). */
  dispose(): Promise<void>;
}

/** True where worker_threads can run the pool (Node, Bun, Deno's Node compatibility). */
export function nodeThreadsAvailable(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string' && typeof SharedArrayBuffer === 'function' && typeof Atomics?.wait === 'function';
}

/**
 * Starts `states.length` workers over `memory`; worker t (1-based) takes state block states[t - 1]
 * and reads its jobs from slot t of the job slots at `jobs`.
 * Resolves once every worker has instantiated the module (so no worker instantiation, which
 * re-applies the module's data segments, overlaps a kernel call).
 */
export async function startPool(module: WebAssembly.Module, memory: WebAssembly.Memory, states: number[], jobs: number,
  local: (slot: number) => void): Promise<Pool> {
  // A variable specifier keeps bundlers from resolving a Node built-in for browser builds.
  const specifier = 'node:worker_threads';
  const { Worker } = await import(/* @vite-ignore */ specifier) as typeof import('node:worker_threads');
  const nWorkers = states.length;
  const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
  const workers = states.map((state, i) => new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { module, memory, ctrl: ctrl.buffer, id: i + 1, nWorkers, state, jobs, spin: SPIN },
  }));
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`wasm worker exited with code ${code} while starting`)));
    })));
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  // Running workers must not keep the process alive (they sleep in Atomics.wait between calls).
  for (const w of workers) {
    w.removeAllListeners();
    w.on('error', () => {});
    w.unref();
  }

  let stopped = false;
  let running = false;
  let calls = 0;
  const waitDone = () => {
    let d = Atomics.load(ctrl, DONE);
    for (let i = 0; d < nWorkers && i < SPIN; i++) d = Atomics.load(ctrl, DONE);
    while (d < nWorkers) {
      Atomics.wait(ctrl, DONE, d);
      d = Atomics.load(ctrl, DONE);
    }
  };

  return {
    workers: nWorkers,
    get calls() { return calls; },
    run(n: number): void {
      if (stopped) throw new Error('wasm backend: the thread pool is disposed');
      if (running) throw new Error('wasm backend: nested parallel kernel call');
      running = true;
      calls++;
      Atomics.store(ctrl, DONE, 0);
      Atomics.store(ctrl, NJOBS, n);
      Atomics.store(ctrl, ERR, 0);
      Atomics.add(ctrl, SEQ, 1);
      Atomics.notify(ctrl, SEQ);
      let err: unknown = null;
      try {
        local(0);
      } catch (e) {
        err = e;
      }
      // Always wait: the workers' slices write into memory the caller may free once this returns.
      waitDone();
      running = false;
      if (err) throw err;
      if (Atomics.load(ctrl, ERR) !== 0) {
        let m = '';
        for (let i = 0; i < ctrl[MSG_LEN]; i++) m += String.fromCharCode(ctrl[MSG + i]);
        throw new Error(`wasm backend: a kernel failed in a worker thread (${m})`);
      }
    },
    async dispose(): Promise<void> {
      if (stopped) return;
      stopped = true;
      Atomics.store(ctrl, STOP, 1);
      Atomics.add(ctrl, SEQ, 1);
      Atomics.notify(ctrl, SEQ);
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
