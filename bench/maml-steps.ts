// Whole meta-learning steps beside PyTorch (Debian's python3-torch), in the same run: second-order
// MAML on sine (25 tasks, K=10, 1 inner step; per-task loop and all tasks at once; and first-order
// MAML, all tasks at once) and the
// Omniglot-shaped step (32 tasks, 5-way 1-shot, 15 queries, Conv4 with 64 filters), and one
// Prototypical-networks training episode (60-way 5-shot 5-query, Conv4 with 64 filters). Repetitions
// alternate between the engines so drift hits both. Run: npm run build && node dist/bench/maml-steps.js
// [--quick] [--threads N] (PyTorch's thread count) [--ours-threads M] (our WASM backend's, default 1)
// [--filter TEXT] (only workloads whose name contains TEXT, case-insensitive). Results go to
// bench/results/maml-steps-<N>thread.json (with --filter: maml-steps-<N>thread-<TEXT>.json; with
// M > 1, -ours<M>thread before .json).

import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { init, nn, optim, tidy, Random, memory, peakMemory, resetPeakMemory, Tensor, treeLeaves } from '../index.js';
import { MAML, ProtoNet, classificationLoss, regressionLoss, Task } from '../algorithms/index.js';
import { SineTasks } from '../datasets/index.js';
import { stats } from './harness.js';

