// Linear algebra over pytrees: parameters, gradients and Hessian-vector products are trees of tensors
// (principle 3), so the vector operations conjugate gradient and the implicit meta-gradient need work
// on any tree `treeLeaves` walks. A single Tensor is a tree of one leaf, so everything here works on
// flat vectors too. Every function is written in differentiable ops (dot, norm, flatten, ... have
// gradients of every order), and `cg` keeps its step sizes as tensors, so it runs on WebGPU, where
// nothing can be read back synchronously, as it does on WASM.

import { grad, vjp } from './autodiff.js';
import * as ops from './ops.js';
import { safeSqrt } from './optim.js';
import { treeLeaves, treeMap, treeUnflatten } from './pytree.js';
import type { Random } from './random.js';
import { tidy } from './runtime.js';
import { Tensor } from './tensor.js';
import { checkInt, checkOptions, show } from './validate.js';

/** A scalar factor: a number, or a one-element tensor (then differentiable). */
export type Scalar = number | Tensor;

const shp = (s: readonly number[]) => `[${s.join(', ')}]`;

function leavesOf(op: string, tree: unknown, arg = 'tree'): Tensor[] {
  const l = treeLeaves(tree);
  if (l.length === 0) throw new TypeError(`${op}: ${arg} must be a Tensor or a tree of tensors, got ${show(tree)}`);
  return l;
}

/** The leaves of a and b, checked to match one for one in shape. */
function pairLeaves(op: string, a: unknown, b: unknown): [Tensor[], Tensor[]] {
  const x = leavesOf(op, a, 'a'), y = leavesOf(op, b, 'b');
  if (x.length !== y.length) throw new RangeError(`${op}: the trees differ (${x.length} vs ${y.length} leaves)`);
  x.forEach((t, i) => {
    if (t.shape.join() !== y[i].shape.join()) throw new RangeError(`${op}: leaf ${i} is ${shp(t.shape)} in a but ${shp(y[i].shape)} in b`);
  });
  return [x, y];
}

function checkScalar(op: string, alpha: unknown): Scalar {
  if (typeof alpha === 'number') return alpha;
  if (alpha instanceof Tensor && alpha.size === 1) return alpha.rank === 0 ? alpha : ops.reshape(alpha, []);
  throw new TypeError(`${op}: alpha must be a number or a one-element tensor, got ${alpha instanceof Tensor ? `a ${shp(alpha.shape)} tensor` : show(alpha)}`);
}

/** Σ over leaves of Σ a·b: a scalar tensor (differentiable in both). */
export function dot<T>(a: T, b: T): Tensor {
  const [x, y] = pairLeaves('dot', a, b);
  return tidy(() => x.map((t, i) => ops.dot(t, y[i])).reduce((s, d) => ops.add(s, d)));
}

/** The Euclidean norm over all leaves. Its derivative at 0 is taken as 0 (not NaN). */
export const norm = <T>(a: T): Tensor => tidy(() => safeSqrt(dot(a, a)));

/** alpha·x + y, leaf by leaf. */
export function axpy<T>(alpha: Scalar, x: T, y: T): T {
  const a = checkScalar('axpy', alpha);
  pairLeaves('axpy', x, y);
  return tidy(() => treeMap((xi, yi) => ops.add(ops.mul(xi, a), yi), x, y));
}

/** alpha·x, leaf by leaf. */
export function scale<T>(alpha: Scalar, x: T): T {
  const a = checkScalar('scale', alpha);
  leavesOf('scale', x, 'x');
  return tidy(() => treeMap((xi) => ops.mul(xi, a), x));
}

/** x + y, leaf by leaf. */
export function add<T>(x: T, y: T): T {
  pairLeaves('add', x, y);
  return treeMap(ops.add, x, y);
}

/** x − y, leaf by leaf. */
export function sub<T>(x: T, y: T): T {
  pairLeaves('sub', x, y);
  return treeMap(ops.sub, x, y);
}

/** Zeros shaped like each leaf. */
export const zerosLike = <T>(x: T): T => { leavesOf('zerosLike', x, 'x'); return treeMap(ops.zerosLike, x); };

