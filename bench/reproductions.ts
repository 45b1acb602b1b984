// Writes bench/REPRODUCTIONS.md from the reports of the reproduction runs: bench/results/omniglot/*.json
// (written by bench/omniglot-repro.sh, one CLI run each) and bench/results/memory/*.json (the memory
// learners, bench/memory-repro.sh). Each row's command is read from the script's RUNS table; the published figures are
// quoted from the issues. Run: npm run build && node dist/bench/reproductions.js

import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OMNI = path.join(ROOT, 'bench/results/omniglot');

// Published accuracies (%): MAML, ProtoNet, Matching, Relation and Siamese as quoted in issues #4 and
// #5; first-order MAML from Finn et al. 2017 (Table 1), Reptile from Nichol et al. 2018 (Table 1,
// transductive), Meta-SGD from Li et al. 2017 (Table 1). algorithm -> "ways-shots" -> figure.
const PUBLISHED: Record<string, Record<string, string>> = {
  maml: { '5-1': '98.7 (Finn et al.)', '5-5': '99.9', '20-1': '95.8' },
  fomaml: { '5-1': '98.3 (Finn et al.)', '5-5': '99.2', '20-1': '89.4' },
  reptile: { '5-1': '97.68 (Nichol et al.)', '5-5': '99.48', '20-1': '89.43' },
  metasgd: { '5-1': '99.53 (Li et al.)', '5-5': '99.93', '20-1': '95.93' },
  protonet: { '5-1': '98.8 (Snell et al.)', '5-5': '99.7', '20-1': '96.0', '20-5': '98.9' },
  matching: { '5-1': '98.1 (Vinyals et al.)', '5-5': '98.9', '20-1': '93.8', '20-5': '98.5' },
  relation: { '5-1': '99.6 (Sung et al.)', '5-5': '99.8', '20-1': '97.6', '20-5': '99.1' },
  siamese: { '20-1': '~92 on Lake\'s runs (Koch et al.)' },
  // Rajeswaran et al. 2019, Table 2: gradient-descent inner solver (Hessian-free: 99.50 / 96.18).
  imaml: { '5-1': '99.16 (Rajeswaran et al., GD)', '20-1': '94.46' },
};

/** What a run's row must say beside its figure (why it is where it is), by run name. */
const RUN_NOTES: Record<string, string> = {
  'imaml-5w1s': 'diverged: the smoothed query loss rose from 1.18 (step 200) to 2.32, held-out 54.8 % at 100 steps, 37.4 % at 500; with an inner step of 0.1 and Adam 1e-3 this run is not a usable configuration',
  'imaml-5w1s-ref-lr': 'the reference code\'s step sizes; still improving when stopped (held-out 60.2, 67.1, 76.3 % at 100, 200, 300 steps, where maml-5w1s had 80.7, 84.8, 86.9); below MAML at this budget, far below the published figure, reached with far longer training',
};

/** name -> arguments, from bench/omniglot-repro.sh's RUNS entries ("name|arguments"). */
function commands(file = 'bench/omniglot-repro.sh'): Record<string, string> {
  const script = readFileSync(path.join(ROOT, file), 'utf8');
  const out: Record<string, string> = {};
  for (const m of script.matchAll(/^\s*"([\w.-]+)\|([^"]*)"/gm)) out[m[1]] = m[2];
  return out;
}

const pct = (s: { mean: number; ci95: number } | undefined) => (s ? `${(100 * s.mean).toFixed(2)} ± ${(100 * s.ci95).toFixed(2)}` : '-');
const minutes = (s: number) => `${(s / 60).toFixed(0)} min`;

/** A learning curve: (iteration, value) points of one run. */
type Curve = { name: string; points: [number, number][] };

