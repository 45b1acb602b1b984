// WGSL sources for the WebGPU backend. Every shader shares one layout: binding 0 is a uniform block
// of PARAM_WORDS u32 parameters (shapes, strides, geometry), bindings 1.. are storage buffers in the
// order the host passes them. Shapes live in the parameters rather than in the source, so one
// pipeline serves every shape: pipeline creation is the expensive part on SwiftShader.

/** u32 words of parameters every dispatch binds (512 bytes, a multiple of the 256-byte offset alignment). */
export const PARAM_WORDS = 128;
/** Threads per workgroup of the one-thread-per-element kernels. */
export const WG = 64;
/** Threads per workgroup of the tree reductions (one workgroup per output element). */
export const RED_WG = 64;

/** Tiled matmul geometry: a WY x WX thread grid, each thread a TM x TN register block, BK-deep tiles. */
export const MM = { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 } as const;
export const MM_BM = MM.WY * MM.TM;
export const MM_BN = MM.WX * MM.TN;

const ro = (binding: number, name: string, ty = 'f32') =>
  `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${ty}>;`;
const rw = (binding: number, name: string, ty = 'f32') =>
  `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<${ty}>;`;

const PRELUDE = /* wgsl */ `
@group(0) @binding(0) var<uniform> PRM: array<vec4<u32>, ${PARAM_WORDS / 4}>;
fn prm(k: u32) -> u32 { return PRM[k >> 2u][k & 3u]; }
fn prmi(k: u32) -> i32 { return i32(PRM[k >> 2u][k & 3u]); }
// Non-finite constants must not be constant expressions (that is a shader-creation error), so they
// are bit patterns read from private variables at run time.
var<private> INF_BITS: u32 = 0x7f800000u;
var<private> NAN_BITS: u32 = 0x7fc00000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn nan() -> f32 { return bitcast<f32>(NAN_BITS); }
`;

/** Entry point of a kernel with one thread per element, i < prm(0); 2D grid past 65535 workgroups. */
const perElement = (body: string) => /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + li;
  if (i >= prm(0u)) { return; }
