// User-defined fields: categorical or continuous per-cell fields made in the viewer (Annotate:
// the groups as categories) or sent from Python (the `addField` command). They join the
// dataset's field list (`dataset.fields`, `dataset.fieldByKey`, with `user: true`), so the
// colour-by menu, the Compare panel and `setColorBy` treat them like obs fields; their data
// stays here (Viewer.loadField looks here first). Categorical ones go into session bundles as
// `core/field-overlays` + `user-defined/codes/<id>` (SPEC §5.2), which
// `apply_cellucid_session_to_anndata` turns into adata.obs columns.

/** The longest field name accepted. */
export const MAX_NAME_LENGTH = 256;

/**
 * Check a field before it is added; returns the field data in the viewer's shape.
 *
 * @param {{key: string, kind: "category"|"continuous", categories?: string[], codes?: Uint8Array|Uint16Array,
 *   values?: Float32Array}} spec
 * @param {number} nCells
 * @returns {object} {key, kind, source: "obs", user: true, codes, categories, missing} or {…, values}
 * @throws {Error} naming what is wrong
 */
export function checkUserField(spec, nCells) {
  const { key, kind } = spec;
  if (typeof key !== "string" || !key.trim()) throw new Error("a field needs a non-empty name");
  if (key.length > MAX_NAME_LENGTH) throw new Error(`field names have at most ${MAX_NAME_LENGTH} characters`);
  if (kind === "category") {
    const { codes, categories } = spec;
    if (!(codes instanceof Uint8Array || codes instanceof Uint16Array)) throw new Error("category codes must be a Uint8Array or a Uint16Array");
    if (!Array.isArray(categories) || !categories.length || !categories.every((c) => typeof c === "string")) {
      throw new Error("categories must be a non-empty list of strings");
    }
    if (new Set(categories).size !== categories.length) throw new Error("categories must not repeat");
    const span = codes instanceof Uint8Array ? 255 : 65535;
    if (categories.length > span) throw new Error(`${categories.length} categories do not fit ${codes.constructor.name} codes (at most ${span})`);
    if (codes.length !== nCells) throw new Error(`${codes.length} codes for ${nCells} cells`);
    // codes ≥ the number of categories are missing values; `span` is the conventional one
    return { key, kind, source: "obs", user: true, codes, categories: categories.slice(), missing: span };
  }
  if (kind === "continuous") {
    const { values } = spec;
    if (!(values instanceof Float32Array)) throw new Error("continuous values must be a Float32Array");
    if (values.length !== nCells) throw new Error(`${values.length} values for ${nCells} cells`);
    return { key, kind, source: "obs", user: true, values };
  }
  throw new Error(`kind must be "category" or "continuous", not ${JSON.stringify(kind)}`);
}

export class UserFields {
  /** @param {{dataset: object, nCells: number}} viewer */
  constructor(viewer) {
    this.viewer = viewer;
    this.data = new Map(); // key -> field data
    this.meta = new Map(); // key -> {id, origin}
    this.nextId = 1;
  }

  has(key) {
    return this.data.has(key);
  }

  get(key) {
    return this.data.get(key);
  }

  /** [{key, kind, categories, origin}] in the order they were added. */
  list() {
    return [...this.data.values()].map((f) => ({ key: f.key, kind: f.kind, categories: f.kind === "category" ? f.categories.slice() : null, origin: this.meta.get(f.key).origin }));
  }

  /**
   * Add a field, or replace a user field of the same name. A name that an obs field or a gene
   * already has is refused.
   *
   * @param {object} spec see checkUserField
   * @param {string} origin "annotation" | "python"
   * @returns {object} the field data
   */
  add(spec, origin) {
    const ds = this.viewer.dataset;
    const field = checkUserField(spec, this.viewer.nCells);
    const { key } = field;
    if (!this.data.has(key)) {
      if (ds.fieldByKey.has(key)) throw new Error(`the dataset already has an obs field ${JSON.stringify(key)}; pick another name`);
      if (ds.geneIndex && ds.geneIndex.has(key)) throw new Error(`${JSON.stringify(key)} is a gene of this dataset; pick another name`);
      this.meta.set(key, { id: `user-${this.nextId++}`, origin });
    } else {
      this.meta.get(key).origin = origin;
      ds.fields.splice(ds.fields.findIndex((f) => f.key === key), 1);
    }
    this.data.set(key, field);
    const descriptor = { key, kind: field.kind, user: true };
    if (field.kind === "category") Object.assign(descriptor, { categories: field.categories, missing: field.missing });
    ds.fields.push(descriptor);
    ds.fieldByKey.set(key, descriptor);
    return field;
  }

  /** The `userDefinedFields` of writeSessionBundle: the categorical fields with their codes. */
  forSession() {
    return [...this.data.values()]
      .filter((f) => f.kind === "category")
      .map((f) => ({ id: this.meta.get(f.key).id, key: f.key, kind: "category", categories: f.categories.slice(), source: "obs", codes: f.codes }));
  }

  /** The continuous fields for the session's `cellucid/user-fields` chunks (session/userfloats.js). */
  continuousForSession() {
    return [...this.data.values()].filter((f) => f.kind === "continuous").map((f) => ({ id: this.meta.get(f.key).id, key: f.key, values: f.values }));
  }
}
