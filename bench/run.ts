// The benchmark suite: our WASM backend against TensorFlow.js (tfjs-backend-wasm, and tfjs-backend-cpu
// where tfjs-wasm cannot run the workload) in one process. Prints a table and writes
// bench/results/latest.json. See bench/README.md for what each row means.
//
//   npm run bench [-- --filter <substring>] [--quick] [--tiny] [--backend wasm|webgpu|ref] [--threads N] [--out <file>]
//
// --threads N: our WASM backend on N threads (init({ backend: 'wasm', threads: N }); default 1).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { init, matmul, tensor, tidy, valueAndGrad, type BackendName } from '../index.js';
import { conv4Loss, flatParams, makeConv4Host, oursConv4 } from './conv4.js';
import { hwioToOihw, HostRng, relErr } from './data.js';
import { timeInterleaved, type Contender, type TimingOptions } from './harness.js';
import { check, errorRow, fmtSnap, oursMem, same, tfMem, timedRows, tracked, type Ctx, type Row, type Unit } from './rows.js';
import { bandwidthBenches, convKernelBenches, softmaxBench } from './kernel-benches.js';
import { loadTfjs, tfConv4, useTfBackend, type Tfjs } from './tfjs.js';
import type * as TF from '@tensorflow/tfjs-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---------- options ----------

interface Options {
  filter: string | null;
  quick: boolean;
  tiny: boolean;
  backend: BackendName;
  threads: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { filter: null, quick: false, tiny: false, backend: 'wasm', threads: 1, out: path.join(ROOT, 'bench/results/latest.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--filter') o.filter = value().toLowerCase();
    else if (a === '--quick') o.quick = true;
    else if (a === '--tiny') o.tiny = true;
    else if (a === '--backend') {
      const b = value();
      if (b !== 'wasm' && b !== 'ref' && b !== 'webgpu') throw new Error(`--backend must be wasm, webgpu or ref, got '${b}'`);
      o.backend = b;
    } else if (a === '--threads') {
      o.threads = Number(value());
      if (!Number.isInteger(o.threads) || o.threads < 1) throw new Error(`--threads must be a positive integer, got '${argv[i]}'`);
    } else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--help' || a === '-h') {
      console.log('npm run bench -- [--filter <substring>] [--quick] [--tiny] [--backend wasm|webgpu|ref] [--threads N] [--out <file>]');
      process.exit(0);
    } else throw new Error(`unknown option '${a}' (try --help)`);
  }
  return o;
}

// ---------- benchmarks ----------

// f32 with a few hundred to a thousand terms per dot product, summed in different orders.
const MATMUL_TOL = 1e-4;
// Conv4's loss and gradients pass through four batch norms (divisions by small variances).
const CONV_TOL = 1e-3;

async function matmulBench(ctx: Ctx, m: number, k: number, n: number): Promise<Row[]> {
  const { tf } = ctx;
  const name = m === k && k === n ? `matmul ${n}x${n}` : `matmul ${m}x${k} @ ${k}x${n}`;
  const rng = new HostRng(m * 1_000_003 + k * 1009 + n);
  const A = rng.normals(m * k), B = rng.normals(k * n);
  await useTfBackend(tf, 'wasm');
  return tracked(ctx, name, 'ours', oursMem, (om) => tracked(ctx, name, 'tfjs', () => tfMem(tf), async (tm) => {
    const a = tensor(A, [m, k]), b = tensor(B, [k, n]);
    const ta = tf.tensor2d(A, [m, k]), tb = tf.tensor2d(B, [k, n]);
    try {
      om.setup(); tm.setup();
      // Once per size: the two engines must agree, or a fast wrong kernel would pass.
      const c = matmul(a, b), tc = tf.matMul(ta, tb);
      const err = relErr(await c.data(), tc.dataSync());
      c.dispose(); tc.dispose();
      const cs: Contender[] = [
        { impl: ctx.oursImpl, threads: ctx.oursThreads, finish: ctx.finish, op: () => tidy(() => { matmul(a, b); }) },
        { impl: 'tfjs-wasm', threads: ctx.tfjs.wasmThreads, activate: () => useTfBackend(tf, 'wasm'), op: () => tf.tidy(() => { tf.matMul(ta, tb); }) },
      ];
      const rows = timedRows(name, 'GFLOP/s', cs, await timeInterleaved(cs, ctx.timing), 2 * m * n * k);
      rows[1].check = check('max|C_ours - C_tfjs| / max|C_tfjs|', err, MATMUL_TOL);
      om.runs(); tm.runs();
      return rows;
    } finally {
      a.dispose(); b.dispose(); tf.dispose([ta, tb]);
    }
  }));
}

