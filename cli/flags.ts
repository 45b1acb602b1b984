// Command-line flags: one table of every flag (type, range, which algorithms take it, help), a parser
// that accepts `--x v`, `--x=v` and negative numbers (`--x -1`), and errors as one line plus the
// usage, exit status 2, before any data is read or any training starts.

export type FlagType = 'int' | 'number' | 'string' | 'bool';

export interface FlagSpec {
  type: FlagType;
  help: string;
  /** Value name in the help (N, DIR, ...). */
  arg?: string;
  /** Inclusive bounds for numbers; `above` is an exclusive lower bound. */
  min?: number;
  max?: number;
  above?: number;
  /** Allowed string values. */
  choices?: readonly string[];
  /** The algorithms that take this flag (all when absent). */
  for?: readonly string[];
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {}

export const USAGE = 'Usage: metagrad [--algorithm NAME] [--dataset sine|omniglot] [options]   (npm start -- --help lists them)';

/** Parses argv against the table; throws UsageError naming the flag and the fault. */
export function parseFlags(argv: readonly string[], table: Record<string, FlagSpec>): FlagValues {
  const out: FlagValues = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') throw new UsageError(`unexpected argument '${a}' (flags start with --)`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = table[name];
    if (!spec) throw new UsageError(`unknown flag --${name}${suggest(name, Object.keys(table))}`);
    if (name in out) throw new UsageError(`--${name} is given twice`);
    let raw: string;
    if (spec.type === 'bool') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    if (eq >= 0) raw = a.slice(eq + 1);
    else {
      // A following '-1' or '-0.5' is a value, not a flag.
      if (i + 1 >= argv.length || (argv[i + 1].startsWith('--') && !/^--?\d/.test(argv[i + 1]))) throw new UsageError(`--${name} needs a value (${spec.arg ?? 'VALUE'})`);
      raw = argv[++i];
    }
    out[name] = convert(name, spec, raw);
  }
  return out;
}

function convert(name: string, spec: FlagSpec, raw: string): string | number {
  if (spec.type === 'string') {
    if (raw === '') throw new UsageError(`--${name} must not be empty`);
    if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`unknown --${name} '${raw}' (one of ${spec.choices.join(', ')})`);
    return raw;
  }
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${raw}'`);
  if (spec.type === 'int' && !Number.isInteger(n)) throw new UsageError(`--${name} must be a whole number, got '${raw}'`);
  checkRange(name, spec, n);
  return n;
}

export function checkRange(name: string, spec: Pick<FlagSpec, 'min' | 'max' | 'above'>, n: number): void {
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`--${name} must be >= ${spec.min}, got ${n}`);
  if (spec.above !== undefined && !(n > spec.above)) throw new UsageError(`--${name} must be > ${spec.above}, got ${n}`);
  if (spec.max !== undefined && n > spec.max) throw new UsageError(`--${name} must be <= ${spec.max}, got ${n}`);
}

/** Refuses flags given for an algorithm that does not take them. */
export function checkApplies(values: FlagValues, table: Record<string, FlagSpec>, algorithm: string): void {
  for (const name of Object.keys(values)) {
    const only = table[name].for;
    if (only && !only.includes(algorithm)) throw new UsageError(`--${name} is for --algorithm ${orList(only)}, not ${algorithm}`);
  }
}

const orList = (xs: readonly string[]) => (xs.length === 1 ? xs[0] : `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}`);

/** " (did you mean --x?)" for a near miss. */
function suggest(name: string, names: string[]): string {
  const d = (a: string, b: string) => {
    const m = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) m[0][j] = j;
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) m[i][j] = Math.min(m[i - 1][j] + 1, m[i][j - 1] + 1, m[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return m[a.length][b.length];
  };
  const best = names.map((n) => [n, d(name, n)] as const).sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= 2 ? ` (did you mean --${best[0]}?)` : '';
}

/** A help entry: `head` in the first 22 columns, `text` wrapped to 100 beside it. */
export function helpEntry(head: string, text: string): string {
  const lines: string[] = [];
  let line = head.padEnd(22);
  if (head.length >= 22) { lines.push(head); line = ' '.repeat(22); }
  for (const w of text.split(' ')) {
    if (line.length + w.length > 100 && line.trim()) { lines.push(line.trimEnd()); line = ' '.repeat(22); }
    line += `${w} `;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

/** The --help text from the table. */
export function helpText(intro: string, table: Record<string, FlagSpec>): string {
  const entries = Object.entries(table).map(([name, spec]) => helpEntry(`  --${name}${spec.type === 'bool' ? '' : ` ${spec.arg ?? 'N'}`}`, spec.help));
  return `${[intro, ...entries].join('\n')}\n`;
}