/** The leaves, each flattened, concatenated in treeLeaves order: a [n] tensor. Differentiable. */
export function flatten(tree: unknown): Tensor {
  const leaves = leavesOf('flatten', tree);
  const dtype = leaves[0].dtype;
  leaves.forEach((l, i) => {
    if (l.dtype !== dtype) throw new TypeError(`flatten: leaf ${i} is ${l.dtype}, leaf 0 ${dtype}; one vector holds one dtype`);
  });
  return tidy(() => {
    const parts = leaves.map((l) => ops.reshape(l, [l.size]));
    return parts.length === 1 ? parts[0] : ops.concat(parts, 0);
  });
}

/** The inverse of flatten: a tree shaped like `like` whose leaves are consecutive pieces of `vec`. Differentiable. */
export function unflatten<T>(like: T, vec: Tensor): T {
  const leaves = leavesOf('unflatten', like, 'like');
  const n = leaves.reduce((s, l) => s + l.size, 0);
  if (!(vec instanceof Tensor) || vec.rank !== 1 || vec.size !== n) {
    throw new RangeError(`unflatten: expected a [${n}] vector for a tree of ${leaves.length} leaves, got ${vec instanceof Tensor ? shp(vec.shape) : show(vec)}`);
  }
  return tidy(() => {
    let at = 0;
    return treeUnflatten(like, leaves.map((l) => {
      const piece = ops.reshape(ops.slice(vec, [at], [l.size]), l.shape);
      at += l.size;
      return piece;
    }));
  });
}

/**
 * v ↦ H·v for the Hessian H of a scalar f at `at`, with the gradient's graph recorded once: each
 * product is then one backward pass over it (hvp() re-traces f and its gradient for every product,
 * twice the work). The graph lives in the calling scope: the function is valid until that scope
 * ends, which frees it. Hv = Jᵀv for J the Jacobian of ∇f, as H is symmetric.
 */
export function hvpOperator<P>(f: (p: P) => Tensor, at: P): (v: P) => P {
  const [, back] = vjp((p: P) => grad(f)(p), at);
  return back;
}

export interface CGOptions<T> {
  /** Starting point (default zeros). */
  x0?: T;
  /** The most iterations (matrix-vector products, one more with x0). n iterations solve an n-dimensional system exactly in exact arithmetic. */
  maxIter: number;
  /** Stop once ||r|| <= max(tol·||b||, atol), r = b − A x the recurrence residual. Default 0 (run maxIter iterations unless r is exactly 0). */
  tol?: number;
  /** Absolute residual tolerance (default 0). */
  atol?: number;
  /**
   * Where the backend reads synchronously (WASM, ref), read one flag after each iteration and stop
   * as soon as CG has converged or met non-positive curvature (default true). The result is the
   * same either way: without it the remaining iterations are masked no-ops.
   */
  earlyExit?: boolean;
}

export interface CGResult<T> {
  /** The approximate solution. */
  x: T;
  /** Iterations that moved x. NaN on backends that cannot read synchronously (see `stats`). */
  iterations: number;
  /** ||b − A x|| by the CG recurrence, at exit. NaN where not readable synchronously. */
  residual: number;
  /** True if some p had p·Ap <= 0 (the operator is not positive definite): x is the iterate before it. Undefined where not readable synchronously. */
  negativeCurvature?: boolean;
  /** Only on backends that cannot read synchronously (WebGPU): the same figures as scalar tensors (negativeCurvature 0 or 1), to await. */
  stats?: { iterations: Tensor; residual: Tensor; negativeCurvature: Tensor };
}

/** The first value of t now, or null where the backend can only read asynchronously. */
function readNow(t: Tensor): number | null {
  const d = t.liveData('cg');
  const v = d.backend.readSync(d.storage);
  return v === null ? null : v[0];
}

/**
 * Conjugate gradient for A x = b, A symmetric positive definite, given as a function on trees
 * (Hestenes & Stiefel 1952; the textbook loop of Nocedal & Wright, Algorithm 5.2):
 *
 *   r = b − A x, p = r;  repeat: α = r·r / p·Ap, x += α p, r −= α Ap, β = r'·r' / r·r, p = r' + β p
 *
 * Where p·Ap <= 0 the operator is not positive definite along p: CG stops there, before dividing,
 * and reports `negativeCurvature` with the current x (what truncated Newton-CG wants). α and β stay
 * tensors and both stopping tests are masks (an iteration after a stop is a no-op: α = β = 0), so
 * the loop needs no read-back and runs unchanged on WebGPU; where the backend reads synchronously it
 * also exits early (`earlyExit`). Each iteration runs in a scope of its own: only x, r, p and a few
 * scalars outlive it, so memory does not grow with maxIter.
 *
 * Differentiable when matvec and b are (the iterations are ordinary ops), though implicit
 * differentiation is usually what one wants instead.
 * @example const { x } = cg((v) => A.matmul(v.reshape([n, 1])).reshape([n]), b, { maxIter: n });
 */