${body}
}`;

// ---------------------------------------------------------------------------------------------
// Elementwise: unary, binary, where, and every strided copy (transpose, slice, pad, concat, ...)
//
// IEEE semantics. The WGSL spec lets an implementation assume that no NaN or infinity occurs, and
// leaves the builtins' results on them (and log/pow/sqrt outside their domain) undefined. Measured on
// Dawn + SwiftShader: exp(NaN) = +Inf, log(0) = -88.03, log(-1) = 0 (log|x|), log(NaN) = 89.1,
// `x != x` is false for NaN (so `v != v` tests and notEqual lost NaN), pow ignored NaN and signed
// zeros, subnormals are flushed to zero, and fma is not fused. So every special value here is decided
// on the bit pattern (never on `x != x`), non-finite constants are built from bits (PRELUDE), and the
// results follow the reference backend exactly (JavaScript Math semantics, as PyTorch for these cases).
// The one difference left is the device's: subnormal results (below 1.2e-38) are flushed to zero.
//
// Accuracy. The builtins were measured against float64 (max error in float32 ulps, Dawn/SwiftShader):
// exp 64 (grows with |x|), log 1.0e5 near x = 1 (absolute error ~1e-7), tanh 1.2e7 (0 or 6e-8
// for |x| < 1e-7, 3000 ulp at 2e-4), sin/cos 4e8 over |x| <= 1e4 (absolute error 1.9e-4 on
// [-3, 3], 8e-4 at 1e4), pow 103; sqrt and division were correctly rounded (0.5) and are kept. The
// replacements below are the Cephes float32 algorithms (Moshier), with range reductions written so
// they are exact in float32, and double-float (hi + lo) arithmetic where float32 is not enough (pow's
// and log's log2). Their measured errors are listed beside each; tests/special-values.test.ts checks them.

/** WGSL helpers by name (name ends in '_'); a shader gets those its expression uses, with their dependencies. */
const MATH_LIB: Record<string, string> = {
  isnan_: `fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`,
  isinf_: `fn isinf_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }`,
  finite_: `fn finite_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) < 0x7f800000u; }`,
  iszero_: `fn iszero_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0u; }`,
  // Comparisons are false when either side is NaN (decided on bits, not left to the driver).
  ordered_: `fn ordered_(a: f32, b: f32) -> bool { return !(isnan_(a) || isnan_(b)); }`,
  neg_: `fn neg_(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ 0x80000000u); }`,
  abs_: `fn abs_(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) & 0x7fffffffu); }`,
  // x <= 0 gives +0 (-0 and -Inf included), NaN stays NaN: integer compares on the bits.
  relu_: `fn relu_(x: f32) -> f32 { let u = bitcast<u32>(x); return select(x, 0.0, u >= 0x80000000u && u <= 0xff800000u); }`,
  sign_: `fn sign_(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let s = select(select(1.0, -1.0, u >= 0x80000000u), 0.0, (u & 0x7fffffffu) == 0u);
  return select(s, x, isnan_(x));
}`,
  // Math.max / Math.min: NaN if either is NaN, and max(-0, +0) = +0, min(-0, +0) = -0 (the bits of
  // equal values are the same but for the sign of zero, so AND / OR of the bits picks the right one).
  max_: `fn max_(a: f32, b: f32) -> f32 {
  let m = select(select(b, a, a > b), bitcast<f32>(bitcast<u32>(a) & bitcast<u32>(b)), a == b);
  return select(m, nan(), !ordered_(a, b));
}`,
  min_: `fn min_(a: f32, b: f32) -> f32 {
  let m = select(select(b, a, a < b), bitcast<f32>(bitcast<u32>(a) | bitcast<u32>(b)), a == b);
  return select(m, nan(), !ordered_(a, b));
}`,
  // sqrt(-0) = -0; below zero (subnormals included) NaN.
  sqrt_: `fn sqrt_(x: f32) -> f32 { return select(sqrt(x), nan(), isnan_(x) || bitcast<u32>(x) > 0x80000000u); }`,

  // Double-float arithmetic: exact products by splitting into 12-bit halves on the bits (fma is not
  // fused on SwiftShader, and a Veltkamp split could be reassociated), exact sums by Knuth's TwoSum.
  split_: `fn split_(a: f32) -> vec2<f32> { let h = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u); return vec2<f32>(h, a - h); }`,
  twoProd_: `fn twoProd_(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  let x = split_(a);
  let y = split_(b);
  return vec2<f32>(p, ((x.x * y.x - p) + x.x * y.y + x.y * y.x) + x.y * y.y);
}`,
  twoSum_: `fn twoSum_(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}`,
  // 2^n for integer n in [-252, 254], in two factors (each a normal float32).
  ldexp_: `fn ldexp_(x: f32, n: i32) -> f32 {
  let h = n / 2;
  return x * bitcast<f32>(u32(h + 127) << 23u) * bitcast<f32>(u32(n - h + 127) << 23u);
}`,
  // e^(r + rl) for |r| <= 0.35, |rl| << |r|: Cephes expf polynomial.
  expCore_: `fn expCore_(r: f32, rl: f32) -> f32 {
  let p = ((((1.9875691500e-4 * r + 1.3981999507e-3) * r + 8.3334519073e-3) * r + 4.1665795894e-2) * r
    + 1.6666665459e-1) * r + 5.0000001201e-1;
  let y = (r * r * p + r) + 1.0;
  return y + rl * y;
}`,
  // exp: x = n ln2 + r with ln2 in two parts (Cody-Waite; n ln2_hi is exact for |n| < 2^15), then the
  // polynomial. Measured max error 0.95 ulp over [-87, 88.7] (builtin: 64).
  exp_: `fn exp_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  let xc = clamp(x, -104.0, 89.0);
  let n = round(xc * 1.44269504089);
  let r = (xc - n * 0.693359375) - n * -2.12194440e-4;
  return ldexp_(expCore_(r, 0.0), i32(n));
}`,
  // log2(x) as hi + lo (relative error ~2^-34) for finite x > 0, subnormals included (decoded from the
  // bits): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log2 m = (2/ln2) atanh(s), s = (m - 1)/(m + 1),
  // with s, s^3/3 and the products by 2/ln2 in double-float and the rest of the series in float32.
  log2dd_: `fn log2dd_(x: f32) -> vec2<f32> {
  var u = bitcast<u32>(x);
  var e = i32(u >> 23u) - 127;
  if ((u >> 23u) == 0u) {
    let v = bitcast<u32>(f32(u));
    e = i32(v >> 23u) - 276;
    u = v;
  }
  var m = bitcast<f32>((u & 0x007fffffu) | 0x3f800000u);
  if (m > 1.41421356) { m = m * 0.5; e = e + 1; }
  let f = m - 1.0;
  let d = twoSum_(m, 1.0);
  let sh = f / d.x;
  let p = twoProd_(sh, d.x);
  let sl = (((f - p.x) - p.y) - sh * d.y) / d.x;
  let z = twoProd_(sh, sh);
  let zl = z.y + 2.0 * sh * sl;
  let c = twoProd_(z.x, sh);
  let cl = c.y + z.x * sl + zl * sh;
  let w = z.x;
  let tail = c.x * w * (0.2 + w * (0.142857143 + w * (0.111111111 + w * (0.0909090909 + w * (0.0769230769 + w * 0.0666666667)))));
  let q = twoProd_(c.x, 0.3333333432674408);
  let ql = q.y + c.x * -9.934107758624577e-9 + cl * 0.3333333432674408;
  let a = twoSum_(sh, q.x);
  let al = a.y + sl + ql + tail;
  let l = twoProd_(a.x, 2.885390043258667);
  let ll = l.y + a.x * 3.851926067000022e-8 + al * 2.885390043258667;
  let t = twoSum_(f32(e), l.x);
  let tl = t.y + ll;
  let hi = t.x + tl;
  return vec2<f32>(hi, tl - (hi - t.x));
}`,
  // log: measured max error 0.5 ulp (builtin: 1e5 ulp near 1).
  log_: `fn log_(x: f32) -> f32 {
  if (isnan_(x) || bitcast<u32>(x) > 0x80000000u) { return nan(); }
  if (iszero_(x)) { return -inf(); }
  if (isinf_(x)) { return x; }
  let l = log2dd_(x);
  let p = twoProd_(l.x, 0.6931471824645996);
  return p.x + (p.y + l.x * -1.9046542121259336e-9 + l.y * 0.6931471824645996);
}`,
  // a^b for finite a > 0, b: 2^(b log2 a) with b log2 a in double-float, so the result keeps float32
  // accuracy at large exponents. Measured max error 1.1 ulp, bases 1e-30..1e30 (builtin: 103).
  powPos_: `fn powPos_(a: f32, b: f32) -> f32 {
  let l = log2dd_(a);
  let t = twoProd_(b, l.x);
  if (t.x > 130.0) { return inf(); }
  if (t.x < -160.0) { return 0.0; }
  let tl = t.y + b * l.y;
  let n = round(t.x);
  let f = (t.x - n) + tl;
  let g = twoProd_(f, 0.6931471824645996);
  return ldexp_(expCore_(g.x, g.y + f * -1.9046542121259336e-9), i32(n));
}`,
  // IEEE 754's pow, special values included (1^y = 1 even for a NaN y, (-1)^(+-Inf) = 1, otherwise a
  // NaN exponent gives NaN; signed zeros, odd integer exponents of negative bases).
  pow_: `fn pow_(a: f32, b: f32) -> f32 {
  if (bitcast<u32>(a) == 0x3f800000u) { return 1.0; }
  if (isnan_(b)) { return b; }
  if (iszero_(b)) { return 1.0; }
  if (isnan_(a)) { return a; }
  let ua = bitcast<u32>(a);
  let aa = abs_(a);
  let neg = ua >= 0x80000000u;
  if (isinf_(b)) {
    if (aa == 1.0) { return 1.0; }
    return select(0.0, inf(), (aa > 1.0) == (bitcast<u32>(b) < 0x80000000u));
  }
  let whole = floor(b) == b;
  let odd = whole && abs(b) < 16777216.0 && (i32(b) & 1) != 0;
  if (iszero_(a) || isinf_(a)) {
    let mag = select(0.0, inf(), iszero_(a) == (bitcast<u32>(b) >= 0x80000000u));
    return select(mag, neg_(mag), neg && odd);
  }
  if (neg && !whole) { return nan(); }
  let r = powPos_(aa, b);
  return select(r, -r, neg && odd);
}`,
  // tanh: |x| < 0.625 Cephes tanhf polynomial, else 1 - 2/(e^2|x| + 1) (no cancellation there);
  // +-1 beyond 9.1, x itself below 2^-12 (keeps -0). Measured max error 1.3 ulp (builtin: 1.2e7).
  tanh_: `fn tanh_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  let a = abs_(x);
  if (a < 0.000244140625) { return x; }
  if (a < 0.625) {
    let z = x * x;
    return x + x * z * ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
      + 1.33314422036e-1) * z - 3.33332819422e-1);
  }
  var r = 1.0;
  if (a < 9.1) { r = 1.0 - 2.0 / (exp_(2.0 * a) + 1.0); }
  return select(r, -r, x < 0.0);
}`,
  // sigmoid through e^-|x| (no overflow, no cancellation). Measured max error 2.6 ulp (was 2.8 with
  // the builtin exp; the error is now the two roundings of 1/(1 + e) and e * s).
  sigmoid_: `fn sigmoid_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  let e = exp_(-abs_(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= 0.0);
}`,
  // sin and cos: x = k pi/2 + r, |r| <= pi/4, by Cody-Waite with pi/2 = C1 + C2 + C3 + C4: C1 and C2
  // of 8 and 11 significant bits (k C1 and k C2 are exact for |k| < 2^13, i.e. |x| < 12868), C3 the
  // float32 rounding of the rest with k C3 taken exactly (twoProd_), C4 what remains (1e-15), so r is
  // rounded once, relative to itself, even next to the zeros of the function; then Cephes' sinf/cosf
  // polynomials on [-pi/4, pi/4]. Measured max error 1.5 ulp over |x| <= 1e4, next to the zeros
  // included (builtin: absolute error 1.9e-4 on [-3, 3], 8e-4 on |x| <= 1e4, 4e8 ulp). Beyond
  // |x| ~ 12868 k C2, and beyond ~1e5 k C1, are rounded: the absolute error grows with |x|, measured
  // 1e-6 on |x| <= 1e5 and 3e-2 on |x| <= 1e6 (half the float32 spacing of x there, 0.0625); results
  // stay in [-1, 1]. Inf and NaN give NaN.
  // q = quadrant offset: 0 for sin, 1 for cos.
  sincos_: `fn sincos_(x: f32, q0: u32) -> f32 {
  if (!finite_(x)) { return nan(); }
  if (abs_(x) < 0.000244140625) { return select(x, 1.0, q0 == 1u); }
  let k = round(x * 0.636619772367581);
  let p = twoProd_(k, 7.549790126404332e-8);
  let r = (((x - k * 1.5703125) - k * 4.837512969970703e-4) - p.x) - (p.y + k * -1.7151245100058819e-15);
  let q = (u32(i32(k - 4.0 * floor(k * 0.25))) + q0) & 3u;
  let z = r * r;
  let s = r + r * z * ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1);
  let c = (1.0 - 0.5 * z) + z * z * ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2);
  let v = select(s, c, (q & 1u) == 1u);
  return select(v, -v, q >= 2u);
}`,
};

const MATH_DEPS: Record<string, string[]> = {
  ordered_: ['isnan_'], sign_: ['isnan_'], max_: ['ordered_'], min_: ['ordered_'], sqrt_: ['isnan_'],
  twoProd_: ['split_'], exp_: ['isnan_', 'ldexp_', 'expCore_'], log2dd_: ['twoSum_', 'twoProd_'],
  log_: ['isnan_', 'iszero_', 'isinf_', 'log2dd_', 'twoProd_'], powPos_: ['log2dd_', 'twoProd_', 'ldexp_', 'expCore_'],
  pow_: ['isnan_', 'iszero_', 'isinf_', 'abs_', 'neg_', 'powPos_'], tanh_: ['isnan_', 'abs_', 'exp_'],
  sigmoid_: ['isnan_', 'abs_', 'exp_'], sincos_: ['finite_', 'abs_', 'twoProd_'],
};

/** The MATH_LIB functions `code` calls, with everything they call, in dependency order. */
export function mathFor(code: string): string {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const d of MATH_DEPS[name] ?? []) add(d);
    out.push(MATH_LIB[name]);
  };
  for (const m of code.matchAll(/\b(\w+_)\(/g)) if (MATH_LIB[m[1]]) add(m[1]);
  return out.join('\n');
}

/** WGSL expression per elementwise kernel, over inputs v0, v1, v2. */
export const ELEMENTWISE_EXPR: Record<string, string> = {
  neg: 'neg_(v0)',
  exp: 'exp_(v0)',
  log: 'log_(v0)',
  sqrt: 'sqrt_(v0)',
  tanh: 'tanh_(v0)',
  sigmoid: 'sigmoid_(v0)',
  relu: 'relu_(v0)',
  abs: 'abs_(v0)',
  sin: 'sincos_(v0, 0u)',
  cos: 'sincos_(v0, 1u)',
  sign: 'sign_(v0)',
  add: 'v0 + v1',
  sub: 'v0 - v1',
  mul: 'v0 * v1',
  div: 'v0 / v1',
  pow: 'pow_(v0, v1)',
  maximum: 'max_(v0, v1)',
  minimum: 'min_(v0, v1)',
  greater: 'select(0.0, 1.0, v0 > v1 && ordered_(v0, v1))',
  greaterEqual: 'select(0.0, 1.0, v0 >= v1 && ordered_(v0, v1))',
  less: 'select(0.0, 1.0, v0 < v1 && ordered_(v0, v1))',
  lessEqual: 'select(0.0, 1.0, v0 <= v1 && ordered_(v0, v1))',
  equal: 'select(0.0, 1.0, v0 == v1 && ordered_(v0, v1))',
  notEqual: 'select(1.0, 0.0, v0 == v1 && ordered_(v0, v1))',
  // c != 0 (NaN counts as true) on the bits, so a subnormal condition is not flushed to 0 either.
  where: 'select(v1, v2, iszero_(v0))',
  copy: 'v0',
};

/**
 * Contiguous output, each input either contiguous or a broadcast scalar (bit k of scalarMask):
 * the common case, with no index arithmetic. Params: [n].
 */
export function elementwiseFlat(expr: string, nIn: number, scalarMask: number): string {
  const decl = Array.from({ length: nIn }, (_, k) => ro(k + 1, `X${k}`)).join('\n');
  const loads = Array.from({ length: nIn }, (_, k) => `  let v${k} = X${k}[${scalarMask & (1 << k) ? '0u' : 'i'}];`).join('\n');
  return `${PRELUDE}${mathFor(expr)}\n${decl}\n${rw(nIn + 1, 'Y')}\n` + perElement(`${loads}\n  Y[i] = ${expr};`);
}

/**
 * General strided form: output and inputs each have a base offset and strides over a (coalesced)
 * iteration shape of rank R. Params: [n, R, shape[R], then per operand (inputs, then output):
 * base, strides[R]].
 */
export function elementwiseStrided(expr: string, nIn: number): string {
  const decl = Array.from({ length: nIn }, (_, k) => ro(k + 1, `X${k}`)).join('\n');
  const ops = nIn + 1;
  const init = Array.from({ length: ops }, (_, k) => `  var o${k} = prm(2u + R + ${k}u * (R + 1u));`).join('\n');
  const step = Array.from({ length: ops }, (_, k) => `    o${k} += c * prm(3u + R + ${k}u * (R + 1u) + dd);`).join('\n');
  const loads = Array.from({ length: nIn }, (_, k) => `  let v${k} = X${k}[o${k}];`).join('\n');
  return `${PRELUDE}${mathFor(expr)}\n${decl}\n${rw(nIn + 1, 'Y')}\n` + perElement(`
  let R = prm(1u);