/** Gradients of tfjs's Conv4 in our layout and order, for comparison with ours. */
function tfGradsAsOurs(grads: TF.Tensor[]): Float32Array[] {
  return grads.map((g) => {
    const v = g.dataSync() as Float32Array;
    const [kh, kw, c, o] = g.shape as number[];
    return g.rank === 4 ? hwioToOihw(v, o, c, kh, kw) : v;
  });
}

async function conv4TrainBench(ctx: Ctx, batch: number): Promise<Row[]> {
  const { tf } = ctx;
  const name = `conv4 fwd+bwd ${batch}x1x28x28`;
  const host = makeConv4Host(batch);
  return tracked(ctx, name, 'ours', oursMem, (om) => tracked(ctx, name, 'tfjs', () => tfMem(tf), async (tm) => {
    const ours = oursConv4(host);
    await useTfBackend(tf, 'wasm');
    const tw = tfConv4(tf, host);
    await useTfBackend(tf, 'cpu');
    const tc = tfConv4(tf, host);
    try {
      // tfjs-wasm has no Conv2DBackpropFilter kernel: record what it actually throws. tfjs leaks the
      // tensors of a gradient call that throws, so this runs before the memory baseline is taken.
      await useTfBackend(tf, 'wasm');
      let wasmError: unknown = null;
      const live = tf.memory().numTensors;
      try {
        tf.tidy(() => { tf.grads((...p: TF.Tensor[]) => tw.loss(p))(tw.params); });
      } catch (e) { wasmError = e; }
      const wasmLeak = tf.memory().numTensors - live;
      tm.peerLeak(wasmLeak);
      om.setup(); tm.setup();
      const vg = valueAndGrad(conv4Loss);
      let oursLoss = 0, oursGrads: Float32Array[] = [];
      await tidy(async () => {
        const [l, g] = vg(ours.params, ours.x, ours.y);
        oursLoss = (await l.data())[0];
        oursGrads = await Promise.all(flatParams(g).map(async (t) => (await t.data()) as Float32Array));
      });
      await useTfBackend(tf, 'cpu');
      const cpuGrads = tf.grads((...p: TF.Tensor[]) => tc.loss(p));
      let cpuLoss = 0, cpuGradVals: Float32Array[] = [];
      const tCheck = performance.now();
      tf.tidy(() => {
        const r = tf.valueAndGrads((...p: TF.Tensor[]) => tc.loss(p))(tc.params);
        cpuLoss = r.value.dataSync()[0];
        cpuGradVals = tfGradsAsOurs(r.grads);
      });
      const cpuCheckMs = performance.now() - tCheck;
      const gradErr = Math.max(...oursGrads.map((g, i) => relErr(g, cpuGradVals[i])));

      const cs: Contender[] = [
        { impl: ctx.oursImpl, threads: ctx.oursThreads, finish: ctx.finish, op: () => tidy(() => { vg(ours.params, ours.x, ours.y); }) },
        { impl: 'tfjs-cpu', threads: 1, activate: () => useTfBackend(tf, 'cpu'), op: () => tf.tidy(() => { cpuGrads(tc.params); }), warmedUpMs: cpuCheckMs },
      ];
      if (wasmError === null) {
        // A future tfjs-wasm that can: time it like the others.
        const wasmGrads = tf.grads((...p: TF.Tensor[]) => tw.loss(p));
        cs.push({ impl: 'tfjs-wasm', threads: ctx.tfjs.wasmThreads, activate: () => useTfBackend(tf, 'wasm'), op: () => tf.tidy(() => { wasmGrads(tw.params); }) });
      }
      // One tfjs-cpu repetition takes minutes at batch 80 (its Conv2DBackpropFilter is a scalar JS
      // loop), so this benchmark gets the minimum of 5 repetitions (1 with --quick).
      const timing = { ...ctx.timing, reps: Math.min(ctx.timing.reps, ctx.quick ? 1 : 5) };
      const rows = timedRows(name, 'ms', cs, await timeInterleaved(cs, timing), 0);
      const lossErr = Math.abs(oursLoss - cpuLoss) / Math.abs(cpuLoss);
      rows[1].check = check('worst of the loss and the 14 parameter gradients: max|ours - tfjs| / max|tfjs|', Math.max(lossErr, gradErr), CONV_TOL);
      if (wasmError !== null) {
        const r = errorRow(name, 'tfjs-wasm', 'ms', ctx.tfjs.wasmThreads, wasmError);
        r.leakedTensors = wasmLeak;
        rows.splice(1, 0, r);
      }
      om.runs(); tm.runs();
      return rows;
    } finally {
      for (const t of ours.all) t.dispose();
      tw.dispose(); tc.dispose();
    }
  }));
}

