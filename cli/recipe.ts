// What a recipe is: for one algorithm or family, the flags it takes and their defaults, and how it
// builds its learner, model and data from the configuration. The main loop (cli/main.ts) knows
// nothing else about any algorithm.

import type { Learner } from '../algorithms/learner.js';
import type { FlagSpec, FlagValues } from './flags.js';

/** The run's whole configuration, as recorded in report.json and the checkpoint. */
export type Config = Record<string, unknown> & {
  algorithm: string; dataset: string; backend: string; seed: number; iterations: number;
  minutes: number | null; evalEvery: number; checkpointEvery: number;
};

/** A sampler whose position goes into checkpoints, so a resumed run draws what it would have. */
export interface Stream { state(): unknown; setState(s: any): void }

/** One line printed and the fields a report or curve point gets. */
export interface Scored { line: string; fields: Record<string, unknown> }

export interface Run {
  learner: Learner<any, any>;
  /** The next training batch (drawn in the step's scope). */
  nextBatch(): unknown;
  /** Samplers drawn from during training: saved in checkpoints. */
  streams: Record<string, Stream>;
  /** A held-out score for the learning curve (every --eval-every). */
  heldOut(): Promise<Scored>;
  /** The final evaluation, one Scored per figure; their fields go into report.json. */
  finish(): AsyncIterable<Scored>;
  /** Report entries beside (or in place of) the defaults, from the recorded configuration (e.g. the step an --init-from run started at). */
  reportExtras?(config: Config): Record<string, unknown>;
  /** Files written beside the report (pictures), by name. */
  files?(): Promise<Record<string, string>>;
  dispose(): void;
}

export interface Recipe {
  /** Algorithm names this recipe builds, with a line of help each. */
  algorithms: Record<string, string>;
  /** The flags only this recipe takes (their `for` is filled in from `algorithms`). */
  flags?: Record<string, FlagSpec>;
  /**
   * The configuration from the flags, with defaults filled in; throws UsageError on a bad value or
   * combination. Runs before anything is loaded or trained; it may check that files exist.
   */
  configure(f: FlagValues, base: Config): Config;
  build(cfg: Config, log: (line: string) => void): Promise<Run>;
}
