// The correctness column: every engine's second-order MAML meta-gradient of a small tanh MLP against
// float64 central differences, so a speed table cannot hide a wrong answer. The reference is plain
// JavaScript (forward pass and hand-written backward pass of the inner step, then differences of the
// meta-loss), independent of our engine. Run: npm run build && node dist/bench/correctness.js
// [--out file]; writes bench/results/correctness.json.
//
// The task: one sine task (K = 10), MLP 1-16-16-1 with tanh, one inner SGD step at alpha = 0.1,
// meta-loss = query MSE at the adapted weights, meta-gradient with respect to the initial weights.
// Error: max_i |g_i - ref_i| / max_i |ref_i| over all 321 parameters.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, backend, grad, mse, nn, tensor, tidy, treeMap, Tensor, type BackendName } from '../index.js';
import { HostRng } from './data.js';
import { loadTfjs, useTfBackend } from './tfjs.js';
import type * as TF from '@tensorflow/tfjs-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SIZES = [1, 16, 16, 1];
const ALPHA = 0.1;
const K = 10;
const TOL = { float32: 1e-3, float64: 1e-7 };

// ---------- the problem, on the host ----------

interface Problem { params: Float64Array[]; shapes: number[][]; xs: Float64Array; ys: Float64Array; xq: Float64Array; yq: Float64Array }

function makeProblem(): Problem {
  const rng = new HostRng(20261122);
  const shapes: number[][] = [];
  const params: Float64Array[] = [];
  for (let i = 0; i + 1 < SIZES.length; i++) {
    const [a, b] = [SIZES[i], SIZES[i + 1]];
    shapes.push([a, b], [b]);
    const lim = Math.sqrt(6 / (a + b));
    params.push(Float64Array.from({ length: a * b }, () => (2 * rng.uniform() - 1) * lim));
    params.push(Float64Array.from({ length: b }, () => 0.1 * rng.normal()));
  }
  const amp = 0.1 + 4.9 * rng.uniform(), phase = Math.PI * rng.uniform();
  const xs = Float64Array.from({ length: K }, () => -5 + 10 * rng.uniform());
  const xq = Float64Array.from({ length: K }, () => -5 + 10 * rng.uniform());
  const f = (x: number) => amp * Math.sin(x - phase);
  // Rounded to float32 so every engine, whatever its precision, starts from the same numbers.
  const r32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));
  return { params: params.map(r32), shapes, xs: r32(xs), ys: r32(xs.map(f)), xq: r32(xq), yq: r32(xq.map(f)) };
}

// ---------- float64 reference: plain JavaScript ----------

/** Loss of the MLP on (x, y) and its gradient, by a hand-written backward pass. */
function lossAndGrad(p: Float64Array[], x: Float64Array, y: Float64Array): { loss: number; grad: Float64Array[] } {
  const n = x.length, layers = p.length / 2;
  const acts: Float64Array[] = [x]; // activations per layer, row-major [n, width]
  let h = x, width = 1;
  for (let l = 0; l < layers; l++) {
    const out = SIZES[l + 1], w = p[2 * l], b = p[2 * l + 1];
    const a = new Float64Array(n * out);
    for (let i = 0; i < n; i++) for (let j = 0; j < out; j++) {
      let s = b[j];
      for (let k = 0; k < width; k++) s += h[i * width + k] * w[k * out + j];
      a[i * out + j] = l + 1 < layers ? Math.tanh(s) : s;
    }
    acts.push(a); h = a; width = out;
  }
  let loss = 0;
  let d = new Float64Array(n); // dLoss/d(output), output width 1
  for (let i = 0; i < n; i++) { const e = h[i] - y[i]; loss += e * e / n; d[i] = 2 * e / n; }
  const g: Float64Array[] = p.map((t) => new Float64Array(t.length));
  for (let l = layers - 1; l >= 0; l--) {
    const inW = SIZES[l], out = SIZES[l + 1], w = p[2 * l], hin = acts[l];
    for (let i = 0; i < n; i++) for (let j = 0; j < out; j++) {
      g[2 * l + 1][j] += d[i * out + j];
      for (let k = 0; k < inW; k++) g[2 * l][k * out + j] += hin[i * inW + k] * d[i * out + j];
    }
    if (l === 0) break;
    const dh = new Float64Array(n * inW);
    for (let i = 0; i < n; i++) for (let k = 0; k < inW; k++) {
      let s = 0;
      for (let j = 0; j < out; j++) s += d[i * out + j] * w[k * out + j];
      const t = hin[i * inW + k];
      dh[i * inW + k] = s * (1 - t * t); // through the tanh that produced hin
    }
    d = dh;
  }
  return { loss, grad: g };
}

