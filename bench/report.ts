// Writes bench/REPORT.md and its SVG charts from the JSON results of one bench run
// (bench/results/latest.json, correctness.json, maml-steps-<N>thread.json). `npm run bench` calls it
// last; it can be rerun alone: node dist/bench/report.js. Every number in the report comes from those
// files; nothing is typed in by hand except the targets, which quote the issues.

import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RESULTS = path.join(ROOT, 'bench/results');
const read = (f: string): any | null => (existsSync(path.join(RESULTS, f)) ? JSON.parse(readFileSync(path.join(RESULTS, f), 'utf8')) : null);

// ---------- formatting ----------

const num = (v: number | null | undefined, unit = ''): string => {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const s = v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 100 ? v.toFixed(1) : v >= 10 ? v.toFixed(2) : v.toFixed(3);
  return unit ? `${s} ${unit}` : s;
};
const ratio = (v: number | null | undefined) => (v === null || v === undefined ? '' : `${v.toFixed(2)}x`);
const bytes = (b: number | null | undefined) => (b === null || b === undefined ? '-' : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = (head: string[], rows: string[][]) =>
  [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');

// ---------- SVG bar chart ----------

const COLORS: Record<string, string> = { ours: '#1f6feb', 'tfjs-wasm': '#d29922', 'tfjs-cpu': '#8b949e', pytorch: '#cf222e' };
const colorOf = (series: string) => COLORS[Object.keys(COLORS).find((k) => series.startsWith(k)) ?? ''] ?? '#6e7781';

interface Group { label: string; bars: { series: string; value: number | null; note?: string }[] }

/** Horizontal grouped bars, one group per benchmark; log scale when values span decades. */
function barChart(title: string, unit: string, groups: Group[], log: boolean): string {
  const W = 860, left = 300, right = 110, barH = 14, gap = 10, top = 48;
  const vals = groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v): v is number => v !== null && v > 0);
  const max = Math.max(...vals), min = Math.min(...vals);
  const lo = log ? Math.pow(10, Math.floor(Math.log10(min))) : 0;
  const hi = log ? Math.pow(10, Math.ceil(Math.log10(max))) : max * 1.05;
  const x = (v: number) => left + ((log ? Math.log10(v / lo) / Math.log10(hi / lo) : v / hi) * (W - left - right));
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.series)))];
  let y = top;
  const parts: string[] = [];
  for (const g of groups) {
    parts.push(`<text x="${left - 8}" y="${y + (g.bars.length * barH) / 2 + 4}" text-anchor="end" font-size="12">${xml(g.label)}</text>`);
    for (const b of g.bars) {
      if (b.value !== null && b.value > 0) {
        parts.push(`<rect x="${left}" y="${y}" width="${(x(b.value) - left).toFixed(1)}" height="${barH - 2}" fill="${colorOf(b.series)}"/>`);
        parts.push(`<text x="${(x(b.value) + 4).toFixed(1)}" y="${y + barH - 4}" font-size="10">${xml(num(b.value))}</text>`);
      } else {
        parts.push(`<text x="${left + 4}" y="${y + barH - 4}" font-size="10" fill="#cf222e">${xml(`${b.series}: ${b.note ?? 'no result'}`)}</text>`);
      }
      y += barH;
    }
    y += gap;
  }
  const H = y + 30;
  const ticks: number[] = [];
  if (log) for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  else for (let i = 0; i <= 5; i++) ticks.push((hi * i) / 5);
  const axis = ticks.map((t) => `<line x1="${x(t || lo).toFixed(1)}" y1="${top - 6}" x2="${x(t || lo).toFixed(1)}" y2="${y}" stroke="#d0d7de"/>` +
    `<text x="${x(t || lo).toFixed(1)}" y="${y + 14}" font-size="10" text-anchor="middle">${xml(num(t))}</text>`).join('');
  const legend = series.map((s, i) => `<rect x="${left + i * 150}" y="22" width="10" height="10" fill="${colorOf(s)}"/><text x="${left + i * 150 + 14}" y="31" font-size="11">${xml(s)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="10" y="16" font-size="14" font-weight="bold">${xml(title)}</text>` +
    `${legend}${axis}${parts.join('')}<text x="${W - right}" y="${H - 4}" font-size="11" text-anchor="end">${xml(unit)}${log ? ' (log scale)' : ''}</text></svg>\n`;
}
const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function kernelTable(rows: any[]): string {
  return table(['benchmark', 'implementation', 'threads', 'unit', 'median', 'min - max', 'ours faster by', 'check / error'], rows.map((r: any) => [
    r.benchmark, r.implementation, String(r.threads), r.unit, num(r.median), r.min === null ? '-' : `${num(r.min)} - ${num(r.max)}`,
    ratio(r.oursSpeedup), r.error ? `ERROR: ${r.error}` : r.check ? `${r.check.ok ? 'ok' : 'MISMATCH'} ${r.check.value.toExponential(1)}` : '',
  ]));
}

