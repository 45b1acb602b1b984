// `npm run bench`: the whole suite in one command, one process per stage so that no engine's memory
// or threads leak into another's timings:
//   1. kernels and Conv4, ours beside TensorFlow.js (bench/run.ts): our WASM backend -> results/latest.json,
//      our WebGPU backend -> results/latest-webgpu.json (without a GPU, on SwiftShader: quick timing,
//      marked as emulation)
//   2. correctness of the second-order meta-gradient, every engine (bench/correctness.ts)
//   3. whole meta-learning steps beside PyTorch, both engines on 1 and then on 2 threads (bench/maml-steps.ts)
//   4. the report (bench/report.ts -> bench/REPORT.md and SVG charts)
// Options: --filter <substring> (stages 1 and 3), --quick, --tiny (stage 1), --backend (stage 1: only this one),
// --skip-steps, --skip-kernels. Each stage's own script can also be run alone (see bench/README.md).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const value = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined; };
const known = new Set(['--filter', '--quick', '--tiny', '--backend', '--skip-steps', '--skip-kernels', '--help', '-h']);
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) { console.error(`unknown option '${argv[i]}' (try --help)`); process.exit(2); }
  if (argv[i] === '--filter' || argv[i] === '--backend') i++;
}
if (flag('--help') || flag('-h')) {
  console.log('npm run bench -- [--filter <substring>] [--quick] [--tiny] [--backend wasm|webgpu|ref] [--skip-kernels] [--skip-steps]');
  process.exit(0);
}

// WebGPU rows need a Vulkan driver on GPU-less machines: SwiftShader from Debian's chromium.
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
const env = { ...process.env };
if (!env.VK_ICD_FILENAMES && existsSync(swiftshader)) env.VK_ICD_FILENAMES = swiftshader;
env.XDG_RUNTIME_DIR ??= '/tmp';

const failures: string[] = [];
function stage(title: string, script: string, args: string[], nodeFlags: string[] = []) {
  console.log(`\n=== ${title}: node ${[...nodeFlags, `dist/bench/${script}`, ...args].join(' ')}\n`);
  const r = spawnSync(process.execPath, [...nodeFlags, path.join(here, script), ...args], { stdio: 'inherit', env });
  if (r.status !== 0) failures.push(`${title} (exit ${r.status ?? r.signal})`);
}

const filter = value('--filter');
const common = [...(filter ? ['--filter', filter] : []), ...(flag('--quick') ? ['--quick'] : [])];
if (!flag('--skip-kernels')) {
  const tiny = flag('--tiny') ? ['--tiny'] : [];
  const backends = value('--backend') ? [value('--backend')!] : ['wasm', 'webgpu'];
  for (const b of backends) {
    // The WASM table is the main one (results/latest.json); another backend writes its own file.
    const out = b === 'wasm' ? [] : ['--out', path.join(here, '../../bench/results', `latest-${b}.json`)];
    stage(`kernels and Conv4 on our ${b} backend beside TensorFlow.js`, 'run.js', [...common, ...tiny, '--backend', b, ...out], ['--expose-gc']);
  }
}
stage('correctness of the second-order meta-gradient', 'correctness.js', []);
if (!flag('--skip-steps') && !flag('--tiny')) {
  // Both engines get the same number of threads: ours through the opt-in threaded WASM backend.
  for (const threads of ['1', '2']) stage(`whole steps beside PyTorch (${threads} thread${threads === '1' ? '' : 's'} each)`, 'maml-steps.js', [...common, '--threads', threads, '--ours-threads', threads], ['--expose-gc']);
}
stage('report', 'report.js', []);
if (failures.length) {
  console.error(`\nfailed stages: ${failures.join('; ')}`);
  process.exitCode = 1;
}
