// Builds the desk's bundle for Airflow's react_apps loader: one ES module (dist/tradeops-desk.js)
// that registers the Desk, Saga and "Trading state" components on globalThis, plus the nav icons.
// React, its JSX runtime, Chakra UI and Emotion are the host's own (globals the Airflow UI sets
// before it imports a plugin), never bundled copies: two Reacts in one page break hooks.
// `node build.mjs --tests` bundles test/*.test.ts into dist-test/ for `node --test`.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));

/** Each external import and the host global it is read from at run time. */
const HOST_GLOBALS = {
  react: "React",
  "react-dom": "ReactDOM",
  "react/jsx-runtime": "ReactJSXRuntime",
  "@chakra-ui/react": "ChakraUI",
  "@emotion/react": "EmotionReact",
};

/** Resolves the host's libraries to CommonJS shims over globalThis, so named imports keep working. */
const hostGlobals = {
  name: "host-globals",
  setup(pluginBuild) {
    const filter = new RegExp(`^(${Object.keys(HOST_GLOBALS).map((n) => n.replace(/[/.]/g, "\\$&")).join("|")})$`);
    pluginBuild.onResolve({ filter }, (args) => ({ path: args.path, namespace: "host-global" }));
    pluginBuild.onLoad({ filter: /.*/, namespace: "host-global" }, (args) => {
      const name = HOST_GLOBALS[args.path];
      return {
        contents:
          `const lib = globalThis[${JSON.stringify(name)}];\n` +
          `if (lib === undefined) throw new Error("tradeops desk: the host did not provide globalThis.${name}");\n` +
          "module.exports = lib;\n",
        loader: "js",
      };
    });
  },
};

async function buildBundle() {
  const outdir = path.join(root, "dist");
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: [path.join(root, "src", "index.tsx")],
    outfile: path.join(outdir, "tradeops-desk.js"),
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    sourcemap: true,
    jsx: "automatic",
    legalComments: "none",
    plugins: [hostGlobals],
    logLevel: "warning",
  });
  for (const icon of await readdir(path.join(root, "icons"))) {
    await copyFile(path.join(root, "icons", icon), path.join(outdir, icon));
  }
}

async function buildTests() {
  const testDir = path.join(root, "test");
  const outdir = path.join(root, "dist-test");
  await rm(outdir, { recursive: true, force: true });
  const entryPoints = (await readdir(testDir)).filter((f) => f.endsWith(".test.ts")).map((f) => path.join(testDir, f));
  await build({
    entryPoints,
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  });
}

await (process.argv.includes("--tests") ? buildTests() : buildBundle());
