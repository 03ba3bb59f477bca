// Bundles every js/widgets/<name>.ts into <outdir>/<name>.js (+ <name>.css): minified ESM, no source maps,
// so the output depends only on the sources and the pinned esbuild version (the committed bundles are
// checked against a fresh build by tests/unit/test_static_bundle.py).
//
//   node build.mjs                 -> ../interpwidgets/static/
//   node build.mjs --outdir DIR    -> DIR
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf("--outdir");
const outdir = flag >= 0 ? resolve(process.argv[flag + 1]) : join(here, "..", "interpwidgets", "static");
const widgets = readdirSync(join(here, "widgets"))
  .filter((name) => name.endsWith(".ts"))
  .sort()
  .map((name) => join(here, "widgets", name));

await esbuild.build({
  entryPoints: widgets,
  outdir,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  absWorkingDir: here,
});
console.log(`built ${widgets.length} widget bundles into ${outdir}`);
