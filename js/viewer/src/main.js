// Placeholder viewer page: reports which cellucid server (if any) served it.
// The WebGL viewer replaces this in a later release; the server discovery stays.

import "./style.css";
import { describeHealth, healthUrl, pageBase, probeHealth } from "./health.js";

const POLL_MS = 3000; // the viewer re-checks health every 3 s (SPEC §4.1)

const panel = document.querySelector("main");
const statusEl = document.getElementById("status");
const detailsEl = document.getElementById("details");

function show(state, message, rows = []) {
  panel.dataset.state = state;
  statusEl.textContent = message;
  detailsEl.replaceChildren();
  for (const [label, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    detailsEl.append(dt, dd);
  }
  detailsEl.hidden = rows.length === 0;
}

function render(result, base, everConnected) {
  const where = ["Server", base.href];
  switch (result.kind) {
    case "ok":
      show("ok", "Connected to a cellucid server.", [where, ...describeHealth(result.health)]);
      break;
    case "static":
      show("static", "This page is on a static host (no cellucid server).", [where]);
      break;
    case "error":
      show("error", `The cellucid server reported a problem: ${result.detail}`, [where]);
      break;
    default:
      show(
        everConnected ? "lost" : "none",
        everConnected
          ? "Lost the connection to the cellucid server."
          : "No cellucid server found. Start one with: cellucid serve <folder or .h5ad>, then open the URL it prints.",
        [where, ["Details", result.detail]],
      );
  }
}

async function main() {
  const base = pageBase(window.location.href);
  const url = healthUrl(window.location.href);
  let everConnected = false;
  let stopped = false;
  window.addEventListener("pagehide", () => {
    stopped = true;
  });
  for (;;) {
    const result = await probeHealth(url);
    if (stopped) return;
    if (result.kind === "ok") everConnected = true;
    render(result, base, everConnected);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (stopped) return;
  }
}

main();