${init}
  var rem = i;
  for (var d = R; d > 0u; d = d - 1u) {
    let dd = d - 1u;
    var c = rem;
    // The outermost axis needs no modulo: rem is already below its size.
    if (dd > 0u) { let sz = prm(2u + dd); c = rem % sz; rem = rem / sz; }
${step}
  }
${loads}
  Y[o${nIn}] = ${expr};`);
}

// ---------------------------------------------------------------------------------------------
// Reductions. Params: [nOut, R, Rk, Rr, keptShape[Rk], keptStrides[Rk], redShape[Rr], redStrides[Rr]]:
// output element o reads x at keptOffset(o) + redOffset(r) for r < R.

const REDUCE_COMMON = /* wgsl */ `
fn offsetOf(lin: u32, rank: u32, at: u32) -> u32 {
  var rem = lin;
  var off = 0u;
  for (var d = rank; d > 0u; d = d - 1u) {
    let dd = d - 1u;
    var c = rem;
    if (dd > 0u) { let sz = prm(at + dd); c = rem % sz; rem = rem / sz; }
    off += c * prm(at + rank + dd);
  }
  return off;
}
fn keptOffset(o: u32) -> u32 { return offsetOf(o, prm(2u), 4u); }
fn redOffset(r: u32) -> u32 { return offsetOf(r, prm(3u), 4u + 2u * prm(2u)); }
`;

const REDUCE_OPS: Record<string, { init: string; combine: string }> = {
  sum: { init: '0.0', combine: 'a + v' },
  // Math.max: NaN propagates, +0 beats -0; commutative and associative, so the tree order is free.
  max: { init: '-inf()', combine: 'max_(a, v)' },
};

/** One thread per output element, looping over the reduced elements: small R or many outputs. */
export function reduceThread(op: 'sum' | 'max'): string {
  const { init, combine } = REDUCE_OPS[op];
  return `${PRELUDE}${REDUCE_COMMON}${mathFor(combine)}