export function cg<T>(matvec: (v: T) => T, b: T, o: CGOptions<T>): CGResult<T> {
  if (typeof matvec !== 'function') throw new TypeError(`cg: matvec must be a function, got ${show(matvec)}`);
  const bl = leavesOf('cg', b, 'b');
  checkOptions('cg', o);
  if (o === undefined) throw new TypeError('cg: options { maxIter } are required');
  checkInt('cg', 'maxIter', o.maxIter, 0);
  const tol = o.tol ?? 0, atol = o.atol ?? 0;
  for (const [k, v] of [['tol', tol], ['atol', atol]] as const) {
    if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`cg: ${k} must be a number >= 0, got ${show(v)}`);
  }
  if (o.x0 !== undefined) pairLeaves('cg', o.x0, b);
  const dtype = bl[0].dtype;

  interface State { x: T; r: T; p: T; rr: Tensor; active: Tensor; iters: Tensor; neg: Tensor }
  const alias = (t: Tensor) => ops.reshape(t, t.shape);   // a handle this loop may dispose
  const thr2 = tidy(() => ops.maximum(ops.mul(dot(b, b), tol * tol), atol * atol));
  let s: State = tidy(() => {
    const x = o.x0 !== undefined ? treeMap(alias, o.x0) : treeMap(ops.zerosLike, b);
    const r = o.x0 !== undefined ? treeMap(ops.sub, b, matvec(o.x0)) : treeMap(alias, b);
    const rr = dot(r, r);
    return { x, r, p: treeMap(alias, r), rr, active: ops.greater(rr, thr2), iters: ops.zeros([], { dtype }), neg: ops.zeros([], { dtype }) };
  });
  const free = (st: State) => { for (const t of [...treeLeaves([st.x, st.r, st.p]), st.rr, st.active, st.iters, st.neg]) t.dispose(); };
  const early = o.earlyExit !== false && readNow(s.active) !== null;

  for (let k = 0; k < o.maxIter; k++) {
    if (early && readNow(s.active) === 0) break;
    const next: State = tidy(() => {
      const Ap = matvec(s.p);
      pairLeaves('cg (matvec result)', Ap, b);
      const pAp = dot(s.p, Ap);
      const curved = ops.greater(pAp, 0);
      const go = ops.mul(s.active, curved);                           // 1 while iterating
      const neg = ops.add(s.neg, ops.mul(s.active, ops.sub(1, curved)));
      const alpha = ops.mul(go, ops.div(s.rr, ops.where(curved, pAp, 1)));
      const x = axpy(alpha, s.p, s.x);
      const r = axpy(ops.neg(alpha), Ap, s.r);
      const rr = dot(r, r);
      const beta = ops.mul(go, ops.div(rr, ops.where(ops.greater(s.rr, 0), s.rr, 1)));
      const p = axpy(beta, s.p, r);
      return { x, r, p, rr, active: ops.mul(go, ops.greater(rr, thr2)), iters: ops.add(s.iters, go), neg };
    });
    free(s);
    s = next;
  }

  const residual = tidy(() => ops.sqrt(s.rr));
  const out: CGResult<T> = { x: s.x, iterations: NaN, residual: NaN };
  const [it, res, neg] = [readNow(s.iters), readNow(residual), readNow(s.neg)];
  if (it !== null && res !== null && neg !== null) {
    Object.assign(out, { iterations: it, residual: res, negativeCurvature: neg > 0 });
    for (const t of [s.iters, residual, s.neg]) t.dispose();
  } else {
    out.stats = { iterations: s.iters, residual, negativeCurvature: s.neg };
  }
  for (const t of [...treeLeaves([s.r, s.p]), s.rr, s.active, thr2]) t.dispose();
  return out;
}

