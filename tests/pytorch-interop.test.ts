// Checkpoints load into PyTorch as docs/checkpoints.md says: a Conv4 trained a few MAML steps and an
// LSTM cell, saved by saveCheckpoint, are loaded by tests/support/pytorch_load.py into torch.nn
// modules (load_state_dict, strict) that must compute what metagrad computes. Needs Debian's
// python3-torch: with CI set a machine without it fails this test; elsewhere it is skipped.

import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as mg from '../index.js';
import { MAML, classificationLoss } from '../algorithms/index.js';
import { saveCheckpoint } from '../engine/checkpoint.js';
import { activate } from './support/backends.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = new URL('./support/pytorch_load.py', import.meta.url).pathname;
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0;

describe('PyTorch loads our checkpoints', () => {
  beforeAll(async () => { await activate('wasm'); });

  it('a Conv4 (after 2 MAML steps) and an LSTM cell give the same outputs in torch.nn', async (ctx) => {
    if (torchMissing) {
      if (process.env.CI) throw new Error(`${PYTHON} cannot import torch: install Debian's python3-torch`);
      ctx.skip('python3-torch is not installed');
    }
    const dir = mkdtempSync(join(tmpdir(), 'metagrad-torch-'));
    const rng = new mg.Random(3);
    const maml = new MAML({ model: (p, x) => mg.nn.conv4(p, x), loss: classificationLoss, params: mg.nn.initConv4(rng, { ways: 5, filters: 8 }), innerLr: 0.1 });
    const task = { xs: rng.uniform([5, 1, 28, 28]), ys: Int32Array.from([0, 1, 2, 3, 4]), xq: rng.uniform([5, 1, 28, 28]), yq: Int32Array.from([4, 3, 2, 1, 0]) };
    for (let i = 0; i < 2; i++) await maml.step([task]);
    await saveCheckpoint(join(dir, 'conv4.safetensors'), maml.state().tensors, { note: 'test' });
    const lstm = mg.nn.initLSTM(rng, 6, 4);
    await saveCheckpoint(join(dir, 'lstm.safetensors'), { params: lstm });
    const x = rng.uniform([3, 1, 28, 28]), seq = rng.normal([2, 6]), h = rng.normal([2, 4]), c = rng.normal([2, 4]);
    await saveCheckpoint(join(dir, 'inputs.safetensors'), { x, seq, h, c });
    const ours = mg.nn.conv4(maml.meta.params, x).dataSync();
    const cell = mg.nn.lstmCell(lstm, seq, { h, c });

    const r = spawnSync(PYTHON, [SCRIPT, ...['conv4', 'lstm', 'inputs'].map((n) => join(dir, `${n}.safetensors`))], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const torch = JSON.parse(r.stdout);
    expect(torch.names).toContain('blocks.3.bn.weight');
    const close = (a: ArrayLike<number>, b: number[], tol: number) => {
      expect(b.length).toBe(a.length);
      for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i]), `element ${i}: ${a[i]} vs ${b[i]}`).toBeLessThan(tol * (1 + Math.abs(b[i])));
    };
    close(ours, torch.logits, 1e-4);
    close(cell.h.dataSync(), torch.h, 1e-5);
    close(cell.c.dataSync(), torch.c, 1e-5);
    maml.dispose();
  }, 60_000);
});
