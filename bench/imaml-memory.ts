// Peak memory of one meta-gradient against the number of inner steps, for iMAML (implicit: the inner
// loop is never differentiated, so memory should not grow with it) and second-order MAML (unrolled:
// its graph holds every step). The analogue of Rajeswaran et al. 2019, Figure 2(a): Omniglot-shaped
// 20-way 5-shot tasks (100 support and 100 query images of 28x28; values do not change memory) on
// MAML's stride-2 Conv4, float32, WASM, one task. Peak = the high-water mark of live tensor bytes
// above what was live before (`peakMemory()`), which is what decides whether a run fits.
// Run: npm run build && node dist/bench/imaml-memory.js [--steps 1,4,16,64]
// Writes bench/results/imaml-memory.json and bench/results/imaml-memory.svg.

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAML, MAML, classificationLoss, Task } from '../algorithms/index.js';
import { Random, init, memory, nn, peakMemory, resetPeakMemory, tidy, valueAndGrad, keep, oneHot } from '../index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const stepsArg = process.argv.indexOf('--steps');
const STEPS = (stepsArg > 0 ? process.argv[stepsArg + 1] : '1,4,16,64').split(',').map(Number);
const WAYS = 20, SHOTS = 5, QUERIES = 5;

await init({ backend: 'wasm' });
const rng = new Random(0);
const labels = (n: number) => oneHot(Array.from({ length: WAYS * n }, (_, i) => i % WAYS), WAYS);
const task: Task = keep({
  xs: rng.uniform([WAYS * SHOTS, 1, 28, 28]), ys: labels(SHOTS),
  xq: rng.uniform([WAYS * QUERIES, 1, 28, 28]), yq: labels(QUERIES),
});
const params = () => nn.initConv4(new Random(1), { ways: WAYS, downsample: 'stride' });
const model = (p: nn.Params, x: any) => nn.conv4(p, x, { downsample: 'stride' });

/** Peak live bytes above the start while fn runs, and its seconds; checks nothing is left behind. */
function measure(fn: () => unknown): { peakMiB: number; seconds: number } {
  const before = memory();
  resetPeakMemory();
  const t0 = performance.now();
  tidy(() => { fn(); });
  const seconds = (performance.now() - t0) / 1000;
  const after = memory();
  if (after.bytes !== before.bytes) throw new Error(`left ${after.bytes - before.bytes} bytes behind`);
  return { peakMiB: (peakMemory() - before.bytes) / 2 ** 20, seconds };
}

type Measured = { peakMiB: number; seconds: number };
const rows: { innerSteps: number; imaml: Measured; maml: Measured | { error: string } }[] = [];
for (const innerSteps of STEPS) {
  const common = { model, loss: classificationLoss, params: params(), innerSteps, innerLr: 0.1 };
  const i = new IMAML({ ...common, cgSteps: 5 });
  const imaml = measure(() => i.metaGradient(i.params, task));
  i.dispose();
  const m = new MAML({ ...common, params: params() });
  // Past WebAssembly's 4 GiB the unrolled graph does not fit: recorded as such.
  let maml: { peakMiB: number; seconds: number } | { error: string };
  try {
    maml = measure(() => valueAndGrad((meta: any) => m.metaLoss(meta, [task]))(m.meta));
  } catch (e) {
    maml = { error: (e as Error).message };
  }
  m.dispose();
  rows.push({ innerSteps, imaml, maml });
  console.log(`${innerSteps} inner steps: iMAML ${imaml.peakMiB.toFixed(1)} MiB (${imaml.seconds.toFixed(1)} s), MAML ${'error' in maml ? `failed: ${maml.error}` : `${maml.peakMiB.toFixed(1)} MiB (${maml.seconds.toFixed(1)} s)`}`);
}

writeFileSync(join(root, 'bench/results/imaml-memory.json'), JSON.stringify({
  setup: `one meta-gradient, ${WAYS}-way ${SHOTS}-shot, ${QUERIES} queries per class, stride-2 Conv4 (64 filters), float32, WASM; iMAML: 5 CG steps, gd inner solver; MAML: second order`,
  rows,
}, null, 2) + '\n');
writeFileSync(join(root, 'bench/results/imaml-memory.svg'), chart(rows));
console.log('wrote bench/results/imaml-memory.json and imaml-memory.svg');

/** Peak MiB against inner steps (log scale), one line per learner. */
function chart(data: typeof rows): string {
  const W = 560, H = 320, L = 64, R = 150, T = 30, B = 44;
  const mib = (m: Measured | { error: string }) => ('error' in m ? null : m.peakMiB);
  const xs = data.map((r) => Math.log2(r.innerSteps)), yMax = Math.max(...data.flatMap((r) => [mib(r.maml) ?? 0, r.imaml.peakMiB])) * 1.1;
  const sx = (x: number) => L + ((x - xs[0]) / (xs[xs.length - 1] - xs[0] || 1)) * (W - L - R), sy = (y: number) => H - B - (y / yMax) * (H - T - B);
  const tick = Math.pow(10, Math.floor(Math.log10(yMax / 2)));
  const p = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/><text x="${L}" y="18" font-size="13">Peak memory of one meta-gradient (${WAYS}-way ${SHOTS}-shot, stride-2 Conv4)</text>`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`];
  for (let y = 0; y <= yMax; y += tick * Math.ceil(yMax / tick / 6)) p.push(`<line x1="${L}" y1="${sy(y)}" x2="${W - R}" y2="${sy(y)}" stroke="#eee"/><text x="${L - 6}" y="${sy(y) + 4}" text-anchor="end">${y} MiB</text>`);
  data.forEach((r, k) => p.push(`<text x="${sx(xs[k])}" y="${H - B + 16}" text-anchor="middle">${r.innerSteps}</text>`));
  p.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">inner steps</text>`);
  const lines: [string, string, (r: typeof rows[0]) => number | null][] = [
    ['MAML (second order)', '#cf222e', (r) => mib(r.maml)], ['iMAML (5 CG steps)', '#1f6feb', (r) => r.imaml.peakMiB]];
  lines.forEach(([name, c, y], i) => {
    const pts = data.map((r, k) => [xs[k], y(r)] as const).filter((q): q is readonly [number, number] => q[1] !== null);
    p.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([x, v]) => `${sx(x).toFixed(1)},${sy(v).toFixed(1)}`).join(' ')}"/>`);
    pts.forEach(([x, v]) => p.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="3" fill="${c}"/>`));
    p.push(`<rect x="${W - R + 10}" y="${T + i * 18}" width="10" height="10" fill="${c}"/><text x="${W - R + 24}" y="${T + i * 18 + 9}">${name}</text>`);
  });
  const missing = data.filter((r) => mib(r.maml) === null).map((r) => r.innerSteps);
  if (missing.length) p.push(`<text x="${W - R + 10}" y="${T + 54}" fill="#cf222e">MAML at ${missing.join(', ')} steps:</text><text x="${W - R + 10}" y="${T + 68}" fill="#cf222e">over WebAssembly's 4 GiB</text>`);
  p.push('</svg>\n');
  return p.join('');
}
