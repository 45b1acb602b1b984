// The worker pool of the threaded WASM backend (Node only; see THREADING.md).
//
// A kernel on the main instance that splits writes n job slots into WASM memory and calls the import
// `parallelFor(n)`; `run` below publishes the round (NJOBS, NEXT = 0, bump SEQ, notify), and every
// thread, the main one included, takes slots with Atomics.add(NEXT) until none are left, counting
// each finished slot into FINISHED. The main thread returns when FINISHED reaches n: it never waits
// for a worker that took no slot (one the OS has not scheduled yet simply gets none), and slots a
// slow worker has not taken are run by the others. Workers spin briefly on SEQ, then sleep in
// Atomics.wait. No message is posted per kernel call: the job words live in WASM memory, the
// counters in a small SharedArrayBuffer of their own.

/** Words of the control block. */
const SEQ = 0, FINISHED = 1, NJOBS = 2, STOP = 3, ERR = 4, MSG_LEN = 5, NEXT = 6, WORKER_JOBS = 7, MSG = 8, MSG_CAP = 248;
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
const { module, memory, ctrl: sab, id, state, jobs, spin } = workerData;
const ctrl = new Int32Array(sab);
const [SEQ, FINISHED, NJOBS, STOP, ERR, MSG_LEN, NEXT, WORKER_JOBS, MSG, MSG_CAP] =
  [${SEQ}, ${FINISHED}, ${NJOBS}, ${STOP}, ${ERR}, ${MSG_LEN}, ${NEXT}, ${WORKER_JOBS}, ${MSG}, ${MSG_CAP}];
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
  const gen = s & 0x7fff;
  for (;;) {
    // Take the next slot of round gen (NEXT = gen << 16 | index), or stop.
    const v = Atomics.load(ctrl, NEXT);
    if ((v >>> 16) !== gen) break;
    const n = Atomics.load(ctrl, NJOBS);
    if ((v & 0xffff) >= n) break;
    if (Atomics.compareExchange(ctrl, NEXT, v, v + 1) !== v) continue;
    const slot = v & 0xffff;
    Atomics.add(ctrl, WORKER_JOBS, 1);
    try {
      ex.runSlot(slot);
    } catch (e) {
      if (Atomics.compareExchange(ctrl, ERR, 0, id) === 0) {
        const m = 'worker ' + id + ', job ' + slot + ': ' + (e && e.message ? e.message : String(e));
        const k = Math.min(m.length, MSG_CAP);
        for (let i = 0; i < k; i++) ctrl[MSG + i] = m.charCodeAt(i);
        ctrl[MSG_LEN] = k;
      }
    }
    if (Atomics.add(ctrl, FINISHED, 1) === n - 1) Atomics.notify(ctrl, FINISHED);
  }
}
`;

export interface Pool {
  /** Workers (threads - 1). */
  readonly workers: number;
  /** Calls of `run` so far (a diagnostic: how many kernel calls were split). */
  readonly calls: number;
  /** Jobs the workers (not the main thread) have run so far. */
  readonly workerJobs: number;
  /** Runs job slots 0..n-1 (any number), `local` running those this thread takes. */
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
    workerData: { module, memory, ctrl: ctrl.buffer, id: i + 1, state, jobs, spin: SPIN },
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
  const waitFinished = (n: number) => {
    let d = Atomics.load(ctrl, FINISHED);
    for (let i = 0; d < n && i < SPIN; i++) d = Atomics.load(ctrl, FINISHED);
    while (d < n) {
      Atomics.wait(ctrl, FINISHED, d);
      d = Atomics.load(ctrl, FINISHED);
    }
  };

  return {
    workers: nWorkers,
    get calls() { return calls; },
    get workerJobs() { return Atomics.load(ctrl, WORKER_JOBS); },
    run(n: number): void {
      if (stopped) throw new Error('wasm backend: the thread pool is disposed');
      if (running) throw new Error('wasm backend: nested parallel kernel call');
      running = true;
      calls++;
      // NEXT carries the round (the low 15 bits of SEQ after the bump) beside the next index, so a
      // worker still in an earlier round's take loop can never claim a slot of this one by mistake.
      if (n > 0xffff) throw new Error('wasm backend: too many parallel jobs');
      const gen = (Atomics.load(ctrl, SEQ) + 1) & 0x7fff;
      Atomics.store(ctrl, FINISHED, 0);
      Atomics.store(ctrl, ERR, 0);
      Atomics.store(ctrl, NJOBS, n);
      Atomics.store(ctrl, NEXT, gen << 16);
      Atomics.add(ctrl, SEQ, 1);
      Atomics.notify(ctrl, SEQ);
      let err: unknown = null;
      for (;;) {
        const v = Atomics.load(ctrl, NEXT);
        if ((v & 0xffff) >= n) break;
        if (Atomics.compareExchange(ctrl, NEXT, v, v + 1) !== v) continue;
        try {
          local(v & 0xffff);
        } catch (e) {
          err ??= e;
        }
        Atomics.add(ctrl, FINISHED, 1);
      }
      // Always wait: the workers' slots write into memory the caller may free once this returns.
      waitFinished(n);
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
