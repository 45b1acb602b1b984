// The command line (dist/cli/main.js, built by `npm install`): what it writes, the errors it gives for
// bad flags (before any training), and runs stopped by SIGINT / SIGTERM and resumed, which must end
// exactly where an uninterrupted run does. Short budgets: these check the plumbing, not the learning.

import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, isTransposedInFile } from '../engine/checkpoint.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'dist/cli/main.js');
const OMNIGLOT = new URL('../../shared/data/omniglot', import.meta.url).pathname;
const MNIST = new URL('../../shared/data/mnist', import.meta.url).pathname;

// The CLI caches decoded Omniglot under $XDG_CACHE_HOME/metagrad: point that at the cache the dataset
// tests fill, so a fresh machine decodes the zips once.
const home = mkdtempSync(join(tmpdir(), 'metagrad-cli-home-'));
const sharedCache = join(tmpdir(), 'metagrad-test-cache');
mkdirSync(sharedCache, { recursive: true });
mkdirSync(join(home, '.cache'));
symlinkSync(sharedCache, join(home, '.cache', 'metagrad'));
const env = { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 170_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI and sends `signal` once stderr shows `when`; resolves with the exit code and output. */
function interrupt(args: string[], when: RegExp, signal: NodeJS.Signals): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = '', stderr = '', sent = false;
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && when.test(stderr)) { sent = true; p.kill(signal); }
    });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `metagrad-cli-${name}-`));
const report = (out: string) => JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
const checkpointBytes = (out: string) => readFileSync(join(out, 'checkpoint.safetensors'));
/** The checkpoint's tensors (raw bytes by name) and metadata, read without the engine. */
function checkpoint(out: string) {
  const { tensors, metadata } = decodeSafetensors(checkpointBytes(out), 'checkpoint');
  const meta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, JSON.parse(v)]));
  return { tensors: Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { ...t, data: Array.from(t.data) }])), meta };
}
/** What must be equal between an interrupted-and-resumed run and an uninterrupted one. */
const outcome = (out: string) => {
  const r = report(out), c = checkpoint(out);
  const { curve, trainSeconds, config, ...evals } = r;
  return {
    evals, tensors: c.tensors, learner: c.meta.learner, streams: c.meta.streams,
    curve: curve.map(({ seconds, ...p }: any) => p),
    config: { ...config, threads: undefined },
  };
};

