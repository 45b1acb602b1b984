// --init-from: a run that starts from the parameters of an earlier run's checkpoint.

import { loadCheckpoint } from '../engine/checkpoint.js';
import { treeLeaves, treePaths, treeUnflatten } from '../engine/pytree.js';
import { keep } from '../engine/runtime.js';
import type { Config } from './recipe.js';

/** Fresh parameters, or those of --init-from (then also the step it had reached). */
export async function startFrom<P>(cfg: Config, fresh: P): Promise<{ params: P; start: number }> {
  const file = cfg.initFrom as string | null;
  if (!file) return { params: fresh, start: 0 };
  const { tensors, metadata } = await loadCheckpoint(file);
  // Old JSON checkpoints name the parameters by their paths; ours prefix them with 'params.'.
  const prefix = metadata.legacyFormat ? '' : 'params.';
  const leaves = treeLeaves(fresh), paths = treePaths(fresh);
  const loaded = paths.map((p, i) => {
    const t = tensors[prefix + p];
    if (!t) throw new Error(`${file}: has no tensor '${prefix + p}'`);
    if (t.shape.join() !== leaves[i].shape.join()) throw new Error(`${file}: '${prefix + p}' has shape [${t.shape}], the model expects [${leaves[i].shape}]`);
    return t;
  });
  for (const [k, t] of Object.entries(tensors)) if (!loaded.includes(t)) t.dispose();
  leaves.forEach((t) => t.dispose());
  const start = Number(metadata.iteration ?? 0);
  return { params: keep(treeUnflatten(fresh, loaded)), start };
}

