// Undo / redo of selection steps with bounded memory. Pure module.
//
// The history keeps the selection after each step (a snapshot, not a diff: undo and redo are
// then one decode, whatever the step did). A snapshot is stored in the smaller of two forms:
// the sorted uint32 cells (4 bytes a cell) or a bitset of n bits (n / 8 bytes), so a step costs
// at most n / 8 bytes: 125 KB at a million cells. The oldest steps are dropped once the history
// holds more than `maxSteps` snapshots or more than `maxBytes` bytes; the current state always
// stays.

import { bitsetCells } from "./cellset.js";

/** Default limits: 100 steps, 32 MiB. */
export const MAX_STEPS = 100;
export const MAX_BYTES = 32 * 1024 * 1024;

function pack(cells, nCells, given = null) {
  const bitsetBytes = Math.ceil(nCells / 8);
  if (4 * cells.length <= bitsetBytes) return { cells: cells.slice(), bytes: 4 * cells.length };
  if (given && given.length >= bitsetBytes) return { bits: given.subarray(0, bitsetBytes), count: cells.length, bytes: bitsetBytes };
  const bits = new Uint8Array(bitsetBytes);
  for (let i = 0; i < cells.length; i++) bits[cells[i] >>> 3] |= 1 << (cells[i] & 7);
  return { bits, count: cells.length, bytes: bitsetBytes };
}

function unpack(entry) {
  return entry.cells ? entry.cells.slice() : bitsetCells(entry.bits, entry.count);
}

function sameCells(entry, cells) {
  if (entry.cells) {
    if (entry.cells.length !== cells.length) return false;
    for (let i = 0; i < cells.length; i++) if (entry.cells[i] !== cells[i]) return false;
    return true;
  }
  if (entry.count !== cells.length) return false;
  for (let i = 0; i < cells.length; i++) if (!(entry.bits[cells[i] >>> 3] & (1 << (cells[i] & 7)))) return false;
  return true;
}

export class SelectionHistory {
  /**
   * @param {number} nCells cells of the dataset (bitset size)
   * @param {{maxSteps?: number, maxBytes?: number}} [limits]
   */
  constructor(nCells, { maxSteps = MAX_STEPS, maxBytes = MAX_BYTES } = {}) {
    if (!Number.isInteger(nCells) || nCells < 0) throw new Error(`nCells must be a non-negative integer, got ${nCells}`);
    if (!(maxSteps >= 1)) throw new Error(`maxSteps must be at least 1, got ${maxSteps}`);
    this.nCells = nCells;
    this.maxSteps = maxSteps;
    this.maxBytes = maxBytes;
    this.reset(new Uint32Array(0));
  }

  /** Forget every step; `cells` becomes the only (current) state. */
  reset(cells) {
    this.entries = [{ ...pack(cells, this.nCells), source: "start" }];
    this.pos = 0;
    this.bytes = this.entries[0].bytes;
  }

  /**
   * Record the selection after a step (sorted unique cells). Steps after the current one (undone
   * steps) are dropped. A step that leaves the selection as it was records nothing.
   *
   * @param {Uint32Array} cells
   * @param {string} source the tool that made the step
   * @param {Uint8Array|null} [bits] the same cells as a bitset (bit i & 7 of byte i >> 3), when
   *   the tool made one: kept as it is (not copied) instead of building one
   * @returns {boolean} whether a step was recorded
   */
  push(cells, source, bits = null) {
    if (sameCells(this.entries[this.pos], cells)) return false;
    for (const dropped of this.entries.splice(this.pos + 1)) this.bytes -= dropped.bytes;
    const entry = { ...pack(cells, this.nCells, bits), source };
    this.entries.push(entry);
    this.bytes += entry.bytes;
    this.pos = this.entries.length - 1;
    while (this.entries.length > 1 && (this.entries.length > this.maxSteps || this.bytes > this.maxBytes)) {
      this.bytes -= this.entries.shift().bytes;
      this.pos--;
    }
    return true;
  }

  get canUndo() {
    return this.pos > 0;
  }

  get canRedo() {
    return this.pos < this.entries.length - 1;
  }

  /** Steps that can be undone / redone. */
  get depth() {
    return { undo: this.pos, redo: this.entries.length - 1 - this.pos };
  }

  /**
   * Go back one step.
   *
   * @returns {{cells: Uint32Array, source: string}|null} the selection before the undone step and
   *   the tool of the undone step; null when there is nothing to undo
   */
  undo() {
    if (!this.canUndo) return null;
    const undone = this.entries[this.pos];
    this.pos--;
    return { cells: unpack(this.entries[this.pos]), source: undone.source };
  }

  /**
   * Go forward one step.
   *
   * @returns {{cells: Uint32Array, source: string}|null} the selection after the redone step and
   *   its tool; null when there is nothing to redo
   */
  redo() {
    if (!this.canRedo) return null;
    this.pos++;
    const entry = this.entries[this.pos];
    return { cells: unpack(entry), source: entry.source };
  }
}