describe('CLI', () => {
  it('is built', () => expect(existsSync(CLI), `${CLI} missing: run npm run build`).toBe(true));

  it('sine MAML: trains, evaluates before and after adaptation, writes a safetensors checkpoint, report and plot', () => {
    const out = tmp('sine');
    const r = cli('--iterations', '40', '--eval-tasks', '20', '--eval-every', '20', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pre-adaptation: MSE/);
    expect(r.stdout).toMatch(/after 10 steps: MSE/);
    const rep = report(out);
    expect(rep.config).toMatchObject({ algorithm: 'maml', dataset: 'sine', iterations: 40 });
    for (const k of ['eval_0_steps', 'eval_1_steps', 'eval_10_steps']) expect(rep[k].loss.n).toBe(20);
    // Adaptation helps even after 40 meta-steps: 10 steps on the K points beat none.
    expect(rep.eval_10_steps.loss.mean).toBeLessThan(rep.eval_0_steps.loss.mean);
    expect(rep.curve.filter((p: any) => p.heldOut).map((p: any) => p.iteration)).toEqual([20, 40]);
    const c = checkpoint(out);
    expect(c.meta).toMatchObject({ format: 'metagrad-run-1', iteration: 40, learner: { iteration: 40, optimizerStep: 40 } });
    // The sine MLP's 6 parameters and their Adam slots, named by path; linear weights stored [out, in].
    const params = Object.keys(c.tensors).filter((n) => n.startsWith('params.')).sort();
    expect(params).toEqual(['params.l1.b', 'params.l1.w', 'params.l2.b', 'params.l2.w', 'params.l3.b', 'params.l3.w']);
    expect(c.tensors['params.l1.w'].shape).toEqual([40, 1]);
    expect(c.tensors['optimizer.m.params.l2.w'].shape).toEqual([40, 40]);
    expect(readFileSync(join(out, 'adaptation.svg'), 'utf8')).toMatch(/^<svg[^]*ground truth[^]*<\/svg>\s*$/);
  }, 120_000);

  it('reptile with --inner-batch records it; --threads 2 gives the same numbers as 1 thread (sine, and Conv4 on Omniglot)', () => {
    const run = (threads: string) => {
      const out = tmp('reptile');
      const r = cli('--algorithm', 'reptile', '--iterations', '20', '--inner-steps', '3', '--inner-batch', '4', '--eval-tasks', '10', '--threads', threads, '--out', out, '--force');
      expect(r.status, r.stderr).toBe(0);
      return report(out);
    };
    const one = run('1'), two = run('2');
    expect(one.config).toMatchObject({ algorithm: 'reptile', innerBatch: 4, reptileInnerData: 'support+query' });
    expect(two.eval_10_steps).toEqual(one.eval_10_steps);
    expect(two.curve.map((p: any) => p.loss)).toEqual(one.curve.map((p: any) => p.loss));
    // The sine MLP's kernels are too small to be split: Conv4 on Omniglot episodes does split them.
    const proto = (threads: string) => {
      const out = tmp('proto-threads');
      const r = cli('--dataset', 'omniglot', '--data', OMNIGLOT, '--algorithm', 'protonet', '--ways', '5', '--train-ways', '10',
        '--queries', '2', '--iterations', '3', '--eval-tasks', '4', '--threads', threads, '--out', out, '--force');
      expect(r.status, r.stderr).toBe(0);
      return report(out);
    };
    const p1 = proto('1'), p2 = proto('2');
    expect(p2.eval).toEqual(p1.eval);
    expect(p2.curve.map((p: any) => p.loss)).toEqual(p1.curve.map((p: any) => p.loss));
  }, 180_000);

  it('refuses bad flags and combinations before any work: exit 2, one line naming the fault, the usage, no stack trace', () => {
    const empty = tmp('empty');
    const file = join(tmp('file'), 'not-a-folder');
    writeFileSync(file, '');
    const out = () => join(tmp('never'), 'out');
    const bad: [string[], RegExp][] = [
      [['--algorithm', 'nope'], /unknown --algorithm 'nope' \(one of maml, fomaml/],
      [['--iterations', 'many'], /--iterations must be a number, got 'many'/],
      [['--iterations', '2.5'], /--iterations must be a whole number, got '2.5'/],
      [['--iterations=-5'], /--iterations must be >= 0, got -5/],
      [['--iterations', '-5'], /--iterations must be >= 0, got -5/],
      [['--iterations', '0'], /--iterations 0 trains nothing: give --init-from FILE/],
      [['--shots', '0'], /--shots must be >= 1, got 0/],
      [['--queries', '0'], /--queries must be >= 1, got 0/],
      [['--checkpoint-every', '0'], /--checkpoint-every must be >= 1, got 0/],
      [['--meta-lr', '0'], /--meta-lr must be > 0, got 0/],
      [['--inner-lr', 'NaN'], /--inner-lr must be a number, got 'NaN'/],
      [['--minutes', '-1'], /--minutes must be > 0, got -1/],
      [['--ways', '1', '--dataset', 'omniglot', '--data', OMNIGLOT], /--ways must be >= 2, got 1/],
      [['--threads', '0'], /--threads must be >= 1, got 0/],
      [['--frobnicate'], /unknown flag --frobnicate/],
      [['--iteration', '5'], /unknown flag --iteration \(did you mean --iterations\?\)/],
      [['--seed'], /--seed needs a value/],
      [['--fce=yes', '--algorithm', 'matching'], /--fce takes no value/],
      [['stray'], /unexpected argument 'stray'/],
      [['--seed', '1', '--seed', '2'], /--seed is given twice/],
      [['--dataset', 'mnist'], /unknown --dataset 'mnist' \(one of sine, omniglot, permuted-mnist\)/],
      [['--backend', 'cuda'], /unknown --backend 'cuda'/],
      [['--split', 'random', '--dataset', 'omniglot'], /unknown --split 'random'/],
      [['--algorithm', 'maml', '--test-ways', '20', '--dataset', 'omniglot', '--data', OMNIGLOT], /--test-ways is for --algorithm protonet, matching, relation or siamese, not maml/],
      [['--algorithm', 'protonet', '--data', OMNIGLOT, '--test-ways', '1,x'], /--test-ways takes a comma-separated list of class counts >= 2, got '1,x'/],
      [['--dataset', 'omniglot'], /--dataset omniglot needs --data DIR/],
      [['--dataset', 'omniglot', '--data', empty], /--data .*: images_background\.zip not found/],
      [['--dataset', 'omniglot', '--data', join(empty, 'nope')], /--data .*nope: no such folder/],
      [['--inner-batch', '10'], /--inner-batch is for --algorithm reptile, not maml/],
      [['--algorithm', 'reptile', '--inner-batch', '0'], /--inner-batch must be >= 1, got 0/],
      [['--algorithm', 'protonet', '--cosine-scale', '5'], /--cosine-scale is for --algorithm matching, not protonet/],
      [['--algorithm', 'matching', '--cosine-scale=-1'], /--cosine-scale must be >= 0, got -1/],
      [['--algorithm', 'matching', '--data', OMNIGLOT, '--processing-steps', '2'], /--processing-steps needs --fce/],
      [['--distort'], /--distort is for --algorithm siamese, not maml/],
      [['--algorithm', 'reptile', '--meta-lr-halve-every', '100'], /--meta-lr-halve-every is not for --algorithm reptile/],
      [['--algorithm', 'protonet', '--meta-lr-halve-every', '0'], /--meta-lr-halve-every must be >= 1, got 0/],
      [['--threads', '2', '--backend', 'ref'], /--threads is for --backend wasm/],
      [['--algorithm', 'protonet'], /--dataset omniglot needs --data DIR/],
      [['--algorithm', 'protonet', '--dataset', 'sine'], /--algorithm protonet needs a classification dataset/],
      [['--ways', '5'], /--ways is for --dataset omniglot/],
      [['--lake-runs', join(empty, 'all_runs.zip')], /--lake-runs needs --dataset omniglot/],
      [['--algorithm', 'siamese', '--data', OMNIGLOT, '--lake-runs', join(empty, 'typo.zip')], /--lake-runs .*typo\.zip: no such file/],
      [['--algorithm', 'protonet', '--data', OMNIGLOT, '--lake-runs', join(OMNIGLOT, 'all_runs.zip')], /Lake's runs are 20-way, but this protonet model is trained 5-way/],
      [['--algorithm', 'siamese', '--data', OMNIGLOT, '--meta-batch', '4'], /--meta-batch is not for --algorithm siamese/],
      [['--algorithm', 'ntm', '--dataset', 'omniglot'], /not for --algorithm ntm/],
      [['--algorithm', 'ntm', '--shots', '2'], /--shots is not for --algorithm ntm/],
      [['--algorithm', 'mann'], /--dataset omniglot needs --data DIR/],
      [['--algorithm', 'mann', '--data', OMNIGLOT, '--key-strength', '0'], /--key-strength must be a positive number or 'off', got '0'/],
      [['--algorithm', 'ntm', '--init-from', join(empty, 'x.json')], /--init-from .*x\.json: no such file/],
      [['--cg-damping', '1'], /--cg-damping is for --algorithm imaml, not maml/],
      [['--algorithm', 'ewc'], /--algorithm ewc needs --data DIR/],
      [['--algorithm', 'ewc', '--data', MNIST, '--dropout', '1'], /--dropout must be below 1, got 1/],
      [['--algorithm', 'ewc', '--data', MNIST, '--tasks', '2', '--steps-per-task', '5', '--iterations', '11'], /--iterations 11 is more than the 2 tasks x 5 steps/],
      [['--dataset', 'permuted-mnist'], /--dataset permuted-mnist is for --algorithm ewc, not maml/],
      [['--algorithm', 'ravi-larochelle', '--dataset', 'sine'], /--algorithm ravi-larochelle needs --dataset omniglot/],
      [['--algorithm', 'ravi-larochelle', '--dataset', 'omniglot', '--data', OMNIGLOT, '--updates', '0'], /--updates must be >= 1, got 0/],
      [['--algorithm', 'l2l', '--optimizee-steps', '30', '--unroll', '20'], /--optimizee-steps 30 must be a whole multiple of --unroll 20/],
      [['--algorithm', 'l2l', '--iterations', '12'], /--iterations 12 must be a whole multiple of the 5 optimiser updates of a trajectory/],
      [['--algorithm', 'l2l', '--optimizee', 'mnist-mlp'], /--optimizee mnist-mlp needs --data DIR/],
      [['--algorithm', 'l2l', '--optimizee', 'mnist-mlp', '--data', empty], /--data .*: train-images-idx3-ubyte\(\.gz\) not found/],
      [['--algorithm', 'l2l', '--hidden', '40'], /--hidden is for --optimizee mnist-mlp/],
      [['--algorithm', 'l2l', '--split-lstm'], /--split-lstm is for --optimizee mnist-cnn/],
      [['--algorithm', 'l2l', '--images', 'fashion-mnist'], /--images is for --optimizee mnist-mlp or mnist-cnn/],
      [['--algorithm', 'l2l', '--preprocess', '-1'], /--preprocess must be a number > 0 or none, got '-1'/],
      [['--algorithm', 'l2l', '--ways', '5'], /--ways is not for --algorithm l2l/],
      [['--optimizee', 'quadratic'], /--optimizee is for --algorithm l2l, not maml/],
      [['--init-from', join(empty, 'x.safetensors')], /--init-from .*x\.safetensors: no such file/],
      [['--also-test', 'family-a'], /--also-test is for --dataset omniglot/],
      [['--algorithm', 'ntm', '--also-test', 'family-a'], /--also-test is for --algorithm maml, .*, not ntm/],
      [['--algorithm', 'protonet', '--init-from', file], /--init-from is for --algorithm maml, .*, not protonet/],
      [['--key-strength', '2'], /--key-strength is for --algorithm mann, not maml/],
      [['--cg-steps', '3'], /--cg-steps is for --algorithm imaml, not maml/],
      [['--hessian-probes', '2'], /--hessian-probes needs --hessian-reg/],
      [['--downsample', 'stride'], /--downsample is for --dataset omniglot/],
      [['--hessian-reg', '-1'], /--hessian-reg must be >= 0, got -1/],
      [['--pcgrad-groups', '30'], /--pcgrad-groups 30 is more than the 25 tasks of a meta-batch/],
      [['--algorithm', 'reptile', '--pcgrad-groups', '2'], /--pcgrad-groups is for --algorithm maml, fomaml, metasgd, lslr, anil, mamlpp or imaml, not reptile/],
      [['--algorithm', 'imaml', '--lam', '0'], /--lam must be > 0, got 0/],
      [['--algorithm', 'imaml', '--inner-solver', 'newton'], /unknown --inner-solver 'newton' \(one of gd, hessian-free\)/],
      [['--no-cache', '--cache-dir', empty], /--cache-dir and --no-cache contradict each other/],
      [['--out', '/proc/metagrad-test'], /cannot write to \/proc\/metagrad-test/],
      [['--out', join(file, 'sub')], /cannot write to .*not-a-folder\/sub: .*not a folder/],
      [['--resume', empty], /--resume .*: no checkpoint\.safetensors there/],
      [['--resume', empty, '--iterations', '5'], /only --threads, --minutes, --cache-dir, --no-cache may be given with it, not --iterations/],
    ];
    expect(bad.length).toBeGreaterThanOrEqual(30);
    for (const [args, msg] of bad) {
      const dir = out();
      const r = cli(...args, ...(args.includes('--out') || args.includes('--resume') ? [] : ['--out', dir]));
      const what = args.join(' ');
      expect(r.status, what).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, what).toHaveLength(2);
      expect(lines[0], what).toMatch(msg);
      expect(lines[0], what).toMatch(/^error: /);
      expect(lines[1], what).toMatch(/^Usage: /);
      expect(r.stdout, `${what}: nothing started`).toBe('');
      expect(existsSync(dir), `${what}: no output folder`).toBe(false);
    }
  }, 170_000);

  it('--help lists every flag; the help goes to stdout with exit 0', () => {
    const r = cli('--help');
    expect(r.status).toBe(0);
    for (const f of ['--algorithm', '--resume', '--force', '--no-cache', '--cache-dir', '--key-strength', '--init-from', '--lake-runs']) expect(r.stdout).toContain(f);
  });

  it('a folder that holds a run is refused unless --resume or --force', () => {
    const out = tmp('exists');
    expect(cli('--iterations', '10', '--eval-tasks', '2', '--out', out, '--force').status).toBe(0);
    const before = checkpointBytes(out);
    const r = cli('--iterations', '20', '--eval-tasks', '2', '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/already holds a run \(checkpoint\.safetensors, report\.json\): --resume .* continues it, --force overwrites it/);
    expect(checkpointBytes(out).equals(before)).toBe(true);
    const f = cli('--iterations', '20', '--eval-tasks', '2', '--out', out, '--force');
    expect(f.status, f.stderr).toBe(0);
    expect(report(out).trainIterations).toBe(20);
  }, 60_000);

  it('a truncated or corrupted checkpoint is refused on --resume with its name and fault, and nothing is overwritten', () => {
    const out = tmp('corrupt');
    expect(cli('--iterations', '10', '--eval-tasks', '2', '--out', out, '--force').status).toBe(0);
    const good = checkpointBytes(out);
    const reportBefore = readFileSync(join(out, 'report.json'));
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, good.length - 100), /checkpoint\.safetensors: .*truncated/],
      [good.subarray(0, 20), /checkpoint\.safetensors: .*truncated/],
      [Buffer.concat([Buffer.from('garbage!'), good.subarray(8)]), /checkpoint\.safetensors: not a safetensors file/],
    ];
    for (const [bytes, msg] of cases) {
      writeFileSync(join(out, 'checkpoint.safetensors'), bytes);
      const r = cli('--resume', out);
      expect(r.status).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(msg);
      expect(checkpointBytes(out).equals(bytes), 'the checkpoint is left as it was').toBe(true);
      expect(readFileSync(join(out, 'report.json')).equals(reportBefore)).toBe(true);
    }
    // A well-formed file whose tensors do not fit its configuration (a MAML run relabelled Meta-SGD).
    const { tensors, metadata } = decodeSafetensors(good, 'checkpoint');
    const config = { ...JSON.parse(metadata.config), algorithm: 'metasgd' };
    const relabelled = Buffer.from(encodeSafetensors(tensors, { ...metadata, config: JSON.stringify(config) }));
    writeFileSync(join(out, 'checkpoint.safetensors'), relabelled);
    const r = cli('--resume', out);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/checkpoint\.safetensors: MAML\.load: the state has no tensor 'lrs\.0'/);
    expect(checkpointBytes(out).equals(relabelled)).toBe(true);
    expect(readFileSync(join(out, 'report.json')).equals(reportBefore)).toBe(true);
    expect(readdirSync(out).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }, 60_000);

  it('MAML on Omniglot with the stride-2 Conv4 (--downsample stride)', () => {
    const out = tmp('stride');
    const r = cli('--dataset', 'omniglot', '--data', OMNIGLOT, '--downsample', 'stride', '--meta-batch', '2', '--queries', '2', '--iterations', '2', '--eval-tasks', '3', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(report(out).config).toMatchObject({ downsample: 'stride' });
    expect(checkpoint(out).tensors['params.head.w'].shape).toEqual([5, 64]);   // stored [out, in]: 64 averaged features
  }, 120_000);

  it('two task families in sequence: --split family-b --init-from the family-a run, scored on both with --also-test', () => {
    const a = tmp('family-a'), b = tmp('family-b');
    const common = ['--dataset', 'omniglot', '--data', OMNIGLOT, '--downsample', 'stride', '--meta-batch', '2', '--queries', '2', '--eval-tasks', '3'];
    let r = cli(...common, '--split', 'family-a', '--iterations', '2', '--out', a, '--force');
    expect(r.status, r.stderr).toBe(0);
    // A meta step of 1e-9 leaves the parameters where --init-from put them (to 1e-8).
    r = cli(...common, '--split', 'family-b', '--also-test', 'family-a', '--init-from', join(a, 'checkpoint.safetensors'), '--iterations', '2',
      '--meta-lr', '1e-9', '--eval-every', '1', '--out', b, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/after 3 steps, on family-a's test classes: accuracy/);
    const rep = report(b);
    expect(rep.config).toMatchObject({ split: 'family-b', alsoTest: 'family-a', initFrom: join(a, 'checkpoint.safetensors') });
    expect(rep.eval_3_steps.accuracy.n).toBe(3);
    expect(rep.eval_3_steps_also.accuracy.n).toBe(3);
    expect(rep.curve.filter((p: any) => p.heldOut).map((p: any) => p.heldOutAlso.n)).toEqual([100, 100]);
    const pa = checkpoint(a).tensors, pb = checkpoint(b).tensors;
    for (const k of Object.keys(pa).filter((n) => n.startsWith('params.'))) {
      const x = pa[k].data, y = pb[k].data;
      expect(Math.max(...Array.from(x, (v: number, i: number) => Math.abs(v - y[i]))), k).toBeLessThan(1e-8);
    }
  }, 170_000);

  it('l2l: trains the LSTM optimiser on quadratics, scores it and four tuned baselines on held-out optimizees', async () => {
    const full = tmp('l2l');
    const args = ['--algorithm', 'l2l', '--optimizee-steps', '20', '--unroll', '10', '--eval-every', '4', '--checkpoint-every', '2', '--eval-tasks', '4', '--tune-tasks', '1', '--eval-steps', '30'];
    const r = cli(...args, '--iterations', '8', '--out', full, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/learned \(LSTM\): final loss .* after 30 steps over 4 held-out optimizees/);
    expect(r.stdout).toMatch(/adam \(learning rate [\d.e-]+, tuned\): final loss/);
    const rep = report(full);
    expect(rep.config).toMatchObject({ optimizee: 'quadratic', optimizeeSteps: 20, unroll: 10, evalSteps: 30, preprocess: null, outputScale: 1 });
    expect(rep.eval.curve.length).toBe(31);
    for (const b of ['sgd', 'nag', 'rmsprop', 'adam']) expect(rep[`baseline_${b}`].loss.n).toBe(4);
    expect(readFileSync(join(full, 'loss-curves.svg'), 'utf8')).toMatch(/LSTM \(learned\)/);
    // --iterations 0 --init-from: the same optimiser scored again, on the same held-out optimizees.
    const again = tmp('l2l-eval');
    const e = cli(...args, '--iterations', '0', '--init-from', join(full, 'checkpoint.safetensors'), '--out', again, '--force');
    expect(e.status, e.stderr).toBe(0);
    expect(report(again).eval).toEqual(rep.eval);
  }, 170_000);

  it('l2l on an MNIST CNN with one LSTM for the convolutions and one for the fully connected layers', () => {
    const out = tmp('l2l-cnn');
    const r = cli('--algorithm', 'l2l', '--optimizee', 'mnist-cnn', '--split-lstm', '--data', MNIST, '--optimizee-steps', '4', '--unroll', '2', '--iterations', '2',
      '--eval-tasks', '2', '--tune-tasks', '1', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(report(out).config).toMatchObject({ optimizee: 'mnist-cnn', splitLstm: true, preprocess: 10, outputScale: 0.1 });
    const names = Object.keys(checkpoint(out).tensors);
    expect(names).toContain('params.conv.layers.0.wx');
    expect(names).toContain('params.fc.out.w');
  }, 170_000);

  it('ravi-larochelle on Omniglot: the LSTM meta-learner, its options recorded', () => {
    const out = tmp('ravi');
    const r = cli('--algorithm', 'ravi-larochelle', '--dataset', 'omniglot', '--data', OMNIGLOT, '--queries', '2', '--iterations', '2', '--updates', '2', '--filters', '8', '--eval-tasks', '3', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/after 2 meta-learner updates: accuracy/);
    const rep = report(out);
    expect(rep.config).toMatchObject({ algorithm: 'ravi-larochelle', updates: 2, filters: 8, clipNorm: 0.25, metaBatch: 1 });
    expect(checkpoint(out).tensors['metaLearner.bF'].shape).toEqual([1]);
  }, 170_000);

  it('ewc on permuted MNIST: tasks in sequence, scored on every task after each, the accuracy matrix and backward transfer', () => {
    const out = tmp('ewc');
    const r = cli('--algorithm', 'ewc', '--data', MNIST, '--tasks', '3', '--steps-per-task', '4', '--hidden', '8', '--fisher-samples', '5', '--eval-tasks', '100', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/final: accuracy [\d.]+ \/ [\d.]+ \/ [\d.]+ % on tasks 1\.\.3 \(100 test images each\)/);
    const rep = report(out);
    expect(rep.config).toMatchObject({ algorithm: 'ewc', dataset: 'permuted-mnist', tasks: 3, stepsPerTask: 4, lambda: 10, fisher: 'exact', evalEvery: 4 });
    expect(rep.accuracyMatrix.map((row: number[]) => row.length)).toEqual([1, 2, 3]);
    expect(typeof rep.backwardTransfer).toBe('number');
    expect(checkpoint(out).meta.learner.tasks).toBe(2);
  }, 170_000);

  it('protonet on Omniglot scores the same model on 5-way and, with --test-ways, 10-way tasks; --meta-lr-halve-every is recorded', () => {
    const out = tmp('proto');
    const r = cli('--dataset', 'omniglot', '--data', OMNIGLOT, '--algorithm', 'protonet', '--ways', '5', '--train-ways', '10',
      '--queries', '2', '--iterations', '3', '--eval-tasks', '6', '--test-ways', '10', '--meta-lr-halve-every', '2', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/10-way 1-shot test tasks \(same model\): accuracy/);
    const rep = report(out);
    expect(rep.config).toMatchObject({ ways: 5, trainWays: 10, testWays: [10], metaLrHalveEvery: 2 });
    expect(rep.eval.accuracy.n).toBe(6);
    expect(rep.eval_10_ways.accuracy.n).toBe(6);
    for (const a of [rep.eval.accuracy.mean, rep.eval_10_ways.accuracy.mean]) {
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThanOrEqual(1);
    }
  }, 180_000);

  it('imaml on sine: the implicit meta-gradient through the same CLI, its options recorded', () => {
    const out = tmp('imaml');
    const r = cli('--algorithm', 'imaml', '--iterations', '20', '--eval-tasks', '10', '--inner-steps', '5', '--cg-steps', '3', '--lam', '1.5', '--inner-solver', 'hessian-free', '--cg-damping', '0.5', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    const rep = report(out);
    expect(rep.config).toMatchObject({ algorithm: 'imaml', innerSteps: 5, testSteps: 5, cgSteps: 3, lam: 1.5, innerSolver: 'hessian-free', cgDamping: 0.5 });
    const ref = tmp('imaml-ref');
    expect(cli('--algorithm', 'imaml', '--iterations', '3', '--eval-tasks', '3', '--inner-steps', '3', '--imaml-variant', 'reference', '--out', ref, '--force').status).toBe(0);
    expect(report(ref).config).toMatchObject({ imamlVariant: 'reference' });
    for (const k of ['eval_0_steps', 'eval_1_steps', 'eval_5_steps']) expect(rep[k].loss.n).toBe(10);
    expect(checkpoint(out).meta.learner).toMatchObject({ iteration: 20, optimizerStep: 20 });
  }, 120_000);

  it('Meta-PCGrad with Hessian regularisation on sine: the curve records the conflicts between groups', () => {
    const out = tmp('pcgrad');
    const r = cli('--iterations', '20', '--meta-batch', '8', '--pcgrad-groups', '4', '--hessian-reg', '0.001', '--hessian-probes', '2', '--eval-tasks', '5', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    const rep = report(out);
    expect(rep.config).toMatchObject({ pcgradGroups: 4, hessianReg: 0.001, hessianProbes: 2 });
    const points = rep.curve.filter((p: any) => p.pcgradConflicts !== undefined);
    expect(points.map((p: any) => p.iteration)).toEqual([10, 20]);
    for (const p of points) {
      expect(p.pcgradConflicts).toBeGreaterThanOrEqual(0);
      expect(p.pcgradConflicts).toBeLessThanOrEqual(1);
    }
  }, 120_000);

  it('ntm: trains on the copy task, writes report, checkpoint and the copied-sequence pictures', () => {
    const out = tmp('ntm');
    const r = cli('--algorithm', 'ntm', '--iterations', '3', '--meta-batch', '2', '--eval-every', '2', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    const rep = report(out);
    expect(rep.trainIterations).toBe(3);
    expect(rep.config).toMatchObject({ algorithm: 'ntm', dataset: 'copy', metaBatch: 2, startIteration: 0 });
    for (const L of ['length10', 'length20']) expect(Number.isFinite(rep.final[L].costBits)).toBe(true);
    for (const f of ['checkpoint.safetensors', 'copy-20.svg', 'copy-40.svg']) expect(existsSync(join(out, f)), f).toBe(true);
  }, 180_000);

  it('ntm --init-from reads an old JSON checkpoint (with a deprecation warning) and continues its step count', () => {
    const first = tmp('ntm-first');
    expect(cli('--algorithm', 'ntm', '--iterations', '2', '--meta-batch', '2', '--eval-every', '0', '--out', first, '--force').status).toBe(0);
    // The old format: { format, meta, tensors: { path: { shape, dtype, values } } }, in our own layout.
    const { tensors, metadata } = decodeSafetensors(checkpointBytes(first), 'checkpoint');
    const old: Record<string, unknown> = {};
    for (const [name, t] of Object.entries(tensors)) {
      if (!name.startsWith('params.')) continue;
      let values = Array.from(t.data), shape = t.shape;
      if (isTransposedInFile(name, shape)) {
        const [r, c] = shape;
        values = Array.from({ length: r * c }, (_, k) => values[(k % r) * c + Math.floor(k / r)]);
        shape = [c, r];
      }
      old[name.slice('params.'.length)] = { shape, dtype: t.dtype, values };
    }
    const file = join(first, 'checkpoint.json');
    writeFileSync(file, JSON.stringify({ format: 'metagrad-checkpoint-1', meta: { iteration: JSON.parse(metadata.iteration) }, tensors: old }));
    const out = tmp('ntm-init');
    const r = cli('--algorithm', 'ntm', '--iterations', '4', '--meta-batch', '2', '--eval-every', '0', '--init-from', file, '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/JSON checkpoints are deprecated/);
    const rep = report(out);
    expect(rep.config.startIteration).toBe(2);
    expect(rep.trainIterations, 'steps trained in this run, from step 2 to 4').toBe(2);
  }, 120_000);

  it('mann: label-delay episodes on Omniglot, accuracy by instance, the key-strength and write-key options recorded', () => {
    const out = tmp('mann');
    const r = cli('--algorithm', 'mann', '--data', OMNIGLOT, '--iterations', '2', '--meta-batch', '2', '--eval-tasks', '4',
      '--eval-every', '100', '--key-strength', '2', '--write-key', '--out', out, '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/instance 10: [\d.]+ ± [\d.]+ \(n=4\)/);
    const rep = report(out);
    expect(rep.config).toMatchObject({ keyStrength: 2, writeKey: true, metaBatch: 2 });
    expect(rep.testAccuracyByInstance).toHaveLength(10);
  }, 180_000);
});

describe('CLI: stopped by a signal and resumed equals the uninterrupted run, bit for bit', () => {
  const cases: { name: string; args: string[]; when: RegExp; signal: NodeJS.Signals; code: number }[] = [
    { name: 'sine MAML (SIGINT)', args: ['--iterations', '3000', '--eval-tasks', '20', '--eval-every', '1000', '--checkpoint-every', '700'], when: /training 600\//, signal: 'SIGINT', code: 130 },
    { name: 'Omniglot ProtoNet (SIGTERM)', args: ['--dataset', 'omniglot', '--data', OMNIGLOT, '--algorithm', 'protonet', '--queries', '2', '--iterations', '40', '--eval-every', '10', '--eval-tasks', '5'], when: /held-out accuracy .* at 10/, signal: 'SIGTERM', code: 143 },
    { name: 'learned optimiser (SIGINT)', args: ['--algorithm', 'l2l', '--optimizee-steps', '20', '--unroll', '10', '--iterations', '40', '--eval-every', '10', '--checkpoint-every', '4', '--eval-tasks', '3', '--tune-tasks', '1'], when: /held-out final loss .* at 10/, signal: 'SIGINT', code: 130 },
    { name: 'NTM (SIGINT)', args: ['--algorithm', 'ntm', '--iterations', '300', '--meta-batch', '2', '--eval-every', '50', '--checkpoint-every', '70'], when: /held-out length10.* at 50/, signal: 'SIGINT', code: 130 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const whole = tmp('whole');
      const w = cli(...c.args, '--out', whole, '--force');
      expect(w.status, w.stderr).toBe(0);
      const cut = tmp('cut');
      const s = await interrupt([...c.args, '--out', cut, '--force'], c.when, c.signal);
      expect(s.status, s.stderr).toBe(c.code);
      expect(s.stderr).toMatch(new RegExp(`${c.signal}: finishing the current step`));
      const partial = report(cut);
      expect(partial.interrupted).toBe(true);
      const stoppedAt = checkpoint(cut).meta.iteration;
      expect(stoppedAt).toBeGreaterThan(0);
      expect(stoppedAt).toBeLessThan(Number(c.args[c.args.indexOf('--iterations') + 1]));
      expect(partial.trainIterations).toBe(stoppedAt);
      const r = cli('--resume', cut);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`resuming .* at iteration ${stoppedAt} of`));
      expect(report(cut).interrupted).toBeUndefined();
      expect(outcome(cut)).toEqual(outcome(whole));
    }, 170_000);
  }
});
