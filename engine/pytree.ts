// Parameters are plain (nested) objects and arrays of tensors: "pytrees". These helpers flatten a tree
// to its tensor leaves in a fixed order and rebuild it, so transforms can work on flat lists.

import { Tensor } from './tensor.js';

export type Tree<T = Tensor> = T | readonly Tree<T>[] | { readonly [k: string]: Tree<T> };

/** Only arrays and plain objects are containers; class instances (a Map, a Date, ...) are opaque leaves. */
const isPlainObject = (t: unknown): t is Record<string, unknown> => {
  if (t === null || typeof t !== 'object') return false;
  const proto = Object.getPrototypeOf(t);
  return proto === Object.prototype || proto === null;
};

export function treeLeaves(tree: unknown): Tensor[] {
  const out: Tensor[] = [];
  const walk = (t: unknown) => {
    if (t instanceof Tensor) out.push(t);
    else if (Array.isArray(t)) t.forEach(walk);
    else if (isPlainObject(t)) for (const k of Object.keys(t).sort()) walk(t[k]);
  };
  walk(tree);
  return out;
}

/** Rebuilds `tree` with its tensor leaves replaced, in treeLeaves order, by `leaves`. */
export function treeUnflatten<T>(tree: T, leaves: readonly unknown[]): T {
  let i = 0;
  const walk = (t: any): any => {
    if (t instanceof Tensor) return leaves[i++];
    if (Array.isArray(t)) return t.map(walk);
    if (isPlainObject(t)) {
      const o: any = {};
      for (const k of Object.keys(t).sort()) o[k] = walk(t[k]);
      return o;
    }
    return t;
  };
  const r = walk(tree);
  if (i !== leaves.length) throw new Error(`treeUnflatten: tree has ${i} leaves, got ${leaves.length}`);
  return r;
}

/** Maps fn over corresponding leaves of one or more trees of the same structure. */
export function treeMap<T>(fn: (...xs: Tensor[]) => Tensor, tree: T, ...others: unknown[]): T {
  const leaves = treeLeaves(tree);
  const rest = others.map(treeLeaves);
  for (const r of rest) {
    if (r.length !== leaves.length) throw new Error(`treeMap: trees differ (${leaves.length} vs ${r.length} leaves)`);
  }
  return treeUnflatten(tree, leaves.map((x, i) => fn(x, ...rest.map((r) => r[i]))));
}

/** Dotted paths of the leaves, in treeLeaves order: { blocks: [{ w }] } -> ['blocks.0.w']. */
export function treePaths(tree: unknown): string[] {
  const out: string[] = [];
  const walk = (t: unknown, path: string) => {
    if (t instanceof Tensor) out.push(path);
    else if (Array.isArray(t)) t.forEach((c, i) => walk(c, path ? `${path}.${i}` : `${i}`));
    else if (isPlainObject(t)) for (const k of Object.keys(t).sort()) walk(t[k], path ? `${path}.${k}` : k);
  };
  walk(tree, '');
  return out;
}
