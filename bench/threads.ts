// Our WASM backend on 1 thread against the same backend on N threads, in one process, repetitions
// interleaved (bench/harness.ts), so machine load hits both alike: matmul 512x512 and the Conv4
// forward+backward of bench/run.ts (batch 80), plus a check that both give the same bits.
//
//   npm run build && node --expose-gc dist/bench/threads.js [--threads N] [--quick] [--filter TEXT]
//
// Prints the load average before and after: timings on a busy machine say little on their own.

import os from 'node:os';
import { matmul, tensor, tidy, valueAndGrad } from '../index.js';
import { useBackend } from '../engine/runtime.js';
import { createWasmBackend, type WasmBackend } from '../kernels/wasm/backend.js';
import { conv4Loss, flatParams, makeConv4Host, oursConv4 } from './conv4.js';
import { HostRng } from './data.js';
import { stats, timeInterleaved, type Contender } from './harness.js';

const argv = process.argv.slice(2);
const arg = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const threads = Number(arg('--threads') ?? 2);
const quick = argv.includes('--quick');
const filter = arg('--filter')?.toLowerCase() ?? null;
const timing = quick ? { reps: 3, minRepMs: 20, warmupMs: 20 } : { reps: 7, minRepMs: 60, warmupMs: 150 };

interface Bench {
  name: string;
  /** Sets up on the active backend; returns the timed op, a value to compare, and a cleanup. */
  setup: () => Promise<{ op: () => void; value: () => Promise<Float32Array>; dispose: () => void }>;
}

const benches: Bench[] = [
  {
    name: 'matmul 512x512',
    setup: async () => {
      const r = new HostRng(3);
      const vals = (n: number) => Float32Array.from({ length: n }, () => r.normal());
      const a = tensor(vals(512 * 512), [512, 512]), b = tensor(vals(512 * 512), [512, 512]);
      return {
        op: () => tidy(() => { matmul(a, b); }),
        value: () => tidy(() => matmul(a, b).data()) as Promise<Float32Array>,
        dispose: () => { a.dispose(); b.dispose(); },
      };
    },
  },
  {
    name: 'conv4 fwd+bwd 80x1x28x28',
    setup: async () => {
      const ours = oursConv4(makeConv4Host(80));
      const vg = valueAndGrad(conv4Loss);
      return {
        op: () => tidy(() => { vg(ours.params, ours.x, ours.y); }),
        value: async () => {
          const parts = await tidy(async () => {
            const [l, g] = vg(ours.params, ours.x, ours.y);
            return Promise.all([l, ...flatParams(g)].map(async (t) => Array.from(await t.data())));
          });
          return Float32Array.from(parts.flat());
        },
        dispose: () => ours.all.forEach((t) => t.dispose()),
      };
    },
  },
];

async function main(): Promise<void> {
  const one = await createWasmBackend();
  const many = await createWasmBackend({ threads });
  const load0 = os.loadavg();
  console.log(`threads bench: 1 vs ${many.threads} threads, ${os.cpus().length} CPUs, load average ${load0.map((l) => l.toFixed(2)).join(' ')}`);
  for (const bench of benches.filter((b) => filter === null || b.name.toLowerCase().includes(filter))) {
    const on = async (b: WasmBackend) => { useBackend(b); return { b, ...(await bench.setup()) }; };
    const s1 = await on(one), sN = await on(many);
    const v1 = (useBackend(one), await s1.value()), vN = (useBackend(many), await sN.value());
    const same = v1.length === vN.length && v1.every((x, i) => Object.is(x, vN[i]));
    useBackend(many);
    const calls = many.parallelStats().calls;
    sN.op();
    const split = many.parallelStats().calls - calls;
    const cs: Contender[] = [s1, sN].map((s) => ({
      impl: `ours-wasm`, threads: s.b.threads, activate: async () => { useBackend(s.b); }, op: s.op,
    }));
    const t = await timeInterleaved(cs, timing);
    const [a, b] = t.map((x) => stats(x.msPerOp));
    console.log(`${bench.name.padEnd(28)} 1 thr ${a.median.toFixed(3)} ms [${a.min.toFixed(3)}-${a.max.toFixed(3)}]   ` +
      `${many.threads} thr ${b.median.toFixed(3)} ms [${b.min.toFixed(3)}-${b.max.toFixed(3)}]   speedup ${(a.median / b.median).toFixed(2)}x   ` +
      `bit-identical: ${same}   kernel calls split per op: ${split}`);
    useBackend(one); s1.dispose();
    useBackend(many); sN.dispose();
  }
  console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await many.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
