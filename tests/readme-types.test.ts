// Typechecks the README's examples and the published types, as a user of the package would see them:
// - every ```ts block of README.md (extracted as tests/readme.test.ts does) becomes a module of its
//   own, importing 'metagrad' and 'metagrad/datasets' from the declarations emitted from the
//   sources (what `npm run build` writes to dist/), checked with `strict: true`;
// - a module of type assertions pins what grad, valueAndGrad, vjp, jvp, hvp, jacobian and hessian
//   infer from the function they are given;
// - the declarations of 'metagrad' (index.d.ts and every module it reaches) must typecheck with no
//   Node types at all (`types: []`, lib ES2022 + DOM): the package runs in browsers. Only
//   'metagrad/datasets' is Node-only by design.
// TypeScript 7's package exposes no stable compiler API (only `typescript/unstable/*`), so this runs
// its command-line compiler.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
const title = (code: string) => code.split('\n').find((l) => l.trim() && !l.startsWith('import'))?.trim();

// Type errors an example is known to have, with the reason: none now. The test fails on any other
// error, and on a listed one that has gone (so the list stays true).
const KNOWN: { marker: string; errors: [code: string, text: string][]; why: string }[] = [];

/** What the transforms infer. Each line that should not compile carries @ts-expect-error. */
const AUTODIFF_TYPES = `
import { grad, valueAndGrad, vjp, jvp, hvp, jacobian, hessian, tensor, Tensor } from 'metagrad';
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
const expectType = <T extends true>(): void => {};
const x = tensor([1, 2]), w = tensor([3, 4]), b = tensor([5, 6]);

// Annotated functions: the transform has their parameters; the gradient has the first one's type.
const df = grad((x: Tensor) => x.tanh().sum());
expectType<Equal<typeof df, (x: Tensor) => Tensor>>();
const dp = grad((p: { w: Tensor; b: Tensor }) => p.w.add(p.b).sum());
expectType<Equal<typeof dp, (p: { w: Tensor; b: Tensor }) => { w: Tensor; b: Tensor }>>();
const dargs = grad((p: { w: Tensor }, x: Tensor, scale: number) => p.w.mul(x).sum().mul(scale));
expectType<Equal<typeof dargs, (p: { w: Tensor }, x: Tensor, scale: number) => { w: Tensor }>>();
const [v, gv] = valueAndGrad((p: { w: Tensor }, x: Tensor) => p.w.mul(x).sum())({ w }, x);
expectType<Equal<typeof v, Tensor>>();
expectType<Equal<typeof gv, { w: Tensor }>>();
const [[loss, aux], ga] = valueAndGrad((p: Tensor[]) => [p[0].sum(), { n: p.length }], { hasAux: true })([w, b]);
expectType<Equal<typeof loss, Tensor>>();
expectType<Equal<typeof aux, { n: number }>>();
expectType<Equal<typeof ga, Tensor[]>>();
const dv = grad((p: { w: Tensor }) => [p.w.sum(), 0], { hasAux: true });
expectType<Equal<typeof dv, (p: { w: Tensor }) => { w: Tensor }>>();

// Unannotated: the parameter is a tensor or a tree of them, and the result has the argument's type.
const d2 = grad((x) => grad((y) => y.tanh().sum())(x).sum())(x);
expectType<Equal<typeof d2, Tensor>>();
const g = grad((p) => p.w.mul(p.b).sum())({ w, b });
expectType<Equal<typeof g, { w: Tensor; b: Tensor }>>();
const gl = grad((p) => p.layers[0].w.sum())({ layers: [{ w }] });
expectType<Equal<typeof gl, { layers: { w: Tensor }[] }>>();
const [vu, gu] = valueAndGrad((p, scale: number) => p.w.sum().mul(scale))({ w }, 2);
expectType<Equal<typeof vu, Tensor>>();
expectType<Equal<typeof gu, { w: Tensor }>>();
// @ts-expect-error: an unannotated parameter is still checked as a tensor (no such method)
grad((x) => x.tanhh().sum());

// Generic callers keep their type parameter.
function fit<P>(f: (p: P, x: Tensor) => Tensor, p: P): [Tensor, P, P] {
  const [l, gp] = valueAndGrad(f)(p, x);
  return [l, gp, grad(f)(p, x)];
}
fit((p: { w: Tensor }, x) => p.w.mul(x).sum(), { w });

// vjp, jvp, hvp take the primals' type; jacobian and hessian are tensor -> tensor.
const [out, back] = vjp((p) => p.w.tanh(), { w });
expectType<Equal<typeof out, Tensor>>();
expectType<Equal<typeof back, (cotangent: Tensor) => { w: Tensor }>>();
const [y, jv] = jvp((x) => [x.sin(), x.cos()], x, x);
expectType<Equal<typeof y, Tensor[]>>();
expectType<Equal<typeof jv, Tensor[]>>();
const hv = hvp((p) => p.w.pow(3).sum(), { w }, { w: x });
expectType<Equal<typeof hv, { w: Tensor }>>();
expectType<Equal<ReturnType<typeof jacobian>, (x: Tensor) => Tensor>>();
const H = hessian((x) => x.pow(3).sum())(x);
expectType<Equal<typeof H, Tensor>>();

// @ts-expect-error: the gradient of a tensor function takes a tensor
grad((x: Tensor) => x.sum())({ w });
// @ts-expect-error: the function must return a tensor (or [loss, aux])
grad((x: Tensor) => 3);
// @ts-expect-error: hvp's tangents have the primals' structure
hvp((p: { w: Tensor }) => p.w.sum(), { w }, x);
`;

