// native/amx-tile-config.h against the gcc intrinsic it replaces. A small AMX program fills the
// tile configuration field by field, as llama.cpp's AMX kernels do, multiplies two int8 tiles
// and prints a row of the result. Built with the header, it must print the right dot products.
// Built without it, gcc 12 drops the configuration stores and the program dies with SIGILL;
// that outcome is only reported, since a fixed compiler would change it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..');
const PROBE_SOURCE = path.join(ROOT, 'test', 'fixtures', 'amx-tile-probe.cc');
const FIX_HEADER = path.join(ROOT, 'native', 'amx-tile-config.h');

function skipReason(): string | false {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return 'AMX exists only on x86-64, and the probe uses Linux system calls';
  }
  if (!/\bamx_int8\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) {
    return 'this CPU has no AMX';
  }
  if (spawnSync('g++', ['--version']).status !== 0) {
    return 'g++ is not on PATH';
  }
  return false;
}

// The first row of C = A x B as tdpbssd computes it: A is 16 x 64 int8, and B has 16 rows of
// 16 columns of 4 int8 values each.
function expectedFirstRow(): number[] {
  const a = (row: number, col: number): number => ((row + col) % 7) - 3;
  const b = (row: number, col: number): number => ((row * 3 + col) % 5) - 2;
  const result: number[] = [];
  for (let column = 0; column < 16; column += 1) {
    let sum = 0;
    for (let group = 0; group < 16; group += 1) {
      for (let lane = 0; lane < 4; lane += 1) {
        sum += a(0, group * 4 + lane) * b(group, column * 4 + lane);
      }
    }
    result.push(sum);
  }
  return result;
}

describe('AMX tile configuration header', { skip: skipReason() }, () => {
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'xguard-amx-'));
  after(() => rmSync(workDir, { recursive: true, force: true }));

  function buildAndRun(name: string, extraFlags: string[]): ReturnType<typeof spawnSync> {
    const binary = path.join(workDir, name);
    const compiled = spawnSync('g++', ['-O2', '-mamx-tile', '-mamx-int8', ...extraFlags, PROBE_SOURCE, '-o', binary], { encoding: 'utf8' });
    assert.equal(compiled.status, 0, compiled.stderr);
    return spawnSync(binary, [], { encoding: 'utf8' });
  }

  test('probe with header computes tiles', (t) => {
    const run = buildAndRun('with-header', ['-include', FIX_HEADER]);
    assert.equal(run.signal, null, `the probe died with ${run.signal}`);
    assert.equal(run.status, 0, String(run.stdout));
    assert.deepEqual(String(run.stdout).trim().split(' ').map(Number), expectedFirstRow());

    // The same program with gcc's own intrinsic, reported for comparison only.
    const unfixed = buildAndRun('without-header', []);
    const outcome = unfixed.signal !== null ? `died with ${unfixed.signal}` : `exited with ${unfixed.status}`;
    t.diagnostic(`without native/amx-tile-config.h the AMX probe ${outcome}`);
  });
});
