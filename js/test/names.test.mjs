import assert from "node:assert/strict";
import { test } from "node:test";
import { fillPattern, hasNonSpace, pathProblem, safeName, strictSafeName } from "../viewer/src/data/names.js";
import { NO_PYTHON, runPython } from "./helpers.mjs";

test("safeName: the SPEC §2.4 examples", () => {
  assert.equal(safeName("pct mito"), "pct_mito");
  assert.equal(safeName("CD8A/B"), "CD8A_B");
  assert.equal(safeName("__x__"), "x");
  assert.equal(safeName(".."), "field");
  assert.equal(safeName("Gène"), "G_ne");
  assert.equal(safeName("a  ,b"), "a_b");
});

test("safeName: code points, not UTF-16 units; empty results become field", () => {
  assert.equal(safeName("a😀b"), "a_b"); // one astral character → one "_"
  assert.equal(safeName("😀"), "field");
  assert.equal(safeName("a\udc80b"), "a_b"); // lone surrogate
  assert.equal(safeName("été"), "t");
  assert.equal(safeName(""), "field");
  assert.equal(safeName("-"), "-");
  assert.equal(safeName("x.y-z"), "x.y-z");
  assert.equal(safeName("._a._"), "a");
  assert.equal(safeName(12), "12");
});

test("strictSafeName: null when steps 1-3 leave nothing", () => {
  for (const key of ["", "★", "__", "..", "._", "😀"]) assert.equal(strictSafeName(key), null, key);
  assert.equal(strictSafeName("Gène"), "G_ne");
  assert.equal(strictSafeName("-"), "-");
});

test("safeName and strictSafeName agree with python naming.safe_name", { skip: NO_PYTHON }, () => {
  const keys = ["pct mito", "CD8A/B", "__x__", "..", "Gène", "a  ,b", "", "★", "__", "-", "a😀b", "😀", "x.y-z", "._a._", "été", "\t tab", "a\u0085b", "日本語 key", "a/../b", "n genes", "%", "A_b-c.d"];
  const script = "import json,sys\nfrom cellucid.export.naming import safe_name, strict_safe_name\nprint(json.dumps([[safe_name(k), strict_safe_name(k)] for k in json.load(sys.stdin)]))";
  const out = JSON.parse(runPythonInline(script, JSON.stringify(keys)));
  keys.forEach((key, i) => assert.deepEqual([safeName(key), strictSafeName(key)], out[i], JSON.stringify(key)));
});

function runPythonInline(code, input) {
  return runPython("run_inline.py", [code], input);
}

test("fillPattern: first {key} with the safe name, then {ext}; literal replacement", () => {
  assert.equal(fillPattern("obs/{key}.codes.{ext}.gz", "cell type", "u8"), "obs/cell_type.codes.u8.gz");
  assert.equal(fillPattern("var/{key}.values.f32", "CD8A/B"), "var/CD8A_B.values.f32");
  assert.equal(fillPattern("{key}/{key}", "a b"), "a_b/{key}"); // once, like python str.replace(…, 1)
  assert.equal(fillPattern("obs/{key}.codes.{ext}", "x"), "obs/x.codes.{ext}"); // no ext given
  assert.equal(fillPattern("obs/{key}", "a$&b"), "obs/a_b");
  assert.equal(fillPattern("obs/{key}.{ext}", "k", "$&"), "obs/k.$&"); // no $-patterns in replacements
  assert.throws(() => fillPattern("obs/{key}", "★"), /no safe file name/);
  assert.throws(() => fillPattern("obs/{key}", ""), /no safe file name/);
});

test("pathProblem: the rules of SPEC §2.12 item 9, same answers as python path_problem", () => {
  const cases = {
    "obs/age.values.f32": null,
    "points_2d.bin.gz": null,
    "": "is not a non-empty string",
    "../secret.bin": "has a '..' segment",
    "obs/../x": "has a '..' segment",
    "obs/..x": null,
    "/abs/path": "is absolute",
    "C:x": "is absolute",
    "https://x/y": "is absolute",
    "obs\\x": "has a backslash",
    "obs/a?b": "has a '?'",
    "obs/a#b": "has a '#'",
    "obs/a b": "has whitespace",
    "obs/a\u3000b": "has whitespace",
    "obs/a\u0085b": "has whitespace",
    "obs/a\u0000b": "has a control character",
    "obs/a\u007fb": "has a control character",
    "obs/a\ufeffb": null,
  };
  for (const [input, expected] of Object.entries(cases)) assert.equal(pathProblem(input), expected, JSON.stringify(input));
  assert.equal(pathProblem(null), "is not a non-empty string");
  assert.equal(pathProblem(5), "is not a non-empty string");
});

test("pathProblem agrees with python on the same inputs", { skip: NO_PYTHON }, () => {
  const inputs = ["obs/age.values.f32", "", "../x", "obs/../x", "/a", "C:x", "1:x", "a:b", "https://x", "obs\\x", "a?b", "a#b", "a b", "a\u3000b", "a\u0085b", "a\u001cb", "a\u0000b", "a\u007fb", "a\ufeffb", "..", ".", "a/./b"];
  const script = "import json,sys\nfrom cellucid.export.reader import path_problem\nprint(json.dumps([path_problem(p) for p in json.load(sys.stdin)]))";
  const out = JSON.parse(runPythonInline(script, JSON.stringify(inputs)));
  inputs.forEach((p, i) => assert.equal(pathProblem(p), out[i], JSON.stringify(p)));
});

test("hasNonSpace uses python's whitespace set", () => {
  assert.equal(hasNonSpace("x"), true);
  assert.equal(hasNonSpace(" \t\n\u3000\u0085\u001c"), false);
  assert.equal(hasNonSpace("\ufeff"), true); // not whitespace for python's str.strip
  assert.equal(hasNonSpace(""), false);
  assert.equal(hasNonSpace(3), false);
});
