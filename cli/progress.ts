// A progress line for long runs: rate, ETA and the latest metrics. Redraws in place on a terminal,
// and prints a plain line every 10% otherwise (logs, CI).

export class Progress {
  private start = performance.now();
  private lastDecile = -1;

  /** `first`: the count already done when this process started (a resumed run). */
  constructor(private readonly total: number, private readonly label: string, private readonly out = process.stderr, private readonly first = 0) {}

  update(done: number, metrics: Record<string, number> = {}): void {
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > this.first ? (elapsed / (done - this.first)) * (this.total - done) : NaN;
    const m = Object.entries(metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join('  ');
    const pct = Math.floor((100 * done) / this.total);
    if (this.out.isTTY) {
      const width = 24, fill = Math.round((width * done) / this.total);
      this.out.write(`\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total}  ${fmt(elapsed)} elapsed, ETA ${fmt(eta)}  ${m}   `);
      if (done === this.total) this.out.write('\n');
    } else if (Math.floor(pct / 10) !== this.lastDecile || done === this.total) {
      this.lastDecile = Math.floor(pct / 10);
      this.out.write(`${this.label} ${done}/${this.total} (${pct}%)  ${fmt(elapsed)} elapsed, ETA ${fmt(eta)}  ${m}\n`);
    }
  }

  /** Ends the redrawn line (a run stopped before its total). */
  done(): void { if (this.out.isTTY) this.out.write('\n'); }

  /** Prints a line of its own (e.g. a held-out score); `excludeMs` of work outside the loop is left out of rate and ETA. */
  note(line: string, excludeMs = 0): void {
    this.start += excludeMs;
    this.out.write(this.out.isTTY ? `\r\x1b[K${line}\n` : `${line}\n`);
  }
}

function fmt(s: number): string {
  if (!Number.isFinite(s)) return '--';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}
