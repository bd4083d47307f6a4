// Shared by the node tests: paths and the repository's Python (for cross-checks against the
// Python implementation). Tests that need Python skip when the venv is missing.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const TEST_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(TEST_DIR, "..", "..");
export const FIXTURES = path.join(TEST_DIR, "fixtures");
const venvPython = path.join(REPO_ROOT, ".venv", "bin", "python");
export const PYTHON = existsSync(venvPython) ? venvPython : null;
export const NO_PYTHON = PYTHON ? false : `no Python venv at ${venvPython}`;

/** Run a fixture script with the repository's Python; returns stdout as text. */
export function runPython(script, args = [], input = undefined) {
  return execFileSync(PYTHON, [path.join(FIXTURES, script), ...args], {
    cwd: REPO_ROOT,
    input,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** A deterministic pseudo-random generator (mulberry32) for reproducible test data. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