const adapt = (pr: Problem, p: Float64Array[]) => {
  const g = lossAndGrad(p, pr.xs, pr.ys).grad;
  return p.map((t, i) => t.map((v, j) => v - ALPHA * g[i][j]));
};
const metaLoss = (pr: Problem, p: Float64Array[]) => lossAndGrad(adapt(pr, p), pr.xq, pr.yq).loss;

function referenceMetaGrad(pr: Problem): Float64Array {
  const h = 1e-5, out: number[] = [];
  pr.params.forEach((t, i) => {
    for (let j = 0; j < t.length; j++) {
      const at = (d: number) => metaLoss(pr, pr.params.map((q, k) => (k === i ? q.map((v, m) => (m === j ? v + d : v)) : q)));
      out.push((at(h) - at(-h)) / (2 * h));
    }
  });
  return Float64Array.from(out);
}

/** What dropping the second-order term gives (first-order MAML): the query gradient at the adapted weights. */
const firstOrderMetaGrad = (pr: Problem) => Float64Array.from(lossAndGrad(adapt(pr, pr.params), pr.xq, pr.yq).grad.flatMap((t) => Array.from(t)));

const relErr = (g: ArrayLike<number>, ref: Float64Array) => {
  if (g.length !== ref.length) throw new Error(`meta-gradient has ${g.length} entries, expected ${ref.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(g[i] - ref[i])); den = Math.max(den, Math.abs(ref[i])); }
  return num / den;
};

// ---------- engines ----------

async function ours(pr: Problem, backend: BackendName, dtype: 'float32' | 'float64'): Promise<number[]> {
  await init({ backend });
  return tidy(async () => {
    const o = { dtype };
    const p: Record<string, { w: Tensor; b: Tensor }> = {};
    for (let l = 0; l + 1 < SIZES.length; l++) p[`l${l}`] = { w: tensor(pr.params[2 * l], pr.shapes[2 * l], o), b: tensor(pr.params[2 * l + 1], pr.shapes[2 * l + 1], o) };
    const col = (a: Float64Array) => tensor(a, [a.length, 1], o);
    const [xs, ys, xq, yq] = [col(pr.xs), col(pr.ys), col(pr.xq), col(pr.yq)];
    const net = (q: typeof p, x: Tensor) => {
      let h = x;
      for (let l = 0; l + 1 < SIZES.length; l++) { h = nn.linear(q[`l${l}`], h); if (l + 2 < SIZES.length) h = h.tanh(); }
      return h;
    };
    const g = grad((q: typeof p) => {
      const inner = grad((r: typeof p) => mse(net(r, xs), ys))(q);
      return mse(net(treeMap((w: Tensor, gw: Tensor) => w.sub(gw.mul(ALPHA)), q, inner), xq), yq);
    })(p);
    const out: number[] = [];
    for (let l = 0; l + 1 < SIZES.length; l++) for (const t of [g[`l${l}`].w, g[`l${l}`].b]) out.push(...(await t.data()));
    return out;
  });
}

async function tfjs(tf: typeof TF, pr: Problem, backend: 'cpu' | 'wasm'): Promise<number[]> {
  await useTfBackend(tf, backend);
  return tf.tidy(() => {
    const params = pr.params.map((t, i) => tf.tensor(Float32Array.from(t), pr.shapes[i]));
    const col = (a: Float64Array) => tf.tensor2d(Float32Array.from(a), [a.length, 1]);
    const [xs, ys, xq, yq] = [col(pr.xs), col(pr.ys), col(pr.xq), col(pr.yq)];
    const net = (q: TF.Tensor[], x: TF.Tensor) => {
      let h = x;
      for (let i = 0; i < q.length; i += 2) { h = tf.add(tf.matMul(h as TF.Tensor2D, q[i] as TF.Tensor2D), q[i + 1]); if (i + 2 < q.length) h = tf.tanh(h); }
      return h;
    };
    const loss = (q: TF.Tensor[], x: TF.Tensor, y: TF.Tensor) => tf.mean(tf.square(tf.sub(net(q, x), y))) as TF.Scalar;
    const g = tf.grads((...q: TF.Tensor[]) => {
      const inner = tf.grads((...r: TF.Tensor[]) => loss(r, xs, ys))(q);
      return loss(q.map((w, i) => tf.sub(w, tf.mul(inner[i], ALPHA))), xq, yq);
    })(params);
    return g.flatMap((t) => Array.from(t.dataSync()));
  });
}

function torch(pr: Problem): { version: string; float32: number[]; float64: number[] } {
  const req = { sizes: SIZES, alpha: ALPHA, params: pr.params.map((t) => Array.from(t)), xs: Array.from(pr.xs), ys: Array.from(pr.ys), xq: Array.from(pr.xq), yq: Array.from(pr.yq) };
  const r = spawnSync('/usr/bin/python3', [path.join(ROOT, 'bench/peers/torch_correctness.py')], { input: JSON.stringify(req), encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(r.stderr.trim().split('\n').pop() || `python exited with ${r.status}`);
  const out = JSON.parse(r.stdout);
  return { version: out.torch, float32: out.float32, float64: out.float64 };
}

// ---------- main ----------

export interface CorrectnessRow { engine: string; dtype: 'float32' | 'float64'; maxRelError: number | null; tolerance: number; ok: boolean | null; error?: string }

async function main() {
  const outArg = process.argv.indexOf('--out');
  const outFile = outArg > 0 ? path.resolve(process.argv[outArg + 1]) : path.join(ROOT, 'bench/results/correctness.json');
  const pr = makeProblem();
  const ref = referenceMetaGrad(pr);
  const rows: CorrectnessRow[] = [];
  type Got = ArrayLike<number> | { values: ArrayLike<number>; engine: string };
  const record = async (engine: string, dtype: 'float32' | 'float64', f: () => Promise<Got> | Got) => {
    try {
      const got = await f();
      const [values, name] = 'engine' in got ? [got.values, got.engine] : [got, engine];
      const e = relErr(values, ref);
      rows.push({ engine: name, dtype, maxRelError: e, tolerance: TOL[dtype], ok: e <= TOL[dtype] });
    } catch (err) {
      rows.push({ engine, dtype, maxRelError: null, tolerance: TOL[dtype], ok: null, error: (err instanceof Error ? err.message : String(err)).split('\n')[0] });
    }
  };
  await record('ours-ref', 'float64', () => ours(pr, 'ref', 'float64'));
  await record('ours-wasm', 'float64', () => ours(pr, 'wasm', 'float64'));
  await record('ours-wasm', 'float32', () => ours(pr, 'wasm', 'float32'));
  // WebGPU where an adapter exists; on GPU-less machines that is SwiftShader, the same WGSL run on the CPU.
  await record('ours-webgpu', 'float32', async () => {
    const g = await ours(pr, 'webgpu', 'float32');
    if (/swiftshader/i.test((backend() as { description?: string }).description ?? '')) return { values: g, engine: 'ours-webgpu (SwiftShader)' };
    return g;
  });
  await init({ backend: 'wasm' });
  const tf = (await loadTfjs()).tf;
  await record('tfjs-cpu', 'float32', () => tfjs(tf, pr, 'cpu'));
  await record('tfjs-wasm', 'float32', () => tfjs(tf, pr, 'wasm'));
  let torchVersion: string | null = null;
  if (existsSync('/usr/bin/python3')) {
    let t: ReturnType<typeof torch> | null = null;
    await record('pytorch', 'float32', () => { t = torch(pr); torchVersion = t.version; return t.float32; });
    if (t) await record('pytorch', 'float64', () => t!.float64);
  } else {
    rows.push({ engine: 'pytorch', dtype: 'float32', maxRelError: null, tolerance: TOL.float32, ok: null, error: 'not installed: /usr/bin/python3 missing (apt-get install python3-torch)' });
  }
  const firstOrder = relErr(firstOrderMetaGrad(pr), ref);

  console.log(`second-order MAML meta-gradient, tanh MLP ${SIZES.join('-')}, K=${K}, alpha=${ALPHA}: max|g - ref| / max|ref| against float64 central differences`);
  for (const r of rows) {
    const v = r.maxRelError === null ? '-' : r.maxRelError.toExponential(1);
    console.log(`  ${r.engine.padEnd(12)} ${r.dtype}  ${v.padStart(8)}  ${r.ok === null ? `ERROR: ${r.error}` : r.ok ? 'ok' : `WRONG (tolerance ${r.tolerance})`}`);
  }
  console.log(`  (dropping the second-order term, as first-order MAML does, gives ${firstOrder.toExponential(1)})`);
  const result = { date: new Date().toISOString(), machine: { cpuModel: os.cpus()[0]?.model ?? null, node: process.version }, torch: torchVersion,
    problem: { sizes: SIZES, alpha: ALPHA, shots: K, parameters: ref.length, reference: 'float64 central differences (h = 1e-5) of a plain-JavaScript meta-loss' },
    firstOrderError: firstOrder, rows };
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(`${outFile}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
  renameSync(`${outFile}.tmp`, outFile);
  console.log(`wrote ${path.relative(process.cwd(), outFile)}`);
  // Ours must be right; a peer being wrong is a finding, not a failure of this run.
  // WebGPU may be missing (no adapter): only a wrong answer from it fails the run.
  if (rows.some((r) => r.engine.startsWith('ours') && (r.engine.startsWith('ours-webgpu') ? r.ok === false : r.ok !== true))) process.exitCode = 1;
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
