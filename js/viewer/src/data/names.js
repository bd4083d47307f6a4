// File names of the export format (SPEC §2.4, §2.12 item 9).
//
// The same rule as python/cellucid/export/naming.py (`safe_name`, `strict_safe_name`) and
// reader.py (`payload_path`, `path_problem`), so the viewer resolves every payload to the
// file the exporter wrote.
//
// Code points versus UTF-16: Python's regex works on code points, JavaScript's on UTF-16 code
// units. A character outside the BMP is two code units, both outside [A-Za-z0-9._-], so they
// fall into the same maximal run and become a single "_", exactly as the one code point does
// in Python. A lone surrogate is one character in both languages. The `u` flag below makes the
// code-point view explicit anyway.

const UNSAFE_RUN = /[^A-Za-z0-9._-]+/gu;
const EDGE_DOTS_UNDERSCORES = /^[._]+|[._]+$/g;
const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// Python's str.isspace() set (differs from JavaScript's \s: adds U+001C-U+001F and U+0085,
// lacks U+FEFF).
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
const CONTROL = /[\x00-\x1f\x7f]/;

function strip(key) {
  return String(key).replace(UNSAFE_RUN, "_").replace(EDGE_DOTS_UNDERSCORES, "");
}

/**
 * The file-name form of a key (SPEC §2.4 steps 1-4): every maximal run of characters outside
 * `[A-Za-z0-9._-]` becomes one `_`, leading and trailing `.`/`_` are stripped, and an empty
 * result becomes `"field"`.
 *
 * Non-string keys go through `String()` (manifests store keys as JSON strings, so this only
 * matters for callers passing numbers).
 *
 * @param {unknown} key
 * @returns {string}
 * @example safeName("pct mito") === "pct_mito"; safeName("Gène") === "G_ne"; safeName("..") === "field"
 */
export function safeName(key) {
  return strip(key) || "field";
}

/**
 * The safe form of an obs key or gene id, or `null` when steps 1-3 leave nothing (a key
 * without any ASCII letter, digit or `-`, such as `""`, `"★"`, `"__"` or `".."`). Strict
 * readers reject such keys instead of mapping them to `"field"` (SPEC §2.4).
 *
 * @param {unknown} key
 * @returns {string|null}
 */
export function strictSafeName(key) {
  return strip(key) || null;
}

/**
 * Resolve a manifest path pattern for one field (SPEC §2.4, §2.6.3): the first `{key}` is
 * replaced by the strict safe form of `key`, then the first `{ext}` by `ext` when given (codes
 * patterns). Replacement is literal. Mirrors python `payload_path`.
 *
 * @param {string} pattern e.g. `"obs/{key}.codes.{ext}.gz"`
 * @param {unknown} key the original obs key or gene id
 * @param {string} [ext] e.g. `"u8"`
 * @returns {string}
 * @throws {Error} when `key` has no safe file name
 * @example fillPattern("obs/{key}.codes.{ext}.gz", "cell type", "u8") === "obs/cell_type.codes.u8.gz"
 */
export function fillPattern(pattern, key, ext) {
  const safe = strictSafeName(key);
  if (safe === null) {
    throw new Error(`key ${JSON.stringify(String(key))} has no safe file name (SPEC §2.4)`);
  }
  let path = String(pattern).replace("{key}", () => safe);
  if (ext !== undefined && ext !== null) path = path.replace("{ext}", () => String(ext));
  return path;
}

/**
 * Why `relpath` is not an allowed payload path (SPEC §2.12 item 9), or `null` when it is: a
 * payload path is a non-empty relative path with `/` separators and no `..` segment, `?`, `#`,
 * whitespace, control character or backslash. Same answers as python `path_problem`.
 *
 * @param {unknown} relpath
 * @returns {string|null} e.g. `"has a '..' segment"`
 */
export function pathProblem(relpath) {
  if (typeof relpath !== "string" || relpath === "") return "is not a non-empty string";
  if (relpath.includes("\\")) return "has a backslash";
  // A Windows drive ("C:x") is a letter and a colon, which the URL-scheme pattern also covers.
  if (relpath.startsWith("/") || URL_SCHEME.test(relpath)) return "is absolute";
  if (relpath.split("/").includes("..")) return "has a '..' segment";
  if (relpath.includes("?")) return "has a '?'";
  if (relpath.includes("#")) return "has a '#'";
  if (PY_SPACE.test(relpath)) return "has whitespace";
  if (CONTROL.test(relpath)) return "has a control character";
  return null;
}

/**
 * Whether `text` contains a character that is not whitespace in Python's sense
 * (`bool(text.strip())`), which the SPEC uses for names, labels and categories.
 *
 * @param {unknown} text
 * @returns {boolean}
 */
export function hasNonSpace(text) {
  if (typeof text !== "string") return false;
  for (const ch of text) if (!PY_SPACE.test(ch)) return true;
  return false;
}

/**
 * Whether `text` starts or ends with whitespace in Python's sense (`text != text.strip()`).
 *
 * @param {string} text
 * @returns {boolean}
 */
export function hasSurroundingSpace(text) {
  if (text === "") return false;
  const chars = Array.from(text);
  return PY_SPACE.test(chars[0]) || PY_SPACE.test(chars[chars.length - 1]);
}