/** Runs tsc; returns its diagnostics as 'file(line,col): error TSnnnn: message' lines (continuations joined). */
function typecheck(project: string, extra: string[] = []): { diagnostics: string[]; output: string } {
  let output: string;
  try {
    output = execFileSync(process.execPath, [tsc, '-p', project, '--pretty', 'false', ...extra], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number };
    output = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    if (!output.trim()) throw new Error(`tsc -p ${project} failed (exit ${err.status}) without output`);
  }
  const diagnostics: string[] = [];
  for (const line of output.split('\n')) {
    if (/\): error TS\d+: /.test(line) || /^error TS\d+: /.test(line)) diagnostics.push(line.trim());
    else if (/^\s+\S/.test(line) && diagnostics.length) diagnostics[diagnostics.length - 1] += ` ${line.trim()}`;
  }
  return { diagnostics, output };
}

const json = (v: unknown) => JSON.stringify(v, null, 2);
let tmp = '';
let dts = '';
/** Per module (example-N, autodiff-types): its errors as 'TSnnnn: message', and where they are. */
let exampleErrors: Map<string, { text: string; at: string }[]>;

describe('published types', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'metagrad-readme-types-'));
    // The declarations `npm run build` writes to dist/, emitted from the sources as they are now.
    // Only the two entry points and what they reach (not the CLI or the benchmarks).
    dts = join(tmp, 'dist');
    writeFileSync(join(tmp, 'tsconfig.emit.json'), json({
      extends: join(root, 'tsconfig.json'),
      compilerOptions: {
        declaration: true, emitDeclarationOnly: true, sourceMap: false, declarationMap: false, outDir: dts,
        typeRoots: [join(root, 'node_modules', '@types')], // found from the config's folder otherwise
      },
      files: [join(root, 'index.ts'), join(root, 'datasets', 'index.ts')], include: [],
    }));
    const emit = typecheck(join(tmp, 'tsconfig.emit.json'));
    if (emit.diagnostics.length) throw new Error(`emitting the declarations failed:\n${emit.diagnostics.join('\n')}`);

    const dir = join(tmp, 'examples');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), json({ type: 'module' })); // ES modules: top-level await
    blocks.forEach((code, i) => writeFileSync(join(dir, `example-${i + 1}.ts`), `${code}\nexport {};\n`));
    writeFileSync(join(dir, 'autodiff-types.ts'), `${AUTODIFF_TYPES}\nexport {};\n`);
    writeFileSync(join(dir, 'tsconfig.json'), json({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'],
        strict: true, noEmit: true,
        skipLibCheck: true, // the declarations are checked on their own below
        types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], // 'metagrad/datasets' is Node-only
        paths: { metagrad: [join(dts, 'index.d.ts')], 'metagrad/datasets': [join(dts, 'datasets', 'index.d.ts')] },
      },
      include: ['*.ts'],
    }));
    const { diagnostics, output } = typecheck(join(dir, 'tsconfig.json'));
    exampleErrors = new Map();
    for (const d of diagnostics) {
      const m = /(?:^|[\\/])(example-\d+|autodiff-types)\.ts(\(\d+,\d+\)): error (TS\d+: .*)$/.exec(d);
      if (!m) throw new Error(`tsc reported an error outside the examples:\n${output}`);
      exampleErrors.set(m[1], [...(exampleErrors.get(m[1]) ?? []), { text: m[3], at: m[2] }]);
    }
  }, 120_000);

  afterAll(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

  it('finds the examples and the known errors', () => {
    expect(blocks.length).toBeGreaterThan(3);
    for (const k of KNOWN) {
      const n = blocks.filter((b) => b.includes(k.marker)).length;
      if (n !== 1) expect.fail(`KNOWN: '${k.marker}' is in ${n} README examples, not 1: update KNOWN in this file`);
    }
  });

  blocks.forEach((code, i) => {
    it(`README example ${i + 1} typechecks under strict: ${title(code)}`, () => {
      const actual = exampleErrors.get(`example-${i + 1}`) ?? [];
      const known = KNOWN.find((k) => code.includes(k.marker));
      const expected = [...(known?.errors ?? [])];
      const unexpected: string[] = [];
      for (const a of actual) {
        const j = expected.findIndex(([c, text]) => a.text.startsWith(`${c}: ${text}`));
        if (j >= 0) expected.splice(j, 1);
        else unexpected.push(`${a.at} ${a.text}`);
      }
      const lines = code.split('\n').map((l, n) => `${String(n + 1).padStart(3)} | ${l}`).join('\n');
      if (unexpected.length) expect.fail(`example ${i + 1} has type errors:\n${unexpected.join('\n')}\n\n${lines}`);
      if (expected.length) {
        expect.fail(`example ${i + 1} no longer has the known error(s) ${expected.map(([c, t]) => `${c} ${t}`).join('; ')} (${known!.why}): remove them from KNOWN in this file`);
      }
    });
  });

  it('the autodiff transforms infer their argument and result types', () => {
    const lines = AUTODIFF_TYPES.split('\n');
    const errors = (exampleErrors.get('autodiff-types') ?? []).map((e) => `${e.text}\n    at ${e.at}: ${lines[Number(/\d+/.exec(e.at)![0]) - 1]?.trim()}`);
    expect(errors).toEqual([]);
  });

  it("'metagrad' needs no Node types (types: [], lib ES2022 + DOM)", () => {
    const dir = join(tmp, 'node-free');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tsconfig.json'), json({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'],
        strict: true, noEmit: true, skipLibCheck: false, types: [],
      },
      files: [join(dts, 'index.d.ts')],
    }));
    const { diagnostics, output } = typecheck(join(dir, 'tsconfig.json'), ['--listFiles']);
    expect(diagnostics, output).toEqual([]);
    // A `/// <reference types="node" />` or an import of a Node-typed package would pull @types/node in.
    const files = output.split('\n').map((l) => l.trim()).filter((l) => l && !l.includes('error TS'));
    expect(files.filter((f) => /[\\/]@types[\\/]node[\\/]/.test(f))).toEqual([]);
    expect(files.some((f) => f.endsWith(join('dist', 'engine', 'autodiff.d.ts')))).toBe(true);
  });
});
