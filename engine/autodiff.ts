// Reverse-mode autodiff and the transforms built on it. A gradient transform traces its function on
// "watched" aliases of the inputs, then walks the recorded graph backwards calling each primitive's
// rule. When another transform encloses this one, that backward pass is itself recorded, which is
// all that grad-of-grad, Hessian-vector products and higher orders need.

import { primitives } from './primitives.js';
import { internal, tape, noGrad, stopGradient, tidy, watch } from './runtime.js';
import { Tree, treeLeaves, treeUnflatten } from './pytree.js';
import { Tensor, peekNextId } from './tensor.js';
import * as ops from './ops.js';

const shp = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Cotangents of `targets` given cotangents `seeds` for `roots`. With `record`, the pass is itself
 * recorded so its results can be differentiated again. Cotangents that are no longer needed are
 * freed as the pass goes, so peak memory stays near the forward pass's.
 */
export function backward(roots: readonly Tensor[], seeds: readonly Tensor[], targets: readonly Tensor[], record: boolean): Tensor[] {
  const isTarget = new Set(targets);
  // Post-order over the traced graph, stopping at targets; `relevant` marks tensors on a path to one.
  const order: Tensor[] = [];
  const relevant = new Set<Tensor>();
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [];
  for (const r of roots) if (r.requiresGrad && !seen.has(r)) { seen.add(r); stack.push([r, 0]); }
  while (stack.length) {
    const top = stack[stack.length - 1];
    const t = top[0];
    const inputs = !isTarget.has(t) && t._node ? t._node.inputs : [];
    if (top[1] < inputs.length) {
      const c = inputs[top[1]++];
      if (c.requiresGrad && !seen.has(c)) { seen.add(c); stack.push([c, 0]); }
      continue;
    }
    stack.pop();
    if (isTarget.has(t) || inputs.some((c) => relevant.has(c))) relevant.add(t);
    order.push(t);
  }

  const firstId = peekNextId();
  const grads = new Map<Tensor, Tensor>();
  const holders = new Map<Tensor, number>();
  const put = (t: Tensor, g: Tensor) => { grads.set(t, g); holders.set(g, (holders.get(g) ?? 0) + 1); };
  const drop = (t: Tensor) => {
    const g = grads.get(t)!;
    grads.delete(t);
    const n = holders.get(g)! - 1;
    if (n > 0) holders.set(g, n);
    else { holders.delete(g); if (g.id >= firstId) g.dispose(); }
  };
  const accumulate = (t: Tensor, g: Tensor) => {
    if (!grads.has(t)) { put(t, g); return; }
    const s = ops.add(grads.get(t)!, g);
    drop(t);
    if (!holders.has(g) && g.id >= firstId) g.dispose();
    put(t, s);
  };

  const pass = () => {
    roots.forEach((r, i) => { if (relevant.has(r)) accumulate(r, seeds[i]); });
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      if (isTarget.has(t) || !grads.has(t)) continue;
      const node = t._node!;
      const needs = node.inputs.map((c) => relevant.has(c));
      const g = grads.get(t)!;
      const gi = tidy(() => primitives[node.prim].vjp!(g, node.inputs, t, node.attrs, needs));
      node.inputs.forEach((c, i) => {
        const gc = gi[i];
        if (!needs[i] || !gc) { if (gc && gc.id >= firstId && gc !== g && !holders.has(gc)) gc.dispose(); return; }
        if (gc.shape.length !== c.shape.length || gc.shape.some((d, j) => d !== c.shape[j])) {
          throw new Error(`internal: the ${node.prim} rule gave a cotangent ${shp(gc.shape)} for an input ${shp(c.shape)}`);
        }
        accumulate(c, gc);
      });
      drop(t);
    }
    return targets.map((x) => {
      const g = grads.get(x);
      if (!g) return ops.zeros(x.shape, { dtype: x.dtype });
      // A cotangent may be shared by several targets (x + x) or be a caller's seed: hand out a fresh handle.
      return holders.get(g)! > 1 || g.id < firstId ? stopGradientOrAlias(g) : g;
    });
  };

  internal.replaying++;
  const prev = tape.recording;
  tape.recording = record;
  try {
    return pass();
  } finally {
    tape.recording = prev;
    internal.replaying--;
  }
}

/** A second handle on the same values that keeps g's graph (for recorded passes) or not. */
const stopGradientOrAlias = (g: Tensor): Tensor => (g.requiresGrad ? ops.reshape(g, g.shape) : stopGradient(g));

function checkScalar(name: string, y: unknown): Tensor {
  if (!(y instanceof Tensor) || y.size !== 1) {
    const what = y instanceof Tensor ? `a tensor of shape ${shp(y.shape)}` : typeof y;
    throw new Error(`${name}: the function must return a one-element tensor (a scalar loss), got ${what}`);
  }
  return y;
}

/** Traces f on watched aliases of the leaves of `primals`. */
function trace<P, O>(f: (p: P, ...a: any[]) => O, primals: P, args: any[]): { watched: Tensor[]; out: O } {
  const prev = tape.recording;
  tape.recording = true;
  try {
    const watched = treeLeaves(primals).map(watch);
    return { watched, out: f(treeUnflatten(primals, watched), ...args) };
  } finally {
    tape.recording = prev;
  }
}

export interface GradOptions {
  /** f returns [loss, aux]; aux (any tree) is passed through untouched. */
  hasAux?: boolean;
}

/**
 * Returns a function computing [f(params, ...args), ∂f/∂params] for a scalar-valued f. `params` is a
 * tensor or any plain object/array of tensors; the gradient has the same structure.
 * @example const [loss, g] = valueAndGrad((p) => p.w.mul(x).sum())({ w })
 */