async function conv4ForwardBench(ctx: Ctx, batch: number): Promise<Row[]> {
  const { tf } = ctx;
  const name = `conv4 fwd ${batch}x1x28x28`;
  const host = makeConv4Host(batch);
  return tracked(ctx, name, 'ours', oursMem, (om) => tracked(ctx, name, 'tfjs', () => tfMem(tf), async (tm) => {
    const ours = oursConv4(host);
    await useTfBackend(tf, 'wasm');
    const tw = tfConv4(tf, host);
    try {
      om.setup(); tm.setup();
      const oursLoss = await tidy(async () => (await conv4Loss(ours.params, ours.x, ours.y).data())[0]);
      const tfLoss = tf.tidy(() => tw.loss(tw.params).dataSync()[0]);
      const cs: Contender[] = [
        { impl: ctx.oursImpl, threads: ctx.oursThreads, finish: ctx.finish, op: () => tidy(() => { conv4Loss(ours.params, ours.x, ours.y); }) },
        { impl: 'tfjs-wasm', threads: ctx.tfjs.wasmThreads, activate: () => useTfBackend(tf, 'wasm'), op: () => tf.tidy(() => { tw.loss(tw.params); }) },
      ];
      const rows = timedRows(name, 'ms', cs, await timeInterleaved(cs, ctx.timing), 0);
      rows[1].check = check('|loss_ours - loss_tfjs| / |loss_tfjs|', Math.abs(oursLoss - tfLoss) / Math.abs(tfLoss), CONV_TOL);
      om.runs(); tm.runs();
      return rows;
    } finally {
      for (const t of ours.all) t.dispose();
      tw.dispose();
    }
  }));
}

// ---------- output ----------

function fmtSci(v: number): string { return v === 0 ? '0' : v.toExponential(1); }
function fmtNum(v: number | null): string {
  if (v === null) return '-';
  return v >= 100 ? v.toFixed(1) : v >= 10 ? v.toFixed(2) : v.toFixed(3);
}

