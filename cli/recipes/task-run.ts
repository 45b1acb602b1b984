// What every task-based recipe (MAML family, metric learners, Siamese, fine-tuning) shares: the
// held-out score of the learning curve, and the final evaluation on --eval-tasks test tasks drawn as
// a stream, on --test-ways tasks, and on Lake et al.'s runs.

import { existsSync } from 'node:fs';
import type { Learner } from '../../algorithms/learner.js';
import { Task, formatSummary, mapIterable, take } from '../../algorithms/task.js';
import { episodeTensors, loadLakeRuns } from '../../datasets/index.js';
import { UsageError } from '../flags.js';
import type { FlagValues } from '../flags.js';
import type { Config, Run, Scored } from '../recipe.js';
import type { TaskSources } from '../tasks.js';

/** --test-ways and --lake-runs, checked before anything is loaded. */
export function evaluationConfig(f: FlagValues, cfg: Config, o: { testWays: boolean }): Config {
  const testWays = ((f['test-ways'] as string | undefined) ?? '').split(',').filter((w) => w.trim() !== '').map((w) => {
    const n = Number(w);
    if (!Number.isInteger(n) || n < 2) throw new UsageError(`--test-ways takes a comma-separated list of class counts >= 2, got '${f['test-ways']}'`);
    return n;
  });
  if (testWays.length && !o.testWays) throw new UsageError(`--test-ways is for protonet, matching, relation and siamese (the ${cfg.algorithm} model's head has --ways outputs)`);
  if (testWays.length && cfg.dataset !== 'omniglot') throw new UsageError('--test-ways needs --dataset omniglot');
  const lake = f['lake-runs'] as string | undefined;
  if (lake !== undefined) {
    if (cfg.dataset !== 'omniglot') throw new UsageError('--lake-runs needs --dataset omniglot');
    if (!existsSync(lake)) throw new UsageError(`--lake-runs ${lake}: no such file`);
    if (cfg.algorithm !== 'siamese' && cfg.ways !== 20) throw new UsageError(`--lake-runs: Lake's runs are 20-way, but this ${cfg.algorithm} model is trained ${cfg.ways}-way (use --ways 20)`);
  }
  return { ...cfg, testWays, lakeRuns: lake ?? null };
}

/**
 * A Run for a learner that evaluates tasks. `steps`: the inner steps to report (gradient-based
 * learners), or null; `when(steps)` words the line ("after 3 steps", "comparing with the support set").
 */
export function taskRun(cfg: Config, learner: Learner<any, Task>, sources: TaskSources, o: {
  nextBatch: () => unknown; steps: number[] | null; when: (steps: number) => string; streams?: Run['streams'];
}): Omit<Run, 'dispose'> & { dispose?: () => void } {
  const testSteps = cfg.testSteps as number | undefined;
  // Loaded before training, so a broken file stops the run before it starts.
  const lake = cfg.lakeRuns ? loadLakeRuns(cfg.lakeRuns as string, { size: 28 }) : null;
  const evalTasks = cfg.evalTasks as number;
  return {
    learner,
    nextBatch: o.nextBatch,
    streams: o.streams ?? sources.streams,
    async heldOut(): Promise<Scored> {
      const r = await learner.evaluate(take(sources.curve, 100), { steps: testSteps });
      const heldOut = r.accuracy ?? r.loss;
      const what = r.accuracy ? `accuracy ${formatSummary(heldOut, 100, 3)} %` : `MSE ${formatSummary(heldOut, 1, 3)}`;
      const line = `held-out ${what}${o.steps ? ` (${testSteps} steps)` : ''}`;
      if (!sources.also) return { line, fields: { heldOut } };
      const a = await learner.evaluate(take(sources.also.curve, 100), { steps: testSteps });
      return { line: `${line}; on ${sources.also.split} ${formatSummary(a.accuracy!, 100, 3)} %`, fields: { heldOut, heldOutAlso: a.accuracy } };
    },
    async *finish(): AsyncIterable<Scored> {
      for (const steps of o.steps ?? [testSteps ?? 0]) {
        const r = await learner.evaluate(take(sources.test, evalTasks), { steps });
        const what = r.accuracy ? `accuracy ${formatSummary(r.accuracy, 100)} %` : `MSE ${formatSummary(r.loss, 1, 3)}`;
        yield { line: `${o.when(steps)}: ${what} over ${evalTasks} test tasks`, fields: { [o.steps ? `eval_${steps}_steps` : 'eval']: r } };
        if (!sources.also) continue;
        const a = await learner.evaluate(take(sources.also.test, evalTasks), { steps });
        yield { line: `${o.when(steps)}, on ${sources.also.split}'s test classes: accuracy ${formatSummary(a.accuracy!, 100)} % over ${evalTasks} tasks`, fields: { [`${o.steps ? `eval_${steps}_steps` : 'eval'}_also`]: a } };
      }
      for (const ways of cfg.testWays as number[]) {
        const r = await learner.evaluate(take(sources.testWith!(ways), evalTasks), { steps: testSteps });
        yield { line: `${ways}-way ${cfg.shots}-shot test tasks (same model): accuracy ${formatSummary(r.accuracy!, 100)} % over ${evalTasks} tasks`, fields: { [`eval_${ways}_ways`]: r } };
      }
      if (lake) {
        const r = await learner.evaluate(mapIterable(lake, (e) => episodeTensors(e)), { steps: testSteps });
        const acc = r.trials ? `${formatSummary(r.trials, 100)} % over the 400 trials` : `${formatSummary(r.accuracy!, 100)} % over the 20 runs`;
        yield { line: `Lake et al.'s 20-way one-shot runs: accuracy ${acc}`, fields: { lake_runs: r } };
      }
    },
  };
}
