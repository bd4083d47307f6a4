// The Session section of the panel: Save session (downloads a .cellucid-session), Open session
// (a file picker, or drop the file anywhere on the viewer), and the message after opening one
// (also for the session that opens with the dataset, main.js). Opening goes through
// Viewer.openSession (session/restore.js).

import { h } from "./dom.js";
import { sessionFileName } from "../session/save.js";

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A one-line summary of what an opened session restored. */
export function describeRestore(r) {
  const parts = [plural(r.groups, "group"), plural(r.filters, "filter"), plural(r.fields, "user field")];
  if (r.comparisons) parts.push(plural(r.comparisons, "comparison"));
  if (r.palettes) parts.push(plural(r.palettes, "colour set"));
  return parts.join(", ");
}

/**
 * Open session bytes and report the outcome in the panel and in a banner over the viewer.
 * Never rejects: a bad or foreign session leaves the viewer as it was and says why.
 *
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {ArrayBuffer|Uint8Array} bytes
 * @param {string} from what is opened (a file name, "?session=…")
 * @returns {Promise<boolean>} true when it was opened
 */
export async function openSessionBytes(viewer, bytes, from) {
  viewer.emit("sessionstatus", { state: "busy", text: `Opening ${from}…` });
  try {
    const r = await viewer.openSession(bytes);
    const head = `Opened ${from}: ${describeRestore(r)}.`;
    viewer.emit("sessionstatus", { state: r.warnings.length ? "warn" : "ok", text: head, details: r.warnings });
    if (document.body) document.body.dataset.theme = viewer.dark ? "dark" : "light";
    return true;
  } catch (err) {
    viewer.emit("sessionstatus", { state: "bad", text: `Could not open ${from}: ${err.message || err}`, details: [] });
    return false;
  }
}

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A dismissible banner over the stage for warnings and errors of opening a session. */
function banner(stage) {
  const text = h("span.session-banner-text");
  const list = h("ul.session-banner-details");
  const el = h("div.session-banner", { role: "alert", hidden: true }, text, list, h("button.link", { type: "button", text: "dismiss", on: { click: () => (el.hidden = true) } }));
  stage.append(el);
  return (status) => {
    el.hidden = !(status.state === "warn" || status.state === "bad");
    el.dataset.state = status.state;
    text.textContent = status.text;
    list.replaceChildren(...(status.details || []).slice(0, 8).map((d) => h("li", { text: d })));
  };
}

/**
 * The panel section and the drop target.
 *
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {{section: Function, stage: HTMLElement|null}} opts
 * @returns {HTMLElement}
 */
export function sessionSection(viewer, { section, stage = null }) {
  const status = h("div.small.muted.session-status", { "aria-live": "polite" });
  const showBanner = stage ? banner(stage) : null;
  viewer.on("sessionstatus", (s) => {
    status.textContent = s.text + (s.details && s.details.length ? ` (${plural(s.details.length, "warning")})` : "");
    status.dataset.state = s.state;
    status.title = (s.details || []).join("\n");
    if (showBanner) showBanner(s);
  });
  const picker = h("input.session-file", { type: "file", accept: ".cellucid-session", hidden: true, "aria-label": "Session file" });
  picker.addEventListener("change", async () => {
    const file = picker.files && picker.files[0];
    picker.value = "";
    if (file) await openSessionBytes(viewer, new Uint8Array(await file.arrayBuffer()), file.name);
  });
  const save = async () => {
    viewer.emit("sessionstatus", { state: "busy", text: "Saving…" });
    try {
      const bytes = await viewer.sessionBundle();
      const name = sessionFileName(viewer.dataset.id);
      download(bytes, name);
      viewer.emit("sessionstatus", { state: "ok", text: `Saved ${name} (${(bytes.length / 1024).toFixed(1)} KiB)`, details: [] });
    } catch (err) {
      viewer.emit("sessionstatus", { state: "bad", text: `Could not save: ${err.message || err}`, details: [] });
    }
  };
  if (stage) installDrop(viewer, stage);
  return section(
    "Session",
    h(
      "div.row",
      {},
      h("button.btn.session-save", { type: "button", text: "Save session", title: "Download the colouring, camera, filters, groups, fields and comparisons as a .cellucid-session file", on: { click: save } }),
      h("button.btn.session-open", { type: "button", text: "Open session…", title: "Open a .cellucid-session file (or drop it on the viewer)", on: { click: () => picker.click() } }),
      picker,
    ),
    status,
  );
}

/** Drop a .cellucid-session file anywhere on the viewer to open it. */
function installDrop(viewer, stage) {
  const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files");
  stage.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    stage.classList.add("dropping");
  });
  stage.addEventListener("dragleave", () => stage.classList.remove("dropping"));
  stage.addEventListener("drop", async (e) => {
    stage.classList.remove("dropping");
    const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
    if (!files.length) return;
    e.preventDefault();
    const file = files.find((f) => f.name.endsWith(".cellucid-session")) || files[0];
    await openSessionBytes(viewer, new Uint8Array(await file.arrayBuffer()), file.name);
  });
}