export interface HutchinsonOptions {
  /** How many probe vectors v to average ||H v||² over. */
  probes: number;
  /** Draws the probes (the same seed gives the same probes on every backend). */
  rng: Random;
  /** Entries ±1 with equal odds ('rademacher', default: the lower variance) or standard normal. */
  dist?: 'rademacher' | 'gaussian';
}

/**
 * Hutchinson's estimator of the squared Frobenius norm of a symmetric operator H given by its
 * products: ||H||_F² = tr(H²) = E_v ||H v||² for probes with E[v vᵀ] = I (Hutchinson 1990). Returns
 * the mean of ||H v||² over `probes` probes drawn from `rng`: for a fixed set of probes this is an
 * ordinary differentiable function, so with `hvpFn = (v) => hvp(f, params, v)` its gradient with
 * respect to `params` is exact for those probes (a third derivative of f, through hvp) — a
 * curvature penalty one can train against.
 * @example const fro2 = hutchinsonFrobenius((v) => hvp(loss, params, v), params, { probes: 8, rng: new Random(0) });
 */
export function hutchinsonFrobenius<T>(hvpFn: (v: T) => T, like: T, o: HutchinsonOptions): Tensor {
  if (typeof hvpFn !== 'function') throw new TypeError(`hutchinsonFrobenius: hvpFn must be a function, got ${show(hvpFn)}`);
  const leaves = leavesOf('hutchinsonFrobenius', like, 'like');
  checkOptions('hutchinsonFrobenius', o);
  if (o === undefined) throw new TypeError('hutchinsonFrobenius: options { probes, rng } are required');
  checkInt('hutchinsonFrobenius', 'probes', o.probes, 1);
  if (!o.rng || typeof o.rng.uniformValues !== 'function') throw new TypeError(`hutchinsonFrobenius: rng must be a Random, got ${show(o.rng)}`);
  const dist = o.dist ?? 'rademacher';
  if (dist !== 'rademacher' && dist !== 'gaussian') throw new TypeError(`hutchinsonFrobenius: dist must be 'rademacher' or 'gaussian', got ${show(dist)}`);
  const probe = (): T => treeUnflatten(like, leaves.map((l) => {
    if (dist === 'gaussian') return o.rng.normal(l.shape, { dtype: l.dtype });
    const u = o.rng.uniformValues(l.size);
    return ops.tensor(Float64Array.from(u, (x) => (x < 0.5 ? -1 : 1)), l.shape, { dtype: l.dtype });
  }));
  return tidy(() => {
    let total: Tensor | null = null;
    for (let k = 0; k < o.probes; k++) {
      const sq: Tensor = tidy(() => { const hv = hvpFn(probe()); return dot(hv, hv); });
      const next: Tensor = total === null ? sq : ops.add(total, sq);
      if (total !== null) { total.dispose(); sq.dispose(); }
      total = next;
    }
    return ops.div(total!, o.probes);
  });
}

/**
 * The exact squared Frobenius norm of the Hessian of f at `params`: the sum over unit vectors e_i of
 * ||H e_i||² (one Hessian-vector product each), for models of at most `limit` parameters (default
 * 2000): the check of hutchinsonFrobenius. Differentiable like it.
 */
export function hessianFrobenius<P>(f: (p: P) => Tensor, params: P, limit = 2000): Tensor {
  const leaves = leavesOf('hessianFrobenius', params, 'params');
  const n = leaves.reduce((s, l) => s + l.size, 0);
  if (n > limit) throw new RangeError(`hessianFrobenius: ${n} parameters, more than the ${limit} an exact norm is computed for (use hutchinsonFrobenius)`);
  return tidy(() => {
    const hv = hvpOperator(f, params);
    let total: Tensor | null = null;
    leaves.forEach((l, li) => {
      for (let k = 0; k < l.size; k++) {
        const e = treeUnflatten(params, leaves.map((m, mi) => {
          const v = new Float64Array(m.size);
          if (mi === li) v[k] = 1;
          return ops.tensor(v, m.shape, { dtype: m.dtype });
        }));
        const h = hv(e);
        const sq = dot(h, h);
        total = total === null ? sq : ops.add(total, sq);
      }
    });
    return total!;
  });
}