fn combine(a: f32, v: f32) -> f32 { return ${combine}; }
${ro(1, 'X')}
${rw(2, 'Y')}
` + perElement(`
  let base = keptOffset(i);
  let R = prm(1u);
  var acc = ${init};
  for (var r = 0u; r < R; r = r + 1u) { acc = combine(acc, X[base + redOffset(r)]); }
  Y[i] = acc;`);
}

/** One workgroup per output element: strided partial results, then a tree in workgroup memory. */
export function reduceWorkgroup(op: 'sum' | 'max'): string {
  const { init, combine } = REDUCE_OPS[op];
  return `${PRELUDE}${REDUCE_COMMON}${mathFor(combine)}
fn combine(a: f32, v: f32) -> f32 { return ${combine}; }
${ro(1, 'X')}
${rw(2, 'Y')}
var<workgroup> part: array<f32, ${RED_WG}>;
@compute @workgroup_size(${RED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = wid.y * nwg.x + wid.x;
  // Workgroup-uniform exit, so the barriers below stay in uniform control flow.
  if (o >= prm(0u)) { return; }
  let base = keptOffset(o);
  let R = prm(1u);
  var acc = ${init};
  for (var r = li; r < R; r = r + ${RED_WG}u) { acc = combine(acc, X[base + redOffset(r)]); }
  part[li] = acc;
  workgroupBarrier();
  for (var s = ${RED_WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { part[li] = combine(part[li], part[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) { Y[o] = part[0]; }
}`;
}

// ---------------------------------------------------------------------------------------------
// Batched matmul. Params: [total, M, N, K, transA, transB, batch, Rb, batchShape[Rb],
// aBatchStrides[Rb], bBatchStrides[Rb]] (batch strides in elements).

const MATMUL_COMMON = /* wgsl */ `
${ro(1, 'A')}
${ro(2, 'B')}
${rw(3, 'C')}
// Offsets of batch bi's A and B matrices (broadcast batch axes have stride 0).
fn batchOffsets(bi: u32) -> vec2<u32> {
  let Rb = prm(7u);
  var rem = bi;
  var off = vec2<u32>(0u, 0u);
  for (var d = Rb; d > 0u; d = d - 1u) {
    let dd = d - 1u;
    var c = rem;
    if (dd > 0u) { let sz = prm(8u + dd); c = rem % sz; rem = rem / sz; }
    off += c * vec2<u32>(prm(8u + Rb + dd), prm(8u + 2u * Rb + dd));
  }
  return off;
}
`;

/** One thread per output element: tiny products, where tiles would mostly be padding. */
export function matmulNaive(): string {
  return `${PRELUDE}${MATMUL_COMMON}` + perElement(`
  let M = prm(1u); let N = prm(2u); let K = prm(3u);
  let tA = prm(4u) != 0u; let tB = prm(5u) != 0u;
  let n = i % N;
  let t = i / N;
  let m = t % M;
  let bi = t / M;
  let off = batchOffsets(bi);
  // A[m, k] is at m*K + k, or k*M + m transposed; B[k, n] at k*N + n, or n*K + k.
  let aAt = off.x + select(m * K, m, tA);
  let aStep = select(1u, M, tA);
  let bAt = off.y + select(n, n * K, tB);
  let bStep = select(N, 1u, tB);
  var acc = 0.0;
  for (var k = 0u; k < K; k = k + 1u) { acc = fma(A[aAt + k * aStep], B[bAt + k * bStep], acc); }
  C[i] = acc;`);
}

/**
 * Tiled, register-blocked: each workgroup computes a BM x BN block of C for one batch entry (z),
 * staging BK-deep slices of A and B in workgroup memory; each thread owns TM x TN outputs strided
 * by the thread grid (conflict-free workgroup memory reads).
 */
export function matmulTiled(): string {
  const { WX, WY, TM, TN, BK } = MM;
  const BM = MM_BM, BN = MM_BN, T = WX * WY;
  const lines: string[] = [];
  for (let a = 0; a < TM; a++) for (let b = 0; b < TN; b++) lines.push(`var c${a}_${b} = 0.0;`);
  const acc = lines.join(' ');
  const loadA: string[] = [], loadB: string[] = [];
  for (let e = 0; e < (BM * BK) / T; e++) {
    loadA.push(`{
        let e = tid + ${e * T}u;
        // Consecutive threads walk the contiguous global axis (k, or m when transposed).
        let mm = select(e / ${BK}u, e % ${BM}u, tA);
        let kk = select(e % ${BK}u, e / ${BM}u, tA);
        let gm = row0 + mm; let gk = k0 + kk;
        var v = 0.0;
        if (gm < M && gk < K) { v = A[off.x + select(gm * K + gk, gk * M + gm, tA)]; }
        As[kk * ${BM}u + mm] = v;
      }`);
  }
  for (let e = 0; e < (BN * BK) / T; e++) {
    loadB.push(`{
        let e = tid + ${e * T}u;
        let nn = select(e % ${BN}u, e / ${BK}u, tB);
        let kk = select(e / ${BN}u, e % ${BK}u, tB);
        let gn = col0 + nn; let gk = k0 + kk;
        var v = 0.0;
        if (gn < N && gk < K) { v = B[off.y + select(gk * N + gn, gn * K + gk, tB)]; }
        Bs[kk * ${BN}u + nn] = v;
      }`);
  }
  const inner: string[] = [];
  for (let a = 0; a < TM; a++) inner.push(`let a${a} = As[kk * ${BM}u + ly + ${a * WY}u];`);
  for (let b = 0; b < TN; b++) inner.push(`let b${b} = Bs[kk * ${BN}u + lx + ${b * WX}u];`);
  for (let a = 0; a < TM; a++) for (let b = 0; b < TN; b++) inner.push(`c${a}_${b} = fma(a${a}, b${b}, c${a}_${b});`);
  const store: string[] = [];
  for (let a = 0; a < TM; a++) {
    store.push(`{ let r = row0 + ly + ${a * WY}u; if (r < M) {`);
    for (let b = 0; b < TN; b++) store.push(`  { let cc = col0 + lx + ${b * WX}u; if (cc < N) { C[cbase + r * N + cc] = c${a}_${b}; } }`);
    store.push(`} }`);
  }
  return `${PRELUDE}${MATMUL_COMMON}
var<workgroup> As: array<f32, ${BM * BK}>;
var<workgroup> Bs: array<f32, ${BN * BK}>;
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = prm(1u); let N = prm(2u); let K = prm(3u);
  let tA = prm(4u) != 0u; let tB = prm(5u) != 0u;
  let batch = prm(6u);
  let lx = lid.x; let ly = lid.y;
  let tid = ly * ${WX}u + lx;
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  // Batches beyond the z grid limit loop; every bound here is workgroup-uniform (barriers below).
  for (var bi = wid.z; bi < batch; bi = bi + nwg.z) {
    let off = batchOffsets(bi);
    let cbase = bi * M * N;
    ${acc}
    for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
      ${loadA.join('\n      ')}
      ${loadB.join('\n      ')}
      workgroupBarrier();
      for (var kk = 0u; kk < ${BK}u; kk = kk + 1u) {
        ${inner.join('\n        ')}
      }
      workgroupBarrier();
    }
    ${store.join('\n    ')}
  }
}`;
}

// ---------------------------------------------------------------------------------------------
// Convolution, NCHW input, OIHW filter. Params: [total, N, C, H, W, O, KH, KW, OH, OW,
// strideH, strideW, padH, padW, dilH, dilW].

const CONV_PARAMS = /* wgsl */ `
  let N = prm(1u); let C = prm(2u); let H = prm(3u); let W = prm(4u);
  let O = prm(5u); let KH = prm(6u); let KW = prm(7u); let OH = prm(8u); let OW = prm(9u);
  let sh = prm(10u); let sw = prm(11u); let ph = prmi(12u); let pw = prmi(13u);
  let dh = prm(14u); let dw = prm(15u);
`;

/** y[n, o, i, j] = sum over c, p, q of x[n, c, i*s - pad + p*d, ...] * w[o, c, p, q]. */
export function conv2d(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${ro(2, 'F')}
${rw(3, 'Y')}
` + perElement(`${CONV_PARAMS}
  let oj = i % OW; var t = i / OW;
  let oi = t % OH; t = t / OH;
  let oc = t % O; let n = t / O;
  var acc = 0.0;
  for (var c = 0u; c < C; c = c + 1u) {
    let xb = (n * C + c) * H;
    let fb = (oc * C + c) * KH;
    for (var p = 0u; p < KH; p = p + 1u) {
      let h = i32(oi * sh + p * dh) - ph;
      if (h < 0 || h >= i32(H)) { continue; }
      for (var q = 0u; q < KW; q = q + 1u) {
        let w = i32(oj * sw + q * dw) - pw;
        if (w < 0 || w >= i32(W)) { continue; }
        acc = fma(X[(xb + u32(h)) * W + u32(w)], F[(fb + p) * KW + q], acc);
      }
    }
  }
  Y[i] = acc;`);
}

/** dx[n, c, h, w]: the taps (o, p, q) whose output position (h + pad - p*d) / s is whole and in range. */
export function conv2dGradInput(): string {
  return `${PRELUDE}
${ro(1, 'DY')}
${ro(2, 'F')}
${rw(3, 'DX')}
` + perElement(`${CONV_PARAMS}
  let w = i % W; var t = i / W;
  let h = t % H; t = t / H;
  let c = t % C; let n = t / C;
  var acc = 0.0;
  for (var oc = 0u; oc < O; oc = oc + 1u) {
    let yb = (n * O + oc) * OH;
    let fb = (oc * C + c) * KH;
    for (var p = 0u; p < KH; p = p + 1u) {
      let hh = i32(h) + ph - i32(p * dh);
      if (hh < 0 || u32(hh) % sh != 0u) { continue; }
      let oi = u32(hh) / sh;
      if (oi >= OH) { continue; }
      for (var q = 0u; q < KW; q = q + 1u) {
        let ww = i32(w) + pw - i32(q * dw);
        if (ww < 0 || u32(ww) % sw != 0u) { continue; }
        let oj = u32(ww) / sw;
        if (oj >= OW) { continue; }
        acc = fma(DY[(yb + oi) * OW + oj], F[(fb + p) * KW + q], acc);
      }
    }
  }
  DX[i] = acc;`);
}

const GRAD_FILTER_TERM = /* wgsl */ `
fn gradFilterTerm(l: u32, oc: u32, c: u32, p: u32, q: u32) -> f32 {
  ${CONV_PARAMS}
  let oj = l % OW; let t = l / OW;
  let oi = t % OH; let n = t / OH;
  let h = i32(oi * sh + p * dh) - ph;
  let w = i32(oj * sw + q * dw) - pw;
  if (h < 0 || h >= i32(H) || w < 0 || w >= i32(W)) { return 0.0; }
  return X[((n * C + c) * H + u32(h)) * W + u32(w)] * DY[((n * O + oc) * OH + oi) * OW + oj];
}
fn filterCoords(e: u32) -> vec4<u32> {
  let C = prm(2u); let KH = prm(6u); let KW = prm(7u);
  let q = e % KW; var t = e / KW;
  let p = t % KH; t = t / KH;
  return vec4<u32>(t / C, t % C, p, q);
}
`;

/** dw[o, c, p, q] = sum over n, i, j of x[n, c, h(i, p), w(j, q)] * dy[n, o, i, j]; one thread each. */
export function conv2dGradFilterThread(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${ro(2, 'DY')}
${rw(3, 'DW')}
${GRAD_FILTER_TERM}
` + perElement(`
  let L = prm(1u) * prm(8u) * prm(9u);
  let f = filterCoords(i);
  var acc = 0.0;
  for (var l = 0u; l < L; l = l + 1u) { acc += gradFilterTerm(l, f.x, f.y, f.z, f.w); }
  DW[i] = acc;`);
}

/** Same sum, one workgroup per filter element (long N*OH*OW sums), tree-reduced. */
export function conv2dGradFilterWorkgroup(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${ro(2, 'DY')}
${rw(3, 'DW')}
${GRAD_FILTER_TERM}
var<workgroup> part: array<f32, ${RED_WG}>;
@compute @workgroup_size(${RED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let e = wid.y * nwg.x + wid.x;
  if (e >= prm(0u)) { return; }
  let L = prm(1u) * prm(8u) * prm(9u);
  let f = filterCoords(e);
  var acc = 0.0;
  for (var l = li; l < L; l = l + ${RED_WG}u) { acc += gradFilterTerm(l, f.x, f.y, f.z, f.w); }
  part[li] = acc;
  workgroupBarrier();
  for (var s = ${RED_WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { part[li] = part[li] + part[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { DW[e] = part[0]; }
}`;
}

// ---------------------------------------------------------------------------------------------
// Pooling over NCHW. Params: [total, NC, H, W, OH, OW, KH, KW, strideH, strideW, padH, padW].

const POOL_COMMON = /* wgsl */ `
struct Pool { H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, sh: u32, sw: u32, ph: i32, pw: i32 }
fn pool() -> Pool {
  return Pool(prm(2u), prm(3u), prm(4u), prm(5u), prm(6u), prm(7u), prm(8u), prm(9u), prmi(10u), prmi(11u));
}
// Range of output rows (or columns) whose window covers input row h: [lo, hi], empty if lo > hi.
fn covering(h: u32, pad: i32, k: u32, s: u32, outSize: u32) -> vec2<i32> {
  let top = i32(h) + pad;               // >= 0: padding is at most half the window
  let first = top - i32(k) + 1;
  var lo = 0;
  if (first > 0) { lo = (first + i32(s) - 1) / i32(s); }
  let hi = min(top / i32(s), i32(outSize) - 1);
  return vec2<i32>(lo, hi);
}
`;

const POOL_ARGMAX = /* wgsl */ `
// Flat input index of the first maximum (row-major window order) of output o's window, or of its
// first NaN (NaN propagates, as in PyTorch); -1 if the window holds no input (padding only).
fn argmaxAt(o: u32) -> i32 {
  let g = pool();
  let oj = o % g.OW; let t = o / g.OW;
  let oi = t % g.OH; let nc = t / g.OH;
  var best = -1;
  var bv = 0.0;
  var bnan = false;
  for (var p = 0u; p < g.KH; p = p + 1u) {
    let h = i32(oi * g.sh + p) - g.ph;
    if (h < 0 || h >= i32(g.H)) { continue; }
    for (var q = 0u; q < g.KW; q = q + 1u) {
      let w = i32(oj * g.sw + q) - g.pw;
      if (w < 0 || w >= i32(g.W)) { continue; }
      let at = i32((nc * g.H + u32(h)) * g.W + u32(w));
      let v = X[at];
      let vnan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
      if (best < 0 || (!bnan && (vnan || v > bv))) { best = at; bv = v; bnan = vnan; }
    }
  }
  return best;
}
`;

/** out[o] = S[argmax of X over window o]: maxPool2d (S = X) and maxPool2dSelect (S = g). */
export function maxPoolPick(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${ro(2, 'S')}
${rw(3, 'Y')}
${POOL_COMMON}${POOL_ARGMAX}
` + perElement(`
  let at = argmaxAt(i);
  var v = 0.0;
  if (at >= 0) { v = S[at]; }
  Y[i] = v;`);
}

/** First pass of maxPool2dGrad: each window's argmax, as a flat input index. */
export function maxPoolArgmax(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${rw(2, 'IDX', 'i32')}
${POOL_COMMON}${POOL_ARGMAX}
` + perElement(`
  IDX[i] = argmaxAt(i);`);
}

/** Second pass: dx[e] sums dy over the covering windows whose argmax is e (window order). */
export function maxPoolGrad(): string {
  return `${PRELUDE}
${ro(1, 'IDX', 'i32')}
${ro(2, 'DY')}
${rw(3, 'DX')}
${POOL_COMMON}
` + perElement(`
  let g = pool();
  let w = i % g.W; let t = i / g.W;
  let h = t % g.H; let nc = t / g.H;
  let rows = covering(h, g.ph, g.KH, g.sh, g.OH);
  let cols = covering(w, g.pw, g.KW, g.sw, g.OW);
  var acc = 0.0;
  for (var oi = rows.x; oi <= rows.y; oi = oi + 1) {
    for (var oj = cols.x; oj <= cols.y; oj = oj + 1) {
      let o = (nc * g.OH + u32(oi)) * g.OW + u32(oj);
      if (IDX[o] == i32(i)) { acc += DY[o]; }
    }
  }
  DX[i] = acc;`);
}

/** avgPool2d: padding taps are skipped but the divisor stays KH*KW. */
export function avgPool(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${rw(2, 'Y')}
${POOL_COMMON}
` + perElement(`
  let g = pool();
  let area = f32(g.KH * g.KW);
  let oj = i % g.OW; let t = i / g.OW;
  let oi = t % g.OH; let nc = t / g.OH;
  var acc = 0.0;
  for (var p = 0u; p < g.KH; p = p + 1u) {
    let h = i32(oi * g.sh + p) - g.ph;
    if (h < 0 || h >= i32(g.H)) { continue; }
    for (var q = 0u; q < g.KW; q = q + 1u) {
      let w = i32(oj * g.sw + q) - g.pw;
      if (w < 0 || w >= i32(g.W)) { continue; }
      acc += X[(nc * g.H + u32(h)) * g.W + u32(w)] / area;
    }
  }
  Y[i] = acc;`);
}

/** avgPool2dGrad: each input element sums dy/area over the windows covering it. */
export function avgPoolGrad(): string {
  return `${PRELUDE}
${ro(1, 'DY')}
${rw(2, 'DX')}
${POOL_COMMON}
` + perElement(`
  let g = pool();
  let area = f32(g.KH * g.KW);
  let w = i % g.W; let t = i / g.W;
  let h = t % g.H; let nc = t / g.H;
  let rows = covering(h, g.ph, g.KH, g.sh, g.OH);
  let cols = covering(w, g.pw, g.KW, g.sw, g.OW);
  var acc = 0.0;
  for (var oi = rows.x; oi <= rows.y; oi = oi + 1) {
    for (var oj = cols.x; oj <= cols.y; oj = oj + 1) {
      acc += DY[(nc * g.OH + u32(oi)) * g.OW + u32(oj)] / area;
    }
  }
  DX[i] = acc;`);
}

// ---------------------------------------------------------------------------------------------
// gather / scatterAdd along one axis, viewed as [outer, axis, inner]. Params: [total, n, inner, J].

/** out[a, j, c] = x[a, idx[j], c]. */
export function gather(): string {
  return `${PRELUDE}
${ro(1, 'X')}
${ro(2, 'IDX', 'i32')}
${rw(3, 'Y')}
` + perElement(`
  let n = prm(1u); let inner = prm(2u); let J = prm(3u);
  let c = i % inner; let t = i / inner;
  let j = t % J; let a = t / J;
  Y[i] = X[(a * n + u32(IDX[j])) * inner + c];`);
}

/**
 * out[a, k, c] = sum of g[a, j, c] over the j with idx[j] == k, in increasing j. No float atomics:
 * the host inverts the indices into CSR form (offsets[n + 1], then the j's grouped by k).
 */
export function scatterAdd(): string {
  return `${PRELUDE}
${ro(1, 'G')}
${ro(2, 'CSR', 'u32')}
${rw(3, 'Y')}
` + perElement(`
  let n = prm(1u); let inner = prm(2u); let J = prm(3u);
  let c = i % inner; let t = i / inner;
  let k = t % n; let a = t / n;
  var acc = 0.0;
  for (var e = CSR[k]; e < CSR[k + 1u]; e = e + 1u) {
    acc += G[(a * J + CSR[n + 1u + e]) * inner + c];
  }
  Y[i] = acc;`);
}

// ---------------------------------------------------------------------------------------------
// setCheckNumerics: scans a kernel's output for NaN / Inf into a flag buffer (WebGPU cannot read
// back synchronously, so the host reads the flag at the next read-back). Params: [n, check number k].
// FLAG[0] = ~k of the first failing check (0: none), FLAG[1] = ~(index << 2 | kind) of its first
// non-finite element, kind 0 NaN, 1 +Inf, 2 -Inf (atomicMax of complements: 0 is "nothing", which
// clearBuffer and a fresh buffer give). Dispatches run in order and each sees the previous ones'
// writes, so a check after a failed one returns at once: the flag keeps the first failing op.

export function finiteScan(): string {
  return `${PRELUDE}
${ro(1, 'X', 'u32')}
@group(0) @binding(2) var<storage, read_write> FLAG: array<atomic<u32>, 2>;
` + perElement(`
  let u = X[i];
  let a = u & 0x7fffffffu;
  if (a < 0x7f800000u) { return; }
  let k = prm(1u);
  let first = atomicLoad(&FLAG[0]);
  if (first != 0u && ~first < k) { return; }
  atomicMax(&FLAG[0], ~k);
  let kind = select(select(1u, 2u, u >= 0x80000000u), 0u, a > 0x7f800000u);
  atomicMax(&FLAG[1], ~((i << 2u) | kind));`);
}