const quick = process.argv.includes('--quick');
const threadsArg = process.argv.indexOf('--threads');
const torchThreads = threadsArg > 0 ? Number(process.argv[threadsArg + 1]) : 1;
const oursThreadsArg = process.argv.indexOf('--ours-threads');
const oursThreads = oursThreadsArg > 0 ? Number(process.argv[oursThreadsArg + 1]) : 1;
if (!Number.isInteger(oursThreads) || oursThreads < 1) throw new Error(`--ours-threads must be a positive integer, got '${process.argv[oursThreadsArg + 1]}'`);
const REPS = quick ? 3 : 7;
const filterArg = process.argv.indexOf('--filter');
const filter = filterArg > 0 ? process.argv[filterArg + 1].toLowerCase() : null;
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** A long-lived PyTorch process, asked for one timed repetition at a time. */
class TorchPeer {
  private lines: AsyncIterator<string>;
  private proc;
  constructor() {
    this.proc = spawn('/usr/bin/python3', [join(root, 'bench', 'peers', 'torch_maml.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
  }
  async next(): Promise<any> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the PyTorch process ended');
    return JSON.parse(r.value);
  }
  async time(bench: string, iters: number): Promise<number> {
    this.proc.stdin!.write(JSON.stringify({ bench, iters, threads: torchThreads }) + '\n');
    return (await this.next()).ms;
  }
  close() { this.proc.stdin!.end(); }
}

interface Workload { name: string; torch: string; step: () => Promise<void>; iters: number }

function sineWorkloads(): Workload[] {
  const data = new SineTasks({ shots: 10, seed: 0 }).batch(25);
  const model = (p: any, x: Tensor) => nn.sineMLP(p, x);
  const vec = new MAML({ model, loss: regressionLoss, params: nn.initSineMLP(new Random(0)), innerLr: 0.01, vectorized: true, metaOptimizer: optim.adam({ lr: 1e-3 }) });
  const loop = new MAML({ model, loss: regressionLoss, params: nn.initSineMLP(new Random(0)), innerLr: 0.01, metaOptimizer: optim.adam({ lr: 1e-3 }) });
  const first = new MAML({ model, loss: regressionLoss, params: nn.initSineMLP(new Random(0)), innerLr: 0.01, vectorized: true, firstOrder: true, metaOptimizer: optim.adam({ lr: 1e-3 }) });
  const perTask: Task[] = Array.from({ length: 25 }, (_, t) => {
    const pick = (x: Tensor) => x.slice([t, 0, 0], [1, -1, -1]).reshape([10, 1]);
    return { xs: pick(data.xs), ys: pick(data.ys), xq: pick(data.xq), yq: pick(data.yq) };
  });
  const batched: Task[] = [{ xs: data.xs, ys: data.ys, xq: data.xq, yq: data.yq }];
  return [
    { name: 'sine MAML step, 25 tasks, per-task loop', torch: 'sine-loop', step: async () => { await loop.step(perTask); }, iters: quick ? 5 : 20 },
    { name: 'sine MAML step, 25 tasks, batched', torch: 'sine-batched', step: async () => { await vec.step(batched); }, iters: quick ? 20 : 100 },
    { name: 'sine first-order MAML step, 25 tasks, batched', torch: 'sine-batched-first-order', step: async () => { await first.step(batched); }, iters: quick ? 20 : 100 },
  ];
}

function omniglotWorkload(): Workload {
  const rng = new Random(1);
  const learner = new MAML({
    model: (p: any, x: Tensor) => nn.conv4(p, x), loss: classificationLoss, params: nn.initConv4(rng, { ways: 5 }),
    innerLr: 0.4, metaOptimizer: optim.adam({ lr: 1e-3 }),
  });
  const labels = (n: number) => Int32Array.from({ length: 5 * n }, (_, i) => Math.floor(i / n));
  const tasks: Task[] = Array.from({ length: 32 }, () => ({ xs: rng.uniform([5, 1, 28, 28]), ys: labels(1), xq: rng.uniform([75, 1, 28, 28]), yq: labels(15) }));
  return { name: 'Omniglot MAML step, 32 tasks 5-way 1-shot 15 queries, Conv4', torch: 'omniglot', step: async () => { await learner.step(tasks); }, iters: 1 };
}

/** One Prototypical-networks episode as in Snell et al.'s Omniglot training: 60 ways, 5 shots, 5 queries. */
function protonetWorkload(): Workload {
  const rng = new Random(2);
  const { head, ...features } = nn.initConv4(rng, { ways: 1 });
  treeLeaves(head).forEach((t) => t.dispose());
  const learner = new ProtoNet({ embed: (p: any, x: Tensor) => nn.conv4Features(p, x), params: features, optimizer: optim.adam({ lr: 1e-3 }) });
  const labels = Int32Array.from({ length: 300 }, (_, i) => Math.floor(i / 5));
  const task: Task = { xs: rng.uniform([300, 1, 28, 28]), ys: labels, xq: rng.uniform([300, 1, 28, 28]), yq: labels };
  return { name: 'ProtoNet episode, 60-way 5-shot 5 queries, Conv4', torch: 'protonet', step: async () => { await learner.step([task]); }, iters: 1 };
}

/** PyTorch's peak memory for a workload, from a fresh process (see peak_memory in the peer). */
function torchPeak(bench: string): number | undefined {
  const r = spawnSync('/usr/bin/python3', [join(root, 'bench', 'peers', 'torch_maml.py'), '--memory', bench, String(torchThreads)], { encoding: 'utf8' });
  if (r.status !== 0) { console.error(`PyTorch peak memory for ${bench} failed: ${r.stderr.trim().split('\n').pop()}`); return undefined; }
  return JSON.parse(r.stdout).peakRssGrowthBytes;
}

async function main() {
  const ourBackend = await init({ backend: 'wasm', threads: oursThreads });
  // What the backend runs on (1 where threads are unavailable).
  const ourThreads = (ourBackend as unknown as { threads?: number }).threads ?? 1;
  const torch = existsSync('/usr/bin/python3') ? new TorchPeer() : null;
  const torchInfo = torch ? await torch.next().catch(() => null) : null;
  const rows: any[] = [];
  const all = () => [...sineWorkloads(), ...(process.argv.includes('--no-omniglot') ? [] : [omniglotWorkload()]), protonetWorkload()];
  const workloads = all().filter((w) => filter === null || w.name.toLowerCase().includes(filter));
  if (workloads.length === 0) {
    // Not an error: npm run bench passes one filter to every stage.
    console.log(`maml-steps: no workload name contains '${filter}'; nothing to run`);
    torch?.close();
    return;
  }
  for (const w of workloads) {
    await w.step(); // warm-up
    const before = memory();
    // Peak live bytes of one step above what was live before it (parameters, optimiser state, data).
    resetPeakMemory();
    await tidy(w.step);
    const peakBytes = peakMemory() - before.bytes;
    const ours: number[] = [], theirs: number[] = [];
    if (torchInfo) await torch!.time(w.torch, 1); // sets up and warms the peer
    for (let r = 0; r < REPS; r++) {
      // Alternate which engine goes first so drift does not favour one.
      const runOurs = async () => { const t0 = performance.now(); for (let i = 0; i < w.iters; i++) await tidy(w.step); ours.push((performance.now() - t0) / w.iters); };
      const runTheirs = async () => { if (torchInfo) theirs.push(await torch!.time(w.torch, w.iters)); };
      if (r % 2) { await runTheirs(); await runOurs(); } else { await runOurs(); await runTheirs(); }
    }
    const flat = memory().bytes === before.bytes;
    const o = stats(ours), t = theirs.length ? stats(theirs) : null;
    const peakRssBytes = torchInfo ? torchPeak(w.torch) : undefined;
    rows.push({ benchmark: w.name, ours: { ...o, threads: ourThreads, peakBytes }, pytorch: t && { ...t, threads: torchThreads, peakRssBytes }, speedup: t ? t.median / o.median : null, memoryFlat: flat });
    console.log(`${w.name.padEnd(64)} ours (${ourThreads} thr) ${o.median.toFixed(2)} ms [${o.min.toFixed(2)}-${o.max.toFixed(2)}]` +
      (t ? `   PyTorch (${torchThreads} thr) ${t.median.toFixed(2)} ms [${t.min.toFixed(2)}-${t.max.toFixed(2)}]   PyTorch/ours ${(t.median / o.median).toFixed(2)}x` : '   PyTorch: not installed (apt-get install python3-torch libopenblas0-openmp)') +
      `   peak: ours ${(peakBytes / 2 ** 20).toFixed(1)} MiB live${peakRssBytes === undefined ? '' : `, PyTorch ${(peakRssBytes / 2 ** 20).toFixed(1)} MiB RSS growth`}` +
      (flat ? '' : '   MEMORY NOT FLAT'));
  }
  torch?.close();
  const out = { date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, torch: torchInfo?.torch ?? null, quick, reps: REPS, oursThreads: ourThreads, rows };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', `maml-steps-${torchThreads}thread${filter ? '-' + filter.replace(/[^a-z0-9]+/g, '_') : ''}${ourThreads > 1 ? `-ours${ourThreads}thread` : ''}.json`), JSON.stringify(out, null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });
