// Write a .cellucid-session bundle with the viewer's own writer (viewer/src/session/bundle.js),
// for the Python tests (tests/test_session_*.py):
//
//     node js/tools/make_session_bundle.mjs OUT.cellucid-session < session.json
//
// session.json has the shape writeSessionBundle takes, with plain JSON arrays: each highlight
// group's `cells` becomes a Uint32Array, each user-defined field's `codes` a Uint16Array when
// some code is >= 256 (or the field has `"wide": true`), else a Uint8Array.
import { readFileSync, writeFileSync } from "node:fs";
import { writeSessionBundle } from "../viewer/src/session/bundle.js";

const [out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node make_session_bundle.mjs OUT.cellucid-session < session.json");
  process.exit(2);
}
const session = JSON.parse(readFileSync(0, "utf8"));
for (const page of session.highlightPages ?? []) {
  for (const group of page.groups ?? []) group.cells = Uint32Array.from(group.cells);
}
for (const field of session.userDefinedFields ?? []) {
  const wide = field.wide || field.codes.some((c) => c >= 256);
  delete field.wide;
  field.codes = wide ? Uint16Array.from(field.codes) : Uint8Array.from(field.codes);
}
writeFileSync(out, await writeSessionBundle(session));