export function valueAndGrad<P, A extends any[]>(f: (params: P, ...args: A) => any, opts: GradOptions = {}) {
  return (params: P, ...args: A): [any, P] => {
    const outer = tape.depth;
    tape.depth++;
    try {
      return tidy(() => {
        const { watched, out } = trace(f, params, args);
        const [y, aux] = opts.hasAux ? (out as [Tensor, unknown]) : [out, undefined];
        checkScalar('valueAndGrad', y);
        const gs = backward([y], [ops.onesLike(y)], watched, outer > 0);
        const value = outer > 0 ? y : stopGradient(y);
        return [opts.hasAux ? [value, aux] : value, treeUnflatten(params, gs)] as [any, P];
      });
    } finally {
      tape.depth--;
    }
  };
}

/**
 * The gradient of a scalar-valued f with respect to its first argument (a tensor or a tree of them).
 * Nest it freely: grad(x => grad(f)(x).sum()) is a second derivative.
 * @example const df = grad((x: Tensor) => x.tanh().sum()); df(x)  // 1 - tanh(x)^2
 */
export function grad<P, A extends any[]>(f: (params: P, ...args: A) => Tensor, opts: GradOptions = {}) {
  const vg = valueAndGrad(f, opts);
  return (params: P, ...args: A): P => tidy(() => vg(params, ...args)[1]);
}

/**
 * Runs f and returns its output with a function that maps an output cotangent to input cotangents
 * (vector-Jacobian product). The recorded graph lives until `out` is disposed.
 */
export function vjp<P, O>(f: (p: P) => O, primals: P): [O, (cotangent: O) => P] {
  const outer = tape.depth;
  tape.depth++;
  let traced: { watched: Tensor[]; out: O };
  try {
    traced = tidy(() => trace(f, primals, []));
    // The graph holds the aliases it needs; the handles would otherwise outlive every scope.
    for (const w of traced.watched) w.dispose();
  } finally {
    tape.depth--;
  }
  const back = (cotangent: O): P => {
    const roots = treeLeaves(traced.out), seeds = treeLeaves(cotangent);
    if (roots.length !== seeds.length) throw new Error(`vjp: the cotangent has ${seeds.length} tensors, the output ${roots.length}`);
    roots.forEach((r, i) => {
      if (r.shape.join() !== seeds[i].shape.join()) throw new Error(`vjp: cotangent ${shp(seeds[i].shape)} does not match output ${shp(r.shape)}`);
    });
    return treeUnflatten(primals, tidy(() => backward(roots, seeds, traced.watched, outer > 0 || tape.depth > 0)));
  };
  return [traced!.out, back];
}

/**
 * Jacobian-vector product: [f(primals), J·tangents]. Computed by transposing the vector-Jacobian
 * product (two reverse passes over a recorded graph), not by a separate forward-mode rule set.
 */
export function jvp<P, O extends Tree>(f: (p: P) => O, primals: P, tangents: P): [O, O] {
  const outer = tape.depth;
  tape.depth++;
  try {
    return tidy(() => {
      const { watched, out } = trace(f, primals, []);
      const roots = treeLeaves(out);
      const vs = treeLeaves(tangents);
      if (vs.length !== watched.length) throw new Error(`jvp: ${vs.length} tangents for ${watched.length} primals`);
      // u ↦ Jᵀu is linear in u, so the gradient of <Jᵀu, v> with respect to u is J v.
      const us = roots.map((r) => watch(ops.zerosLike(r)));
      const jtu = backward(roots, us, watched, true);
      const inner = jtu.map((g, i) => ops.sum(ops.mul(g, vs[i]))).reduce((a, b) => ops.add(a, b));
      const jv = backward([inner], [ops.onesLike(inner)], us, outer > 0);
      const value = roots.map((r) => (outer > 0 ? r : stopGradient(r)));
      return [treeUnflatten(out, value), treeUnflatten(out, jv)] as [O, O];
    });
  } finally {
    tape.depth--;
  }
}

/** Hessian-vector product H·v of a scalar-valued f at `primals`, without forming H. */
export function hvp<P>(f: (p: P) => Tensor, primals: P, tangents: P): P {
  const vs = treeLeaves(tangents);
  return grad((p: P) => {
    const gs = treeLeaves(grad(f)(p));
    return gs.map((g, i) => ops.sum(ops.mul(g, vs[i]))).reduce((a, b) => ops.add(a, b));
  })(primals);
}

/** The Jacobian of f: tensor -> tensor, shaped [...out.shape, ...in.shape] (one reverse pass per output). */
export function jacobian(f: (x: Tensor) => Tensor) {
  return (x: Tensor): Tensor => tidy(() => {
    const [y, back] = vjp(f, x);
    const rows: Tensor[] = [];
    for (let i = 0; i < y.size; i++) {
      const e = new Float64Array(y.size);
      e[i] = 1;
      rows.push(back(ops.tensor(e, y.shape, { dtype: y.dtype })));
    }
    const flat = rows.length ? ops.stack(rows) : ops.zeros([0, ...x.shape], { dtype: x.dtype });
    return ops.reshape(flat, [...y.shape, ...x.shape]);
  });
}

/** The Hessian of a scalar-valued f: tensor -> scalar, shaped [...x.shape, ...x.shape]. */
export const hessian = (f: (x: Tensor) => Tensor) => jacobian((x: Tensor) => grad(f)(x));

export { noGrad, stopGradient };
