// Reverse-mode autodiff and the transforms built on it. A gradient transform traces its function on
// "watched" aliases of the inputs, then walks the recorded graph backwards calling each primitive's
// rule. When another transform encloses this one, that backward pass is itself recorded, which is
// all that grad-of-grad, Hessian-vector products and higher orders need.

import { primitives } from './primitives.js';
import { internal, tape, noGrad, stopGradient, tidy, watch } from './runtime.js';
import { treeLeaves, treeUnflatten } from './pytree.js';
import { Tensor, peekNextId } from './tensor.js';
import { show } from './validate.js';
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

/** A transform's function argument, checked when the transform is made. */
function checkFunction(name: string, f: unknown): void {
  if (typeof f !== 'function') throw new TypeError(`${name}: expects a function, got ${show(f)}`);
}

/** Traces f on watched aliases of the leaves of `primals` (a tensor or a tree with at least one). */
function trace<P, O>(name: string, f: (p: P, ...a: any[]) => O, primals: P, args: any[]): { watched: Tensor[]; out: O } {
  const leaves = treeLeaves(primals);
  if (leaves.length === 0) throw new TypeError(`${name}: the argument to differentiate must be a Tensor or a tree of tensors, got ${show(primals)}`);
  const prev = tape.recording;
  tape.recording = true;
  try {
    const watched = leaves.map(watch);
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
 * What an unannotated first parameter of a function given to `grad` or `valueAndGrad` is taken to
 * be: a tensor (`(x) => x.tanh().sum()`), or a tree of tensors reached by property and index access
 * (`(p) => p.w.mul(x).sum()`, `p.layers[0].b`). The transformed function is then generic in its
 * argument: `grad((p) => ...)(params)` has the type of `params`. Annotate the parameter to have it
 * checked precisely (needed, for example, to pass the whole tree to a function that expects a
 * particular structure).
 */
export type AnyParams = Tensor & { readonly [key: string]: AnyParams };

/** What a function given to `grad` / `valueAndGrad` returns: a one-element tensor, or `[loss, aux]` with `hasAux`. */
export type LossOutput = Tensor | readonly [Tensor, unknown];

/** A function `grad` and `valueAndGrad` accept: a scalar loss of a tensor or tree (the first argument) and any further arguments. */
export type LossFn = (params: any, ...args: any[]) => LossOutput;

/** A function whose first parameter accepts `AnyParams`: one written without a type there, or typed `Tensor`, `any`, `unknown`. */
type UntypedLossFn = (params: AnyParams, ...args: any[]) => LossOutput;

/** The parameters of F after the first. */
type RestParams<F> = F extends (params: any, ...args: infer A) => any ? A : never;

/** `grad(f)`: f's arguments; the gradient with respect to the first, with its structure. */
export type GradFn<F extends LossFn> = [Parameters<F>[0]] extends [AnyParams]
  ? <T>(params: T, ...args: RestParams<F>) => T
  : (...args: Parameters<F>) => Parameters<F>[0];

/** `valueAndGrad(f)`: f's arguments; [f's value (`[loss, aux]` with `hasAux`), the gradient]. */
export type ValueAndGradFn<F extends LossFn> = [Parameters<F>[0]] extends [AnyParams]
  ? <T>(params: T, ...args: RestParams<F>) => [ReturnType<F>, T]
  : (...args: Parameters<F>) => [ReturnType<F>, Parameters<F>[0]];

// Two signatures (types only): the first for functions whose first parameter is unannotated (or
// Tensor / any / unknown), which it resolves through the conditional ValueAndGradFn; the second for
// the rest, including functions of a caller's type parameter, where a conditional type would stay
// unresolved. grad has the same two.
/**
 * Returns a function computing [f(params, ...args), ∂f/∂params] for a scalar-valued f. `params` is a
 * tensor or any plain object/array of tensors; the gradient has the same structure. With `hasAux`,
 * f returns [loss, aux] and so does the value.
 * @example const [loss, g] = valueAndGrad((p) => p.w.mul(x).sum())({ w })   // loss: Tensor, g: { w: Tensor }
 */
export function valueAndGrad<F extends UntypedLossFn>(f: F, opts?: GradOptions): ValueAndGradFn<F>;
export function valueAndGrad<F extends LossFn>(f: F, opts?: GradOptions): (...args: Parameters<F>) => [ReturnType<F>, Parameters<F>[0]];
export function valueAndGrad(f: (params: any, ...args: any[]) => any, opts: GradOptions = {}): (params: any, ...args: any[]) => [any, any] {
  return makeValueAndGrad('valueAndGrad', f, opts);
}

function makeValueAndGrad(name: string, f: (params: any, ...args: any[]) => any, opts: GradOptions): (params: any, ...args: any[]) => [any, any] {
  checkFunction(name, f);
  return (params: any, ...args: any[]): [any, any] => {
    const outer = tape.depth;
    tape.depth++;
    try {
      return tidy(() => {
        const { watched, out } = trace(name, f, params, args);
        const [y, aux] = opts.hasAux ? (out as [Tensor, unknown]) : [out, undefined];
        checkScalar(name, y);
        const gs = backward([y], [ops.onesLike(y)], watched, outer > 0);
        const value = outer > 0 ? y : stopGradient(y);
        return [opts.hasAux ? [value, aux] : value, treeUnflatten(params, gs)] as [any, any];
      });
    } finally {
      tape.depth--;
    }
  };
}

/**
 * The gradient of a scalar-valued f with respect to its first argument (a tensor or a tree of them),
 * as a function of f's arguments. Nest it freely: grad(x => grad(f)(x).sum()) is a second derivative.
 * @example const df = grad((x: Tensor) => x.tanh().sum()); df(x)  // df: (x: Tensor) => Tensor; 1 - tanh(x)^2
 */
export function grad<F extends UntypedLossFn>(f: F, opts?: GradOptions): GradFn<F>;
export function grad<F extends LossFn>(f: F, opts?: GradOptions): (...args: Parameters<F>) => Parameters<F>[0];
export function grad(f: LossFn, opts: GradOptions = {}): (params: any, ...args: any[]) => any {
  const vg = makeValueAndGrad('grad', f, opts);
  return (params: any, ...args: any[]): any => tidy(() => vg(params, ...args)[1]);
}

/**
 * Runs f and returns its output with a function that maps an output cotangent to input cotangents
 * (vector-Jacobian product). The recorded graph lives until `out` is disposed.
 */
export function vjp<P, O>(f: (p: P) => O, primals: P): [O, (cotangent: O) => P] {
  checkFunction('vjp', f);
  const outer = tape.depth;
  tape.depth++;
  let traced: { watched: Tensor[]; out: O };
  try {
    traced = tidy(() => trace('vjp', f, primals, []));
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
export function jvp<P, O>(f: (p: P) => O, primals: P, tangents: P): [O, O] {
  checkFunction('jvp', f);
  const outer = tape.depth;
  tape.depth++;
  try {
    return tidy(() => {
      const { watched, out } = trace('jvp', f, primals, []);
      const roots = treeLeaves(out);
      const vs = treeLeaves(tangents);
      if (vs.length !== watched.length || vs.some((v, i) => !(v instanceof Tensor) || v.shape.join() !== watched[i].shape.join())) {
        throw new RangeError(`jvp: tangents ${vs.map((v) => shp(v.shape)).join(' ')} do not match primals ${watched.map((v) => shp(v.shape)).join(' ')}`);
      }
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
  checkFunction('hvp', f);
  const vs = treeLeaves(tangents), ps = treeLeaves(primals);
  if (vs.length !== ps.length || vs.some((v, i) => v.shape.join() !== ps[i].shape.join())) {
    throw new RangeError(`hvp: tangents ${vs.map((v) => shp(v.shape)).join(' ')} do not match primals ${ps.map((v) => shp(v.shape)).join(' ')}`);
  }
  return grad((p: P) => {
    const gs = treeLeaves(grad(f)(p));
    return gs.map((g, i) => ops.sum(ops.mul(g, vs[i]))).reduce((a, b) => ops.add(a, b));
  })(primals);
}

/** The Jacobian of f: tensor -> tensor, shaped [...out.shape, ...in.shape] (one reverse pass per output). */
export function jacobian(f: (x: Tensor) => Tensor): (x: Tensor) => Tensor {
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
export const hessian = (f: (x: Tensor) => Tensor): ((x: Tensor) => Tensor) => jacobian((x: Tensor) => grad(f)(x));

export { noGrad, stopGradient };
