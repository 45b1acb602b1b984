// The command-line main job (dist/cli/main.js, built by `npm install`): what it writes, and the
// errors it gives for bad flags. Short budgets: these check the plumbing, not the learning.

import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'dist/cli/main.js');
const OMNIGLOT = new URL('../../shared/data/omniglot', import.meta.url).pathname;

// The CLI caches decoded Omniglot under $HOME/.cache/metagrad: point that at the cache the dataset
// tests fill, so a fresh machine decodes the zips once.
const home = mkdtempSync(join(tmpdir(), 'metagrad-cli-home-'));
const sharedCache = join(tmpdir(), 'metagrad-test-cache');
mkdirSync(sharedCache, { recursive: true });
mkdirSync(join(home, '.cache'));
symlinkSync(sharedCache, join(home, '.cache', 'metagrad'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, HOME: home }, timeout: 170_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('CLI', () => {
  it('is built', () => expect(existsSync(CLI), `${CLI} missing: run npm run build`).toBe(true));

  it('sine MAML: trains, evaluates before and after adaptation, writes checkpoint, report and plot', () => {
    const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-sine-'));
    const r = cli('--iterations', '40', '--eval-tasks', '20', '--eval-every', '20', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pre-adaptation: MSE/);
    expect(r.stdout).toMatch(/after 10 steps: MSE/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.config).toMatchObject({ algorithm: 'maml', dataset: 'sine', iterations: 40 });
    for (const k of ['eval_0_steps', 'eval_1_steps', 'eval_10_steps']) expect(report[k].loss.n).toBe(20);
    // Adaptation helps even after 40 meta-steps: 10 steps on the K points beat none.
    expect(report.eval_10_steps.loss.mean).toBeLessThan(report.eval_0_steps.loss.mean);
    expect(report.curve.filter((p: any) => p.heldOut).map((p: any) => p.iteration)).toEqual([20, 40]);
    const ckpt = JSON.parse(readFileSync(join(out, 'checkpoint.json'), 'utf8'));
    expect(ckpt.format).toBe('metagrad-checkpoint-1');
    expect(Object.keys(ckpt.tensors).length).toBe(6);
    expect(readFileSync(join(out, 'adaptation.svg'), 'utf8')).toMatch(/^<svg[^]*ground truth[^]*<\/svg>\s*$/);
  }, 120_000);

  it('reptile with --inner-batch records it; --threads 2 gives the same numbers as 1 thread (sine, and Conv4 on Omniglot)', () => {
    const run = (threads: string) => {
      const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-reptile-'));
      const r = cli('--algorithm', 'reptile', '--iterations', '20', '--inner-steps', '3', '--inner-batch', '4', '--eval-tasks', '10', '--threads', threads, '--out', out);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    };
    const one = run('1'), two = run('2');
    expect(one.config).toMatchObject({ algorithm: 'reptile', innerBatch: 4, reptileInnerData: 'support+query' });
    expect(two.eval_10_steps).toEqual(one.eval_10_steps);
    expect(two.curve.map((p: any) => p.loss)).toEqual(one.curve.map((p: any) => p.loss));
    // The sine MLP's kernels are too small to be split: Conv4 on Omniglot episodes does split them.
    const proto = (threads: string) => {
      const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-proto-threads-'));
      const r = cli('--dataset', 'omniglot', '--data', OMNIGLOT, '--algorithm', 'protonet', '--ways', '5', '--train-ways', '10',
        '--queries', '2', '--iterations', '3', '--eval-tasks', '4', '--threads', threads, '--out', out);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    };
    const p1 = proto('1'), p2 = proto('2');
    expect(p2.eval).toEqual(p1.eval);
    expect(p2.curve.map((p: any) => p.loss)).toEqual(p1.curve.map((p: any) => p.loss));
  }, 180_000);

  it('rejects unknown algorithms, non-numbers and flags that do not fit the learner, with exit code 2', () => {
    const bad: [string[], RegExp][] = [
      [['--algorithm', 'nope'], /unknown --algorithm 'nope' \(one of maml, fomaml/],
      [['--iterations', 'many'], /--iterations must be a number, got 'many'/],
      [['--algorithm', 'maml', '--test-ways', '20', '--dataset', 'omniglot'], /--test-ways is for protonet, matching, relation and siamese/],
      [['--algorithm', 'protonet', '--test-ways', '1,x'], /--test-ways takes a comma-separated list of class counts >= 2, got '1,x'/],
      [['--dataset', 'omniglot'], /--dataset omniglot needs --data DIR/],
      [['--inner-batch', '10'], /--inner-batch is for --algorithm reptile/],
      [['--algorithm', 'reptile', '--inner-batch', '0'], /--inner-batch must be a whole number >= 1, got 0/],
      [['--algorithm', 'protonet', '--cosine-scale', '5'], /--fce, --processing-steps and --cosine-scale are for --algorithm matching/],
      [['--algorithm', 'matching', '--cosine-scale=-1'], /--cosine-scale must be >= 0, got -1/],
      [['--threads', '0'], /--threads must be a whole number >= 1, got '0'/],
      [['--distort'], /--distort is for --algorithm siamese/],
      [['--algorithm', 'reptile', '--meta-lr-halve-every', '100'], /--meta-lr-halve-every is not for --algorithm reptile/],
      [['--algorithm', 'protonet', '--meta-lr-halve-every', '0'], /--meta-lr-halve-every must be a whole number >= 1, got '0'/],
      [['--threads', '2', '--backend', 'ref'], /--threads is for --backend wasm/],
    ];
    for (const [args, msg] of bad) {
      const r = cli(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('a missing Omniglot folder names the file it looked for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metagrad-cli-empty-'));
    const r = cli('--dataset', 'omniglot', '--data', dir, '--iterations', '1');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(join(dir, 'images_background.zip'));
  });

  it('protonet on Omniglot scores the same model on 5-way and, with --test-ways, 10-way tasks; --meta-lr-halve-every is recorded', () => {
    const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-proto-'));
    const r = cli('--dataset', 'omniglot', '--data', OMNIGLOT, '--algorithm', 'protonet', '--ways', '5', '--train-ways', '10',
      '--queries', '2', '--iterations', '3', '--eval-tasks', '6', '--test-ways', '10', '--meta-lr-halve-every', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/10-way 1-shot test tasks \(same model\): accuracy/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.config).toMatchObject({ ways: 5, trainWays: 10, testWays: [10], metaLrHalveEvery: 2 });
    expect(report.eval.accuracy.n).toBe(6);
    expect(report.eval_10_ways.accuracy.n).toBe(6);
    for (const a of [report.eval.accuracy.mean, report.eval_10_ways.accuracy.mean]) {
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThanOrEqual(1);
    }
  }, 180_000);
});

describe('memory-learners CLI', () => {
  const MEM = join(ROOT, 'dist/cli/memory-learners.js');
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [MEM, ...args], { encoding: 'utf8', env: { ...process.env, HOME: home }, timeout: 170_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('ntm: trains on the copy task, writes report, checkpoint and the copied-sequence pictures', () => {
    const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-ntm-'));
    const r = run('--algorithm', 'ntm', '--iterations', '3', '--batch', '2', '--eval-every', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.trainIterations).toBe(3);
    for (const L of ['length10', 'length20']) expect(Number.isFinite(report.final[L].costBits)).toBe(true);
    for (const f of ['checkpoint.json', 'copy-20.svg', 'copy-40.svg']) expect(existsSync(join(out, f)), f).toBe(true);
  }, 180_000);

  it('mann: label-delay episodes on Omniglot, accuracy by instance, the key-strength and write-key options recorded', () => {
    const out = mkdtempSync(join(tmpdir(), 'metagrad-cli-mann-'));
    const r = run('--algorithm', 'mann', '--data', OMNIGLOT, '--iterations', '2', '--batch', '2', '--test-episodes', '4',
      '--eval-every', '100', '--key-strength', '2', '--write-key', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/instance 10: [\d.]+ ± [\d.]+ \(n=4\)/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.config).toMatchObject({ keyStrength: 2, writeKey: true, batch: 2 });
    expect(report.testAccuracyByInstance).toHaveLength(10);
  }, 180_000);

  it('rejects a missing --data, a bad key strength and unknown algorithms with exit code 2', () => {
    for (const [args, msg] of [
      [['--algorithm', 'mann'], /--algorithm mann needs --data DIR/],
      [['--algorithm', 'mann', '--data', OMNIGLOT, '--key-strength', '0'], /--key-strength must be a positive number or 'off', got '0'/],
      [['--algorithm', 'lstm'], /--algorithm must be ntm or mann, got 'lstm'/],
    ] as const) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });
});
