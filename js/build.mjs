// Builds the browser assets that ship inside the cellucid wheel.
//
//   node build.mjs          production build (minified)
//   node build.mjs --dev    unminified, with inline source maps
//   node build.mjs --clean  remove the build output only
//
// Output (python/cellucid/static/, gitignored, never committed):
//   viewer/index.html         the page the cellucid server serves at "/"
//   viewer/assets/viewer.js   its script   (linked relatively: works under /proxy/<port>/)
//   viewer/assets/viewer.css  its styles
//   widget.js                 the anywidget ES module of the notebook widget
//
// hatch-jupyter-builder runs `npm run build` from pyproject.toml, so `pip install`,
// `pip install -e .` and wheel builds all produce these files.

import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outRoot = path.resolve(here, "..", "python", "cellucid", "static");
const args = new Set(process.argv.slice(2));
const dev = args.has("--dev");

const common = {
  bundle: true,
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "none",
  target: ["es2020"],
  logLevel: "info",
};

async function clean() {
  await rm(outRoot, { recursive: true, force: true });
}

// The viewer's workers, each bundled on its own and handed to the viewer bundle as the string
// export of a virtual module "cellucid:<name>" (started from a Blob URL by
// viewer/src/analysis/workerhost.js: no extra file to find).
const WORKERS = {
  "compare-worker": path.join("viewer", "src", "analysis", "worker.js"), // compare groups
  "filters-worker": path.join("viewer", "src", "filters", "worker.js"), // histograms
  "select-worker": path.join("viewer", "src", "select", "worker.js"), // kNN grow, lasso, category pick
  "lod-worker": path.join("viewer", "src", "render", "lodworker.js"), // level-of-detail order
};

async function workerSourcePlugin() {
  const code = {};
  for (const [name, entry] of Object.entries(WORKERS)) {
    const built = await esbuild.build({
      ...common,
      logLevel: "warning",
      sourcemap: false,
      entryPoints: [path.join(here, entry)],
      format: "iife",
      write: false,
    });
    code[name] = built.outputFiles[0].text;
  }
  return {
    name: "worker-sources",
    setup(build) {
      build.onResolve({ filter: /^cellucid:[a-z-]+-worker$/ }, (args) => ({ path: args.path.slice("cellucid:".length), namespace: "cellucid-worker" }));
      build.onLoad({ filter: /.*/, namespace: "cellucid-worker" }, (args) => {
        if (!(args.path in code)) return { errors: [{ text: `no worker named ${args.path}` }] };
        return { contents: `export default ${JSON.stringify(code[args.path])};`, loader: "js" };
      });
    },
  };
}

async function buildViewer() {
  const outDir = path.join(outRoot, "viewer");
  await mkdir(path.join(outDir, "assets"), { recursive: true });
  // A classic (non-module) script: it also runs from file://, where it can say that
  // no server was found instead of leaving a blank page.
  await esbuild.build({
    ...common,
    entryPoints: { viewer: path.join(here, "viewer", "src", "main.js") },
    outdir: path.join(outDir, "assets"),
    format: "iife",
    plugins: [await workerSourcePlugin()],
  });
  await copyFile(path.join(here, "viewer", "index.html"), path.join(outDir, "index.html"));
}

async function buildWidget() {
  await esbuild.build({
    ...common,
    entryPoints: [path.join(here, "widget", "src", "index.js")],
    outfile: path.join(outRoot, "widget.js"),
    format: "esm",
  });
}

await clean();
if (!args.has("--clean")) {
  await buildViewer();
  await buildWidget();
  console.log(`cellucid assets written to ${path.relative(process.cwd(), outRoot) || "."}`);
}