function table(rows: Row[]): string {
  const head = ['benchmark', 'implementation', 'threads', 'unit', 'median', 'min', 'max', 'reps x iters', 'ours faster by', 'check / error'];
  const body = rows.map((r) => [
    r.benchmark, r.implementation, String(r.threads), r.unit, fmtNum(r.median), fmtNum(r.min), fmtNum(r.max),
    r.error ? '-' : `${r.reps} x ${r.itersPerRep}`,
    r.oursSpeedup === null ? '' : `${r.oursSpeedup.toFixed(2)}x`,
    r.error ? `ERROR: ${r.error}` : r.check ? `${r.check.ok ? 'ok' : 'MISMATCH'} ${fmtSci(r.check.value)}` : '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = new Set([2, 4, 5, 6, 7, 8]);
  const line = (c: string[]) => c.map((s, i) => (right.has(i) ? s.padStart(w[i]) : s.padEnd(w[i]))).join(' | ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('-|-'), ...body.map(line)].join('\n');
}

function gitInfo(): { commit: string; dirty: boolean; changes: string[] } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const changes = git('status', '--porcelain').split('\n').filter((l) => l.trim() !== '');
    // The paths say what the measured tree had beyond the commit (capped: a summary, not a diff).
    return { commit: git('rev-parse', 'HEAD').trim(), dirty: changes.length > 0, changes: changes.slice(0, 30) };
  } catch {
    return null;
  }
}

// ---------- main ----------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const loadStart = os.loadavg();
  // Taken now, for the tree that was just built: the tree may change while a long run goes on.
  const started = new Date(), git = gitInfo();
  if (o.threads > 1 && o.backend !== 'wasm') throw new Error('--threads applies to the wasm backend only');
  let ourBackend: Awaited<ReturnType<typeof init>>;
  try {
    ourBackend = await init({ backend: o.backend, threads: o.threads });
  } catch (e) {
    // No WebGPU here (no adapter, no Vulkan driver): the report says why instead of leaving a blank.
    const error = e instanceof Error ? e.message : String(e);
    mkdirSync(path.dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify({ date: started.toISOString(), backend: { name: o.backend }, error }, null, 2)}\n`);
    throw e;
  }
  const tfjs = await loadTfjs();
  // Our backend reports a thread count if it has more than one; otherwise it runs on the calling thread.
  const oursThreads = typeof (ourBackend as { threads?: unknown }).threads === 'number' ? (ourBackend as unknown as { threads: number }).threads : 1;
  // WebGPU on SwiftShader (no GPU) is a CPU emulation: its timings say nothing about GPUs, and the
  // implementation name says so in every row and in the JSON. It gets the tiny sizes and the quick
  // timing (at full size it had not finished Conv4 fwd+bwd after 20 minutes): the rows show that every kernel runs and agrees
  // with the peers, not how fast a GPU would be.
  const gpuDescription = (ourBackend as { description?: string }).description ?? '';
  const emulated = ourBackend.name === 'webgpu' && /swiftshader/i.test(gpuDescription);
  if (emulated) { o.quick = true; o.tiny = true; }
  const timing: TimingOptions = o.quick ? { reps: 3, minRepMs: 20, warmupMs: 20 } : { reps: 7, minRepMs: 60, warmupMs: 150 };
  const oursImpl = `ours-${ourBackend.name}${emulated ? ' (SwiftShader CPU emulation: not a GPU timing)' : ''}`;
  const finish = ourBackend.name === 'webgpu' ? () => (ourBackend as unknown as { sync(): Promise<void> }).sync() : undefined;
  if (ourBackend.name === 'webgpu') console.log(`WebGPU adapter: ${gpuDescription}${emulated ? ' -- SwiftShader emulates the GPU on the CPU; these numbers are not meaningful GPU timings' : ''}`);
  const ctx: Ctx = { tfjs, tf: tfjs.tf, oursImpl, oursThreads, finish, timing, quick: o.quick, memory: [] };
  const baseline = oursMem();

  const sizes = o.tiny ? [8, 16, 32] : [64, 128, 256, 512, 1024];
  const batch = o.tiny ? 5 : 80;
  const benches: { name: string; run: () => Promise<Row[]> }[] = [
    ...sizes.map((n) => ({ name: `matmul ${n}x${n}`, run: () => matmulBench(ctx, n, n, n) })),
    o.tiny ? { name: 'matmul 10x72 @ 72x8', run: () => matmulBench(ctx, 10, 72, 8) }
      : { name: 'matmul 80x576 @ 576x64', run: () => matmulBench(ctx, 80, 576, 64) },
    { name: `conv4 fwd+bwd ${batch}x1x28x28`, run: () => conv4TrainBench(ctx, batch) },
    { name: `conv4 fwd ${batch}x1x28x28`, run: () => conv4ForwardBench(ctx, batch) },
    ...(o.tiny ? convKernelBenches(ctx, 2, 4, 6) : convKernelBenches(ctx, batch)),
    ...(o.tiny ? bandwidthBenches(ctx, 4096, [4, 8, 6, 6]) : bandwidthBenches(ctx, 2 ** 22, [80, 64, 14, 14])),
    o.tiny ? softmaxBench(ctx, 8, 10) : softmaxBench(ctx, 1024, 1000),
  ];
  const selected = benches.filter((b) => o.filter === null || b.name.toLowerCase().includes(o.filter));
  if (selected.length === 0) {
    // Not an error: the suite passes one filter to every stage.
    console.log(`--filter '${o.filter}' matches no kernel benchmark (${benches.map((b) => b.name).join(', ')}); nothing to run`);
    return;
  }

  console.log(`ours: ${ctx.oursImpl}, ${oursThreads} thread(s); tfjs-wasm: ${tfjs.wasmThreads} thread(s) (setThreadsCount(1); getThreadsCount() = ${tfjs.wasmThreads}), SIMD ${tfjs.wasmSimd ? 'on' : 'off'}; tfjs-cpu: plain JS, 1 thread`);
  console.log(`${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} logical cores, Node ${process.version}; ${o.quick ? 'QUICK run (smoke test, not for reporting)' : `${timing.reps} interleaved reps of >= ${timing.minRepMs} ms each`}\n`);

  if (loadStart[0] > 0.5 * os.cpus().length) {
    console.log(`warning: load average ${loadStart[0].toFixed(2)} on ${os.cpus().length} cores before starting: other processes are running, expect noisy results\n`);
  }
  const rows: Row[] = [];
  for (const b of selected) {
    // Other processes on a 2-core machine move the results; the load average shows when they ran.
    const load = +os.loadavg()[0].toFixed(2);
    process.stdout.write(`running ${b.name} (load average ${load}) ...`);
    const t0 = performance.now();
    const first = rows.length;
    try {
      rows.push(...(await b.run()));
    } catch (e) {
      // A failure outside any one engine's timed loop (setup, a cross-check): the benchmark's own row.
      rows.push(errorRow(b.name, '(benchmark)', 'ms', 0, e));
    }
    for (const r of rows.slice(first)) r.loadAvg1m = load;
    process.stdout.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  const final = oursMem();

  console.log(`\n${table(rows)}\n`);
  console.log('ours faster by: on each peer row, ours GFLOP/s / this row\'s GFLOP/s, or this row\'s ms / ours ms (> 1: ours is faster).');
  console.log('check: agreement of the peer\'s result with ours, normwise relative (see bench/README.md).');
  const leaks = ctx.memory.filter((m) => !m.flat);
  const memOk = leaks.length === 0 && same(final, baseline);
  console.log(memOk
    ? `memory: flat. Every timed loop ended with the tensor count and bytes it started with, for ours and for tfjs; ours at the end: ${fmtSnap(final)}, as at the start.`
    : 'memory: NOT FLAT');
  for (const m of leaks) {
    console.log(`  ${m.benchmark} / ${m.engine}: before ${fmtSnap(m.before)}; after setup ${fmtSnap(m.afterSetup)}; after runs ${fmtSnap(m.afterRuns)}; after cleanup ${fmtSnap(m.afterCleanup)}`);
  }
  if (!same(final, baseline)) console.log(`  ours: ${fmtSnap(baseline)} at the start, ${fmtSnap(final)} at the end`);
  for (const r of rows) {
    if (r.leakedTensors) console.log(`note: tfjs's failed call on ${r.implementation} (${r.benchmark}) left ${r.leakedTensors} tensors allocated that tf.tidy did not free; excluded from the check above.`);
  }

  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const result = {
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    quick: o.quick,
    tiny: o.tiny,
    filter: o.filter,
    machine: {
      cpuModel: os.cpus()[0]?.model ?? null, logicalCores: os.cpus().length, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`, loadAvgStart: loadStart, loadAvgEnd: os.loadavg(),
      node: process.version, v8: process.versions.v8,
    },
    packages: { [pkg.name]: pkg.version, ...tfjs.versions },
    backend: { name: ourBackend.name, adapter: gpuDescription || null, emulated },
    git,
    threads: { ours: oursThreads, 'tfjs-wasm': tfjs.wasmThreads, 'tfjs-cpu': 1 },
    tfjsWasmSimd: tfjs.wasmSimd,
    timing,
    rows,
    memory: { flat: memOk, oursAtStart: baseline, oursAtEnd: final, checks: ctx.memory },
  };
  mkdirSync(path.dirname(o.out), { recursive: true });
  const tmp = `${o.out}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(result, null, 2)}\n`);
  renameSync(tmp, o.out);
  console.log(`wrote ${path.relative(process.cwd(), o.out) || o.out}`);

  const bad = rows.filter((r) => r.check && !r.check.ok).length + (memOk ? 0 : 1)
    + rows.filter((r) => r.error && r.implementation !== 'tfjs-wasm').length;
  if (bad > 0) {
    console.error(`${bad} problem(s): a result mismatch, a memory leak or a failure of ours (see above)`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exitCode = 1;
});
