// Neural Turing Machine (Graves et al. 2014): an LSTM controller with one read head and one write
// head on an N x W memory, addressed by content then location (engine/memory-addressing.ts), and
// its training on the copy task. A model is a function of (params, input sequence); training
// is a pure optimiser step on a sigmoid cross-entropy.

import * as ops from '../engine/ops.js';
import * as nn from '../engine/nn.js';
import * as mem from '../engine/memory-addressing.js';
import { valueAndGrad } from '../engine/autodiff.js';
import { noGrad, tidy } from '../engine/runtime.js';
import { treeMap } from '../engine/pytree.js';
import type { Optimizer } from '../engine/optim.js';
import { Evaluation, LearnerBase } from './learner.js';
import { summarize } from './task.js';
import type { DType } from '../kernels/backend.js';
import type { Random } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';

export interface NTMConfig {
  inputSize: number;
  outputSize: number;
  /** LSTM controller units (100 here; Graves et al. do not give the copy-task controller size for all runs). */
  hidden?: number;
  /** Memory rows N and row width W (128 x 20 in the paper's copy task). */
  rows?: number;
  width?: number;
  /** Shift offsets -r..r: 2r + 1 entries (3 in the paper). */
  shifts?: number;
}

export interface NTMParams {
  [k: string]: any;
  controller: nn.LSTMParams;
  readHead: nn.LinearParams;
  writeHead: nn.LinearParams;
  output: nn.LinearParams;
  /** Learned initial memory [N, W] and initial read vector [W] (the same for every sequence). */
  memory0: Tensor;
  read0: Tensor;
}

const sizes = (c: NTMConfig) => ({ hidden: c.hidden ?? 100, rows: c.rows ?? 128, width: c.width ?? 20, shifts: c.shifts ?? 3 });

export function initNTM(rng: Random, c: NTMConfig, o: { dtype?: DType } = {}): NTMParams {
  const { hidden, rows, width, shifts } = sizes(c);
  const head = width + 3 + shifts;
  // Random initial memory: with identical rows content addressing could never tell them apart.
  const a = 1 / Math.sqrt(rows + width);
  return {
    controller: nn.initLSTM(rng, c.inputSize + width, hidden, o),
    readHead: nn.initLinear(rng, hidden, head, { init: 'xavierUniform', ...o }),
    writeHead: nn.initLinear(rng, hidden, head + 2 * width, { init: 'xavierUniform', ...o }),
    output: nn.initLinear(rng, hidden + width, c.outputSize, { init: 'xavierUniform', ...o }),
    memory0: rng.uniform([rows, width], { low: -a, high: a, dtype: o.dtype }),
    read0: rng.uniform([width], { low: -a, high: a, dtype: o.dtype }),
  };
}

/** What the NTM did at each step (for pictures and tests): read and write weightings [B, N]. */
export interface NTMTrace { read: Tensor[]; write: Tensor[] }

/**
 * Runs the NTM over a time-major input [steps, batch, inputSize] and returns output logits
 * [steps, batch, outputSize]. Per step: the controller sees the input and the previous read;
 * the read head addresses and reads the memory as it was; the write head then erases and adds;
 * the output is a linear function of the controller state and the new read.
 */
export function ntm(p: NTMParams, input: Tensor, trace?: NTMTrace): Tensor {
  const [steps, B, inSize] = input.shape;
  const [rows, width] = p.memory0.shape;
  if (input.rank !== 3 || inSize + width !== p.controller.wx.shape[0]) {
    throw new Error(`ntm: input ${`[${input.shape}]`} must be [steps, batch, ${p.controller.wx.shape[0] - width}]`);
  }
  const hidden = p.controller.wh.shape[0];
  let s: nn.LSTMState = { h: ops.zeros([B, hidden], { dtype: input.dtype }), c: ops.zeros([B, hidden], { dtype: input.dtype }) };
  let M = ops.broadcastTo(ops.expandDims(p.memory0, 0), [B, rows, width]);
  let r = ops.broadcastTo(ops.expandDims(p.read0, 0), [B, width]);
  let wr = ops.zeros([B, rows], { dtype: input.dtype }), ww = wr;
  const shifts = p.readHead.w.shape[1] - width - 3;
  const outs: Tensor[] = [];
  for (let t = 0; t < steps; t++) {
    const x = ops.reshape(ops.slice(input, [t, 0, 0], [1, B, inSize]), [B, inSize]);
    s = nn.lstmCell(p.controller, ops.concat([x, r], 1), s);
    wr = mem.ntmAddressing(M, wr, mem.ntmHeadParams(nn.linear(p.readHead, s.h), width, shifts));
    r = mem.read(M, wr);
    const [addr, erase, add] = ops.split(nn.linear(p.writeHead, s.h), [width + 3 + shifts, width, width], 1);
    ww = mem.ntmAddressing(M, ww, mem.ntmHeadParams(addr, width, shifts));
    M = mem.write(M, ww, ops.tanh(add), ops.sigmoid(erase));
    outs.push(nn.linear(p.output, ops.concat([s.h, r], 1)));
    if (trace) { trace.read.push(wr); trace.write.push(ww); }
  }
  return ops.stack(outs, 0);
}

/** The copy-task loss: sigmoid cross-entropy over the last T steps (the reproduction phase). */
export function copyLoss(p: NTMParams, input: Tensor, target: Tensor): Tensor {
  const logits = ntm(p, input);
  const T = target.shape[0];
  return nn.binaryCrossEntropyWithLogits(ops.slice(logits, [logits.shape[0] - T, 0, 0], [T, -1, -1]), target);
}

/** Element-wise gradient clipping to [-c, c] (Graves et al. clip to ±10 for the NTM). */
export const clipGradients = <P>(g: P, c: number): P => treeMap((x: Tensor) => ops.minimum(ops.maximum(x, -c), c), g as any) as P;

/**
 * Trains a sequence model (NTM, MANN) with an optimiser and element-wise gradient clipping on
 * `loss(params, batch)`; `evaluate` gives the mean loss over held-out batches.
 */
export class SequenceTrainer<P, B> extends LearnerBase<{ params: P }, B, B> {
  constructor(params: P, private readonly loss: (p: P, batch: B) => Tensor, optimizer: Optimizer, private readonly clip = 10) {
    super('SequenceTrainer', { params }, optimizer);
  }

  get params(): P { return this.learned.params; }

  /** One clipped optimiser step on loss(params, batch); returns the loss before the step. */
  step(batch: B): Promise<number> {
    return this.optimizerStep({
      lossAndGrads: (learned) => {
        const [v, g] = valueAndGrad((l: { params: P }) => this.loss(l.params, batch))(learned);
        return [v, clipGradients(g, this.clip)];
      },
    });
  }

  /** The loss over held-out batches: mean ± 95% CI over batches. */
  async evaluate(batches: Iterable<B>): Promise<Evaluation> {
    const losses: number[] = [];
    for (const b of batches) losses.push(await tidy(async () => (await noGrad(() => this.loss(this.params, b)).data())[0]));
    return { loss: summarize(losses) };
  }
}