function curveSvg(runs: Curve[], title = 'Held-out accuracy (100 validation tasks) during meta-training', xLabel = 'meta-training iteration', unit = '%'): string {
  const W = 720, H = 360, L = 56, R = 170, T = 30, B = 40;
  const xs = runs.flatMap((r) => r.points.map((p) => p[0])), ys = runs.flatMap((r) => r.points.map((p) => p[1]));
  const xMax = Math.max(...xs), yMin = Math.floor(Math.min(...ys) / 10) * 10, yMax = 100;
  const sx = (x: number) => L + (x / xMax) * (W - L - R), sy = (y: number) => H - B - ((y - yMin) / (yMax - yMin)) * (H - T - B);
  const colors = ['#1f6feb', '#cf222e', '#2da44e', '#d29922', '#8250df', '#6e7781', '#bf3989', '#0a7b83', '#e16f24', '#116329', '#54aeff', '#953800'];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/><text x="${L}" y="18" font-size="13">${title}</text>`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`];
  for (let y = yMin; y <= yMax; y += 10) parts.push(`<line x1="${L}" y1="${sy(y)}" x2="${W - R}" y2="${sy(y)}" stroke="#eee"/><text x="${L - 6}" y="${sy(y) + 4}" text-anchor="end">${y}${unit}</text>`);
  const step = Math.pow(10, Math.floor(Math.log10(xMax))) / (xMax / Math.pow(10, Math.floor(Math.log10(xMax))) < 3 ? 2 : 1);
  for (let x = 0; x <= xMax; x += step) parts.push(`<text x="${sx(x)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${xLabel}</text>`);
  runs.forEach((r, i) => {
    const c = colors[i % colors.length];
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${r.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<rect x="${W - R + 10}" y="${T + i * 18}" width="10" height="10" fill="${c}"/><text x="${W - R + 24}" y="${T + i * 18 + 9}">${r.name}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('');
}

/** The reports (NAME.json) in a folder, by run name, so that a run comes before its variants (NAME-...). */
const runNames = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort() : [];

/** The class split of a run (older reports lack it in their config: read it from the command). */
const split = (name: string, c: any): string => c.split ?? /--split (\w+)/.exec(commands()[name] ?? '')?.[1] ?? 'vinyals';

function main() {
  const cmds = commands();
  const rows: string[][] = [];
  // Two charts: the gradient-based learners' few hundred iterations would vanish beside the metric learners' thousands.
  const curves: Curve[] = [], metricCurves: Curve[] = [];
  const siamesePairs = new Set<number>();
  for (const name of runNames(OMNI)) {
    const r = JSON.parse(readFileSync(path.join(OMNI, `${name}.json`), 'utf8'));
    const c = r.config;
    const evalKey = Object.keys(r).find((k) => k === 'eval' || k.startsWith('eval_'));
    const ev = evalKey ? r[evalKey] : undefined;
    const trainWays = c.trainWays && c.trainWays !== c.ways ? `, trained ${c.trainWays}-way` : '';
    const gradientBased = ['maml', 'fomaml', 'metasgd', 'lslr', 'mamlpp', 'anil', 'reptile', 'imaml'].includes(c.algorithm);
    const imaml = c.algorithm === 'imaml' ? `, λ ${c.lam}, ${c.cgSteps} CG steps, ${c.innerSolver} inner solver, Adam ${c.metaLr}` : '';
    const budget = c.algorithm === 'siamese' ? `${c.iterations} batches of ${c.pairs ?? '?'} pairs`
      : gradientBased ? `${c.iterations} x ${c.metaBatch} tasks, inner lr ${c.innerLr} x ${c.innerSteps} step(s)${c.innerBatch ? ` of ${c.innerBatch} examples` : ''}, ${c.testSteps} at test${imaml}`
        : `${c.iterations} episodes`;
    const schedule = c.metaLrHalveEvery ? `, Adam step ${c.metaLr} halved every ${c.metaLrHalveEvery}` : '';
    // Reports from before Reptile trained on support and query together (commit fd5f044), and
    // Matching reports from before the learned scale on the cosines.
    const note = RUN_NOTES[name] ? `; ${RUN_NOTES[name]}` : c.algorithm === 'reptile' && !c.reptileInnerData ? '; inner loop on the support set only (older code)'
      : c.algorithm === 'matching' ? (c.cosineScale ? `; learned scale on the cosines, from ${c.cosineScale}` : '; plain cosines, no scale (older code)') : '';
    const lake = r.lake_runs ? `; Lake's 20 runs: ${pct(r.lake_runs.trials ?? r.lake_runs.accuracy)}` : '';
    // A report from before its command gained --test-ways ran without it: show what it ran.
    const args = (cmds[name] ?? '(not in bench/omniglot-repro.sh)').replace(/\$DATA/g, '../shared/data/omniglot').replace(c.testWays ? /^$/ : / --test-ways [\d,]+/, '');
    const command = `\`node dist/cli/main.js --dataset omniglot --data ../shared/data/omniglot ${args}\``;
    // One row per test setting: the run's own --ways, then any --test-ways scores of the same model.
    const settings: [number, any, string][] = [[c.ways, ev, lake + note], ...(c.testWays ?? []).map((w: number) => [w, r[`eval_${w}_ways`], ''] as [number, any, string])];
    for (const [ways, e, extra] of settings) {
      const pub = PUBLISHED[c.algorithm]?.[`${ways}-${c.shots}`] ?? '-';
      const sameModel = ways !== c.ways ? ` (the model of the row above, trained ${c.trainWays ?? c.ways}-way)` : trainWays;
      rows.push([ways !== c.ways ? `${name} @ ${ways}-way` : name, `${c.algorithm}${c.fce ? ' (FCE)' : ''}`, `${ways}-way ${c.shots}-shot${sameModel}, ${c.queries} ${c.queries === 1 ? 'query' : 'queries'}${split(name, c) !== 'vinyals' ? `, ${split(name, c)} split` : ''}`,
        ways !== c.ways ? 'same' : budget + schedule, ways !== c.ways ? 'same' : minutes(r.trainSeconds), `${pct(e?.accuracy)} (n=${e?.accuracy?.n ?? '-'})${extra}`, pub, command]);
    }
    const pts = (r.curve ?? []).filter((p: any) => p.heldOut).map((p: any) => [p.iteration, 100 * p.heldOut.mean] as [number, number]);
    if (pts.length > 1) (gradientBased ? curves : metricCurves).push({ name, points: pts });
    if (pts.length > 1 && c.algorithm === 'siamese') siamesePairs.add(c.pairs);
  }
  const out: string[] = ['# Reproductions', '',
    'Meta-learning results reached on this 2-core machine (WASM, single-threaded unless the command says `--threads`; results are bit-identical on any thread count), each from one command, at the budget it could afford. Generated by `node dist/bench/reproductions.js` from the reports in `bench/results/omniglot/` (config, training time, learning curve, final evaluation); `bash bench/omniglot-repro.sh [NAME ...]` reruns them. The published figures are the papers\' (sources in `bench/reproductions.ts`), reached with far larger budgets; ours are what the budget here bought, not a claim of parity. Accuracy is mean ± 95% CI over the test tasks (Vinyals test classes unless the row says otherwise); training time excludes the held-out evaluations of the learning curve. Runs shared the machine with other jobs, so times are upper bounds.', '',
    '## Omniglot', '',
    `| run | algorithm | task | budget | training time | test accuracy % | published % | command |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`), ''];
  if (curves.length) {
    writeAtomic(path.join(OMNI, 'curves.svg'), curveSvg(curves));
    out.push('![learning curves](results/omniglot/curves.svg)', '');
  }
  if (metricCurves.length) {
    writeAtomic(path.join(OMNI, 'metric-curves.svg'), curveSvg(metricCurves, 'Metric learners and Siamese: held-out accuracy (100 tasks) during training', `training episode${siamesePairs.size ? ` (Siamese: step of ${[...siamesePairs].join(' or ')} pairs)` : ''}`));
    out.push('![metric learners\' learning curves](results/omniglot/metric-curves.svg)', '');
  }
  out.push(...memorySection());
  writeAtomic(path.join(ROOT, 'bench/REPRODUCTIONS.md'), out.join('\n'));
  console.log(`wrote bench/REPRODUCTIONS.md (${rows.length} Omniglot runs)`);
}

/** NTM copy task and MANN runs: bench/results/memory/*.json from bench/memory-repro.sh. */
function memorySection(): string[] {
  const dir = path.join(ROOT, 'bench/results/memory');
  if (!existsSync(dir)) return [];
  const cmds = commands('bench/memory-repro.sh');
  const ntm: string[][] = [], mann: string[][] = [];
  const mannCurves: Curve[] = [], ntmCurves: Curve[] = [];
  for (const name of runNames(dir)) {
    const r = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8'));
    const c = { ...r.config, batch: r.config.batch ?? r.config.metaBatch };   // --batch became --meta-batch
    const cmd = `\`node dist/cli/main.js ${(cmds[name] ?? '?').replace(/\$DATA/g, '../shared/data/omniglot')}\``;
    const steps = (c.startIteration ?? 0) + r.trainIterations;
    if (c.algorithm === 'ntm') {
      const bits = (l: any, len: number) => `${l.costBits.toFixed(l.costBits < 1 ? 2 : 1)} (${l.wrongBits.toFixed(1)} of ${len * c.width} bits wrong)`;
      ntmCurves.push({ name, points: r.curve.filter((p: any) => p.length10).map((p: any) => [p.iteration, p.length10.costBits] as [number, number]) });
      ntm.push([name, `${steps} steps x ${c.batch} sequences${c.startIteration ? ` (continues from step ${c.startIteration})` : ''}`, minutes(r.trainSeconds), bits(r.final.length10, 10), bits(r.final.length20, 20), cmd]);
    } else if (c.algorithm === 'mann') {
      const a = r.testAccuracyByInstance;
      const options = `${c.writeKey ? 'key written' : 'add vector'}, key strength ${c.keyStrength === false ? 'none' : `from ${+c.keyStrength.toFixed(2)}`}`;
      // The first held-out point where the 2nd sighting beats the 1st by 5 points: the model has begun to bind labels.
      const binds = r.curve.find((p: any) => p.valAccuracyByInstance && p.valAccuracyByInstance[1] > p.valAccuracyByInstance[0] + 0.05);
      const at = (k: number, label: string) => ({ name: `${name}: ${label}`, points: r.curve.filter((p: any) => p.valAccuracyByInstance).map((p: any) => [p.iteration, 100 * p.valAccuracyByInstance[k]] as [number, number]) });
      mannCurves.push(...(name === 'mann-omniglot' ? [at(0, '1st'), at(1, '2nd'), at(9, '10th')] : [at(1, '2nd')]));
      mann.push([name, options, `${r.trainIterations} steps x ${c.batch} (${(r.trainIterations * c.batch / 1000).toFixed(0)}k episodes)`, minutes(r.trainSeconds),
        binds ? `step ${binds.iteration}` : `not in ${r.trainIterations} steps`, ...[0, 1, 4, 9].map((i) => pct(a[i])), `${a[0].n}`, cmd]);
    }
  }
  const out = ['## Memory-based learners', ''];
  if (ntm.length) {
    out.push('NTM on the copy task (8-bit vectors, lengths 1-20; LSTM controller 100, memory 128 x 20, Adam 1e-3, element-wise clipping at 10). Held-out cost in bits per sequence on 64 fixed sequences (guessing costs about 8 bits per vector: 80 at length 10, 160 at length 20); Graves et al. report a cost near zero; the curves below are of the cost at length 10.', '',
      '| run | training | time | length 10: cost bits | length 20: cost bits | command |', '| --- | --- | --- | --- | --- | --- |', ...ntm.map((r) => `| ${r.join(' | ')} |`), '');
    writeAtomic(path.join(dir, 'ntm-curves.svg'), curveSvg(ntmCurves, 'NTM copy task: held-out cost at length 10 (bits per sequence) during training', 'training step (16 sequences each)', ''));
    out.push('![NTM learning curves](results/memory/ntm-curves.svg)', '');
    const pic = readdirSync(dir).filter((x) => x.endsWith('-copy-20.svg')).sort().pop();
    if (pic) out.push(`A copied sequence of length 20 (target, output, write and read weightings over time), from \`${pic.replace('-copy-20.svg', '')}\`:`, '', `![NTM copy](results/memory/${pic})`, '');
  }
  if (mann.length) {
    out.push('MANN with least-recently-used access on Omniglot label-delay episodes (5 classes x 10 instances, 20 x 20 images, Vinyals classes; Adam 1e-3, element-wise clipping at 10), accuracy % by instance number over the test episodes, mean ± 95% CI. Santoro et al. (100,000 episodes): 36.4 / 82.8 / 94.9 % at the 1st / 2nd / 10th instance. Training first sits on a plateau where the model only learns to give an image it has not seen a label not yet used (1st sighting above the 20 % chance, later ones barely); "binds from" is the first validation point (160 episodes) where the 2nd sighting beats the 1st by 5 points.', '',
      '| run | options | training | time | binds from | 1st | 2nd | 5th | 10th | test episodes | command |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...mann.map((r) => `| ${r.join(' | ')} |`), '');
    if (mannCurves.length) {
      writeAtomic(path.join(dir, 'mann-curves.svg'), curveSvg(mannCurves, 'MANN: validation accuracy by sighting (160 episodes) during training', 'training step (16 episodes each)'));
      out.push('![MANN learning curves](results/memory/mann-curves.svg)', '');
    }
  }
  return out;
}

function writeAtomic(file: string, text: string) {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

main();