function writeAtomic(file: string, text: string) {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

// ---------- report ----------

function main() {
  const kernels = read('latest.json');
  const correctness = read('correctness.json');
  const out: string[] = [];
  out.push('# Benchmark report', '');
  const stepsList = () => [stepFiles[1], stepFiles[2]].filter(Boolean);
  out.push('Generated by `npm run bench` (`bench/report.ts`) from the JSON in `bench/results/`. Ratios compare medians measured **in the same run**; "ours faster by" above 1 means ours is faster. The machine is a shared 2-core VM: read single ratios as ±25% (see `bench/README.md` for the method, and each JSON for load averages).', '');

  if (kernels) {
    const m = kernels.machine;
    out.push(`Kernel run: ${kernels.date.slice(0, 10)}, ${m.cpuModel} (${m.logicalCores} logical cores, ${m.totalMemGiB} GiB), ${m.platform}, Node ${m.node}; ` +
      `${Object.entries(kernels.packages).map(([k, v]) => `${k} ${v}`).join(', ')}; commit ${kernels.git?.commit?.slice(0, 7) ?? '?'}${kernels.git?.dirty ? ' (with uncommitted changes)' : ''}; ` +
      `threads: ${Object.entries(kernels.threads).map(([k, v]) => `${k} ${v}`).join(', ')}; load average ${m.loadAvgStart.map((v: number) => v.toFixed(1)).join(' ')} at the start, ${m.loadAvgEnd.map((v: number) => v.toFixed(1)).join(' ')} at the end` +
      `${kernels.quick ? '. **QUICK run: smoke test, not for quoting.**' : ''}.`, '');
  }

  // Targets quoted from the issues, against what this run measured.
  const krow = (bench: string, impl: RegExp) => kernels?.rows.find((r: any) => r.benchmark === bench && impl.test(r.implementation));
  // The suite's two step runs: both engines on 1 thread, then both on 2.
  const stepFiles: Record<number, any> = { 1: read('maml-steps-1thread.json'), 2: read('maml-steps-2thread-ours2thread.json') };
  const srow = (threads: number, re: RegExp) => stepFiles[threads]?.rows.find((r: any) => re.test(r.benchmark));
  const targets: string[][] = [];
  const target = (what: string, measured: number | null | undefined, unit: string, goal: number, higherIsBetter: boolean, cmd: string) => {
    if (measured === null || measured === undefined) { targets.push([what, '-', `${higherIsBetter ? '>=' : '<='} ${num(goal, unit)}`, 'not measured in this run', cmd]); return; }
    const met = higherIsBetter ? measured >= goal : measured <= goal;
    const by = higherIsBetter ? goal / measured : measured / goal;
    targets.push([what, num(measured, unit), `${higherIsBetter ? '>=' : '<='} ${num(goal, unit)}`, met ? 'met' : `short: ${by.toFixed(2)}x ${higherIsBetter ? 'too slow' : 'over'}`, cmd]);
  };
  target('f32 matmul N=512, single-threaded', krow('matmul 512x512', /^ours/)?.median, 'GFLOP/s', 35, true, 'npm run bench -- --filter "matmul 512"');
  target('Conv4 fwd+bwd, batch 80, single-threaded', krow('conv4 fwd+bwd 80x1x28x28', /^ours/)?.median, 'ms', 224, false, 'npm run bench -- --filter "conv4 fwd+bwd"');
  target('sine MAML 2nd-order meta-step (25 tasks, K=10)', srow(1, /^sine MAML step.*batched/)?.ours?.median, 'ms', 3.6, false, 'node dist/bench/maml-steps.js --threads 1 --filter sine');
  // The 2-core goals: our 2-thread row when the run has one, else the single-threaded one.
  const twoCore = (re: RegExp) => (stepFiles[2]?.oursThreads === 2 ? { th: 2, r: srow(2, re) } : { th: 1, r: srow(1, re) });
  const omni = twoCore(/Omniglot/), proto = twoCore(/Proto/i);
  target(`Omniglot-shaped MAML meta-step (32 tasks), ours on ${omni.th} thread${omni.th === 1 ? '' : 's'} vs the 2-core goal`, omni.r?.ours?.median, 'ms', 4300, false, `node dist/bench/maml-steps.js --threads ${omni.th} --ours-threads ${omni.th} --filter Omniglot`);
  target(`ProtoNet episode, 60-way 5-shot 5-query, ours on ${proto.th} thread${proto.th === 1 ? '' : 's'} vs the 2-core goal`, proto.r?.ours?.median, 'ms', 1110, false, `node dist/bench/maml-steps.js --threads ${proto.th} --ours-threads ${proto.th} --filter Proto`);
  out.push('## Targets from the issues', '', table(['target', 'measured (median)', 'goal', 'status', 'command'], targets), '');

  if (correctness) {
    out.push('## Correctness: second-order MAML meta-gradient of a tanh MLP', '');
    const p = correctness.problem;
    out.push(`MLP ${p.sizes.join('-')} with tanh, one sine task (K = ${p.shots}), one inner SGD step at alpha = ${p.alpha}; ` +
      `error = max|g - ref| / max|ref| over the ${p.parameters} parameters, ref = ${p.reference}. ` +
      `For scale: dropping the second-order term (first-order MAML) gives ${correctness.firstOrderError.toExponential(1)}. Command: \`node dist/bench/correctness.js\`.`, '');
    out.push(table(['engine', 'dtype', 'max relative error', 'verdict'], correctness.rows.map((r: any) => [
      r.engine, r.dtype, r.maxRelError === null ? '-' : r.maxRelError.toExponential(1),
      r.ok === null ? `could not run: ${r.error}` : r.ok ? `ok (tolerance ${r.tolerance})` : `**wrong** (tolerance ${r.tolerance})`,
    ])), '');
  }

  if (kernels) {
    out.push('## Kernels and Conv4 (ours and TensorFlow.js in one Node process)', '');
    out.push('Each benchmark: the engines get the same numbers, their results are cross-checked, then timed in interleaved repetitions. Command for a row: `npm run bench -- --filter "<benchmark>"`.', '');
    out.push(kernelTable(kernels.rows), '');
    const mm = kernels.rows.filter((r: any) => r.benchmark.startsWith('matmul') || r.benchmark.startsWith('conv2d'));
    const groups: Group[] = [...new Set<string>(mm.map((r: any) => r.benchmark))].map((b) => ({
      label: b.replace(', 64x64x3x3 filters', ''),
      bars: mm.filter((r: any) => r.benchmark === b).map((r: any) => ({ series: r.implementation, value: r.median, note: r.error ? 'cannot run (see table)' : undefined })),
    }));
    if (groups.length) {
      writeAtomic(path.join(RESULTS, 'gflops.svg'), barChart('f32 GFLOP/s: matmul and convolution kernels (higher is better)', 'GFLOP/s', groups, false));
      out.push('![GFLOP/s](results/gflops.svg)', '');
    }
    if (kernels.memory) out.push(`Memory: ${kernels.memory.flat ? 'flat for ours and tfjs across every timed loop' : '**not flat** (see the JSON)'}.`, '');
  }

  const gpu = read('latest-webgpu.json');
  if (gpu) {
    out.push('## Kernels and Conv4 on our WebGPU backend', '');
    if (gpu.error) out.push(`Could not run: ${gpu.error}`, '');
    else {
      out.push(`Run ${gpu.date.slice(0, 10)}, commit ${gpu.git?.commit?.slice(0, 7) ?? '?'}, adapter: ${gpu.backend?.adapter ?? '?'}. ` +
        (gpu.backend?.emulated
          ? '**This machine has no GPU: SwiftShader emulates one on the CPU, so these rows show that every kernel runs and agrees with the peers (check column), not how fast a GPU is.** Tiny sizes (matrices up to 32, batch 5) and quick timing (3 repetitions).'
          : 'Timed like the WASM table; the peers are the same TensorFlow.js backends on the CPU.') +
        ' Command: `npm run bench -- --backend webgpu --skip-steps`.', '');
      out.push(kernelTable(gpu.rows), '');
      if (gpu.memory) out.push(`Memory: ${gpu.memory.flat ? 'flat for ours and tfjs across every timed loop' : '**not flat** (see the JSON)'}.`, '');
    }
  }

  const steps = stepsList();
  if (steps.length) {
    out.push('## Whole meta-learning steps against PyTorch', '');
    out.push('Ours (WASM, on the thread count in the row: more than 1 is the opt-in `init({ threads })` backend) and PyTorch (Debian `python3-torch`, OpenBLAS/OpenMP) alternate repetitions in one run; PyTorch is a long-lived Python process of ours (`bench/peers/torch_maml.py`). Peak memory: ours is the high-water mark of live tensor bytes during one step (`peakMemory()`), PyTorch\'s the growth of its process\'s peak resident set over the step (it has no allocator statistics on CPU); they measure different things and are shown for scale.', '');
    out.push(`Runs: ${steps.map((s) => `${s.date.replace('T', ' ').slice(0, 16)} UTC with PyTorch on ${s === stepFiles[1] ? 1 : 2} thread${s === stepFiles[1] ? '' : 's'} and ours on ${s.oursThreads ?? 1}${s.quick ? ' (QUICK: not for quoting)' : ''}`).join('; ')}.`, '');
    const rows: string[][] = [];
    const groups: Group[] = [];
    for (const s of steps) {
      for (const r of s.rows) {
        const th = r.pytorch?.threads ?? (s === stepFiles[1] ? 1 : 2);
        const oursTh = s.oursThreads ?? 1;
        rows.push([r.benchmark, String(oursTh), `${num(r.ours.median)} [${num(r.ours.min)} - ${num(r.ours.max)}]`, r.pytorch ? `${num(r.pytorch.median)} [${num(r.pytorch.min)} - ${num(r.pytorch.max)}]` : (r.pytorchError ?? 'not installed'),
          String(th), ratio(r.speedup), bytes(r.ours.peakBytes), r.pytorch?.peakRssBytes === undefined ? '-' : bytes(r.pytorch.peakRssBytes), r.memoryFlat === false ? 'NOT FLAT' : 'flat',
          `node dist/bench/maml-steps.js --threads ${th}${oursTh > 1 ? ` --ours-threads ${oursTh}` : ''}`]);
        if (th === 1 || steps.length === 1) groups.push({ label: r.benchmark.replace(/, Conv4.*$/, '').slice(0, 46), bars: [{ series: `ours-wasm (${oursTh} thread${oursTh === 1 ? '' : 's'})`, value: r.ours.median }, { series: `pytorch (${th} thread${th === 1 ? '' : 's'})`, value: r.pytorch?.median ?? null, note: r.pytorchError ?? 'not installed' }] });
      }
    }
    out.push(table(['step', 'ours threads', 'ours ms [min - max]', 'PyTorch ms [min - max]', 'PyTorch threads', 'ours faster by', 'ours peak', 'PyTorch peak RSS growth', 'our memory', 'command'], rows), '');
    if (groups.length) {
      writeAtomic(path.join(RESULTS, 'steps.svg'), barChart('ms per whole step (lower is better)', 'ms', groups, true));
      out.push('![ms per step](results/steps.svg)', '');
    }
  }
  if (kernels) {
    const c = kernels.rows.filter((r: any) => r.benchmark.startsWith('conv4 fwd+bwd'));
    if (c.length) out.push(`Conv4 training step (batch 80, fwd+bwd) is in the kernel table above: ${c.map((r: any) => `${r.implementation} ${r.error ? `cannot run (${r.error})` : `${num(r.median)} ms`}`).join('; ')}.`, '');
  }
  // Where we are slower, listed from the numbers above.
  const slower = [
    ...(kernels?.rows ?? []).filter((r: any) => r.oursSpeedup !== null && r.oursSpeedup < 1).map((r: any) => `${r.benchmark} vs ${r.implementation} (${ratio(r.oursSpeedup)})`),
    ...steps.flatMap((s) => s.rows).filter((r: any) => r.speedup !== null && r.speedup < 1).map((r: any) => `${r.benchmark} vs PyTorch on ${r.pytorch.threads} thread(s) (${ratio(r.speedup)})`),
  ];
  out.push('## Where we are slower', '');
  out.push(slower.length ? slower.map((s) => `- ${s}`).join('\n') : 'Nowhere in this run.', '');
  out.push('', 'Threads are in each row. Our WASM backend runs on one thread unless `init({ threads: n })` asks for more (Node, opt-in; `kernels/wasm/THREADING.md`); the kernel table is single-threaded for every engine. The Omniglot MAML step is a per-task loop of convolutions over 5 support and 75 query images; its calls are split across threads, but the small ones gain little from a second thread (`kernels/wasm/THREADING.md`); what would close its gap: batching a meta-batch\'s tasks into single convolution calls (as the sine step does with `vectorized`), so that threads get larger calls, and cheaper small kernels.', '');
  writeAtomic(path.join(ROOT, 'bench/REPORT.md'), out.join('\n'));
  console.log('wrote bench/REPORT.md');
}

main();
