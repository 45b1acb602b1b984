// Checkpoints: a parameter tree as JSON (shapes, dtypes, values), written atomically so a crash
// mid-write never destroys the previous checkpoint.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tensor } from '../engine/ops.js';
import { treeLeaves, treePaths, treeUnflatten } from '../engine/pytree.js';

export async function saveCheckpoint(file: string, tree: unknown, meta: Record<string, unknown> = {}): Promise<void> {
  const leaves = treeLeaves(tree), paths = treePaths(tree);
  const tensors: Record<string, { shape: readonly number[]; dtype: string; values: number[] }> = {};
  for (let i = 0; i < leaves.length; i++) {
    tensors[paths[i]] = { shape: leaves[i].shape, dtype: leaves[i].dtype, values: Array.from(await leaves[i].data()) };
  }
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ format: 'metagrad-checkpoint-1', meta, tensors }));
  renameSync(tmp, file);
}

/** Loads values into a tree of the same structure as `like` (its tensors are not consumed). */
export function loadCheckpoint<T>(file: string, like: T): { tree: T; meta: Record<string, unknown> } {
  let data: any;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e: any) {
    throw new Error(`${file}: cannot read checkpoint (${e.code ?? e.message})`);
  }
  if (data?.format !== 'metagrad-checkpoint-1') throw new Error(`${file}: not a metagrad checkpoint`);
  const paths = treePaths(like), leaves = treeLeaves(like);
  const loaded = paths.map((p, i) => {
    const t = data.tensors[p];
    if (!t) throw new Error(`${file}: checkpoint has no tensor '${p}'`);
    if (t.shape.join() !== leaves[i].shape.join()) throw new Error(`${file}: '${p}' has shape [${t.shape}], the model expects [${leaves[i].shape}]`);
    return tensor(t.values, t.shape, { dtype: t.dtype });
  });
  return { tree: treeUnflatten(like, loaded), meta: data.meta };
}
