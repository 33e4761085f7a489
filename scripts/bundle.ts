/**
 * `deno task bundle`: builds a new build under .build/bundle/ and names it in the manifest
 * (cli/bundle.ts says what it is for, when it is used and how builds are replaced). Does nothing
 * when the current build is fresh; `--force` rebuilds anyway.
 *
 * `deno bundle` (esbuild) sees the sources as they run, after three rewrites made on a copy:
 *   - `lazyImport<T>("./x.ts", import.meta.url)` becomes `import("./x.ts")`, so each lazily
 *     loaded module becomes a chunk of the bundle (`--code-splitting`) instead of a second copy of
 *     modules the bundle already holds;
 *   - `new URL("<entry>", import.meta.url)` naming another bundle entry (the child, the Workers)
 *     names that entry's bundled file;
 *   - every other `import.meta.url` becomes the source file's own URL, and `import.meta.main`
 *     false: bundled code finds its files (libraries, assets, scripts it starts) where the
 *     sources are, and no bundled module takes itself for the program's entry.
 * npm: and node: imports stay imports, and so does each lazy chunk's import, made non-literal
 * again. Prints one line; exits non-zero with one line on failure.
 */
import {
  BUNDLE_DIR,
  BUNDLE_ENTRIES,
  bundledPath,
  type BundleManifest,
  currentManifest,
  fileStamp,
  freshBuild,
  SOURCE_DIRS,
  SOURCE_EXTRAS,
} from "../cli/bundle.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Every file under `dir` whose name ends with `suffix`, as paths under `dir`. */
function filesUnder(dir: string, suffix: string): string[] {
  return [...Deno.readDirSync(dir)].flatMap((e) =>
    e.isDirectory
      ? filesUnder(`${dir}/${e.name}`, suffix).map((path) => `${e.name}/${path}`)
      : e.name.endsWith(suffix)
      ? [e.name]
      : []
  );
}

/** Every .ts file the bundles are built from (SOURCE_DIRS), relative to the root. */
export function sourceFiles(): string[] {
  return SOURCE_DIRS.flatMap((dir) => filesUnder(`${root}/${dir}`, ".ts").map((path) => `${dir}/${path}`))
    .sort();
}

const LAZY_IMPORT = /lazyImport<[^>]*>\(\s*("[^"]+")\s*,\s*import\.meta\.url\s*,?\s*\)/g;
const URL_OF = /new URL\(\s*("[^"]+")\s*,\s*import\.meta\.url\s*\)/g;

/** The source of `rel` as it is bundled into `build` (the module comment above lists the rewrites). */
export function rewriteForBundle(rel: string, text: string, build: string): string {
  const self = `file://${root}/${rel}`;
  const entryUrl = (spec: string) => {
    const target = new URL(JSON.parse(spec), self).pathname.slice(root.length + 1);
    return BUNDLE_ENTRIES.includes(target) ? `file://${root}/${bundledPath(build, target)}` : undefined;
  };
  return text
    .replace(LAZY_IMPORT, (_, spec) => `import(${spec})`)
    .replace(URL_OF, (whole, spec) => {
      const url = entryUrl(spec);
      return url ? `new URL(${JSON.stringify(url)})` : whole;
    })
    .replaceAll("import.meta.url", JSON.stringify(self))
    .replaceAll("import.meta.main", "false");
}

/**
 * A lazy chunk's import in the output. Made non-literal again afterwards, because Deno prepares
 * the graph of every literal `import()` at start-up (runtime/lazy.ts), taken or not.
 */
const CHUNK_IMPORT = /\bimport\(("\.{1,2}\/[^"]+\.js")\)/g;

/** Makes a new build and names it current; returns its name. */
async function build(): Promise<string> {
  const previous = currentManifest(root)?.build;
  const build = `b${Date.now().toString(36)}`;
  const files = sourceFiles();
  const stamps: BundleManifest["files"] = {};
  for (const file of [...files, ...SOURCE_EXTRAS]) stamps[file] = fileStamp(`${root}/${file}`);
  // On the bundle's own file system, so the new manifest is renamed into place.
  await Deno.mkdir(`${root}/${BUNDLE_DIR}`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: `${root}/.build`, prefix: "work_" });
  try {
    for (const file of files) {
      const text = rewriteForBundle(file, await Deno.readTextFile(`${root}/${file}`), build);
      if (/\blazyImport\s*</.test(text) && file !== "runtime/lazy.ts") {
        throw new Error(
          `${file}: a lazyImport the bundle cannot follow (write it as lazyImport<T>("./x.ts", import.meta.url))`,
        );
      }
      await Deno.mkdir(`${work}/${file.replace(/\/[^/]*$/, "")}`, { recursive: true });
      await Deno.writeTextFile(`${work}/${file}`, text);
    }
    for (const extra of SOURCE_EXTRAS) await Deno.copyFile(`${root}/${extra}`, `${work}/${extra}`);
    const out = `${root}/${BUNDLE_DIR}/${build}`;
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--code-splitting",
        "--format=esm",
        "--platform=deno",
        "--packages=external",
        "--external=npm:*",
        `--outdir=${out}`,
        ...BUNDLE_ENTRIES,
      ],
      cwd: work,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(`deno bundle failed: ${new TextDecoder().decode(result.stderr).trim().split("\n")[0]}`);
    }
    for (const entry of BUNDLE_ENTRIES) {
      const built = `${root}/${bundledPath(build, entry)}`;
      if (!Deno.statSync(built).isFile) throw new Error(`deno bundle wrote no ${built}`);
    }
    for (const path of filesUnder(out, ".js")) {
      const file = `${out}/${path}`;
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(
        file,
        text.replace(CHUNK_IMPORT, (_, chunk) => `import(new URL(${chunk}, import.meta.url).href)`),
      );
    }
    // Named in one rename, so a run never sees half of one build and half of another.
    const manifest: BundleManifest = { build, root, deno: Deno.version.deno, files: stamps };
    await Deno.writeTextFile(`${work}/manifest.json`, JSON.stringify(manifest));
    await Deno.rename(`${work}/manifest.json`, `${root}/${BUNDLE_DIR}/manifest.json`);
    for (const entry of Deno.readDirSync(`${root}/${BUNDLE_DIR}`)) {
      if (![build, previous, "manifest.json"].includes(entry.name)) {
        await Deno.remove(`${root}/${BUNDLE_DIR}/${entry.name}`, { recursive: true });
      }
    }
  } catch (e) {
    await Deno.remove(`${root}/${BUNDLE_DIR}/${build}`, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return build;
}

/** The current build's name, after building one if it is not fresh (cli/bundle.ts freshBuild). */
export async function ensureFreshBundle(): Promise<string> {
  return freshBuild(root) ?? await build();
}

if (import.meta.main) {
  try {
    if (!Deno.args.includes("--force") && freshBuild(root)) {
      console.error("bundle: fresh");
    } else {
      const started = performance.now();
      await build();
      console.error(`bundle: built ${BUNDLE_DIR} in ${(performance.now() - started).toFixed(0)} ms`);
    }
  } catch (e) {
    console.error(`bundle: error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
