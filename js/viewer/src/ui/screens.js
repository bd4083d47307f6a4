// Full-page states: loading with progress, error naming the failing file and key, freeze overlay.

import { h, fmtBytes } from "./dom.js";

export class Screen {
  constructor(el) {
    this.el = el;
    this.status = el.querySelector("#status");
    this.bar = el.querySelector(".progress > span");
    this.progressText = el.querySelector(".progress-text");
    this.details = el.querySelector("#details");
  }

  show(phase, message) {
    this.el.hidden = false;
    this.el.dataset.phase = phase;
    this.status.textContent = message;
  }

  hide() {
    this.el.hidden = true;
  }

  progress(p) {
    const frac = p.bytesTotal > 0 ? Math.min(1, p.bytes / p.bytesTotal) : p.files ? p.filesDone / p.files : 0;
    this.bar.style.width = `${(frac * 100).toFixed(1)}%`;
    this.progressText.textContent = `${p.filesDone} / ${p.files} files · ${fmtBytes(p.bytes)}${p.bytesTotal > p.bytes ? ` of ${fmtBytes(p.bytesTotal)}` : ""}${p.current ? ` · ${p.current}` : ""}`;
  }

  /** err: LoadError-like {file, key, message, violations?} */
  error(err, extraRows = []) {
    this.show("error", err.file ? "This dataset cannot be shown" : "Something went wrong");
    const rows = [];
    if (err.file) rows.push(["File", err.file]);
    if (err.key) rows.push(["Key", err.key]);
    rows.push(["Problem", err.message || String(err)]);
    if (err.violations && err.violations.length > 1) rows.push(["Also", err.violations.slice(1, 8).map((v) => `${v.file}: ${v.key}: expected ${JSON.stringify(v.expected)}, found ${JSON.stringify(v.found)}`).join("\n")]);
    this.setDetails([...rows, ...extraRows]);
  }

  setDetails(rows) {
    this.details.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
    this.details.hidden = rows.length === 0;
  }
}

/** Connection line: data-state is "ok" | "static" | "none" | "error" | "lost". */
export function setConnection(el, state, text) {
  el.dataset.state = state;
  el.textContent = text;
}

export function freezeOverlay(host, { reason }) {
  const el = h(
    "div.freeze",
    { role: "alert" },
    h("div.freeze-msg", {}, h("strong", { text: "Viewer frozen" }), h("p", { text: reason }), h("p.muted", { text: "Reload the page to reconnect." })),
  );
  // Block every input under the overlay.
  for (const ev of ["pointerdown", "pointermove", "wheel", "click", "keydown", "contextmenu"]) el.addEventListener(ev, (e) => (e.stopPropagation(), e.preventDefault()), { passive: false });
  host.append(el);
  return el;
}
