// File-system checks the CLI makes before any work, and a yield that lets signals in.

import { accessSync, constants, existsSync, mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './flags.js';

/**
 * Creates `dir` (one level at a time: a recursive mkdir under /proc spins forever) and proves it
 * writable with a probe file; throws UsageError naming the folder and the reason.
 */
export function ensureWritableFolder(dir: string): void {
  const missing: string[] = [];
  let d = resolve(dir);
  while (!existsSync(d)) { missing.unshift(d); const up = dirname(d); if (up === d) break; d = up; }
  const fail = (why: string): never => { throw new UsageError(`cannot write to ${dir}: ${why}`); };
  if (!statSync(d).isDirectory()) fail(`${d} is not a folder`);
  try {
    for (const m of missing) mkdirSync(m);
    accessSync(resolve(dir), constants.W_OK);
    const probe = resolve(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (e: any) {
    fail(e.code ?? e.message);
  }
}

/** A macrotask turn: signal handlers run only between them, never while promises chain. */
export const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
