/**
 * `deno task bundle`: builds .build/bundle/ (cli/bundle.ts says what it is for and when it is
 * used). Does nothing when the bundle is already fresh; `--force` rebuilds anyway.
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
 * npm: and node: imports stay imports. Prints one line; exits non-zero with one line on failure.
 */
import {
  BUNDLE_DIR,
  BUNDLE_ENTRIES,
  bundledPath,
  type BundleManifest,
  fileStamp,
  freshBundledLauncher,
  SOURCE_DIRS,
  SOURCE_EXTRAS,
} from "../cli/bundle.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Every .ts file under the source directories, relative to the root. */
function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${root}/${dir}`)) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(rel);
      else if (entry.isFile && rel.endsWith(".ts")) files.push(rel);
    }
  };
  SOURCE_DIRS.forEach(walk);
  return files.sort();
}

const LAZY_IMPORT = /lazyImport<[^>]*>\(\s*("[^"]+")\s*,\s*import\.meta\.url\s*,?\s*\)/g;
const URL_OF = /new URL\(\s*("[^"]+")\s*,\s*import\.meta\.url\s*\)/g;

/** The source of `rel` as it is bundled (the module comment above lists the rewrites). */
export function rewriteForBundle(rel: string, text: string, bundleRoot = root): string {
  const self = `file://${root}/${rel}`;
  const entryUrl = (spec: string) => {
    const target = new URL(JSON.parse(spec), self).pathname.slice(root.length + 1);
    return BUNDLE_ENTRIES.includes(target) ? `file://${bundleRoot}/${bundledPath(target)}` : undefined;
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

/** Every .js file under `dir`. */
function outputFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].flatMap((e) =>
    e.isDirectory ? outputFiles(`${dir}/${e.name}`) : e.name.endsWith(".js") ? [`${dir}/${e.name}`] : []
  );
}

async function build(): Promise<void> {
  const files = sourceFiles();
  const stamps: BundleManifest["files"] = {};
  for (const file of [...files, ...SOURCE_EXTRAS]) stamps[file] = fileStamp(`${root}/${file}`);
  // Beside the target, so the finished bundle is renamed into place, never copied.
  await Deno.mkdir(`${root}/.build`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: `${root}/.build`, prefix: "work_" });
  try {
    for (const file of files) {
      const text = rewriteForBundle(file, await Deno.readTextFile(`${root}/${file}`));
      if (/\blazyImport\s*</.test(text) && file !== "runtime/lazy.ts") {
        throw new Error(
          `${file}: a lazyImport the bundle cannot follow (write it as lazyImport<T>("./x.ts", import.meta.url))`,
        );
      }
      await Deno.mkdir(`${work}/${file.replace(/\/[^/]*$/, "")}`, { recursive: true });
      await Deno.writeTextFile(`${work}/${file}`, text);
    }
    for (const extra of SOURCE_EXTRAS) await Deno.copyFile(`${root}/${extra}`, `${work}/${extra}`);
    const out = `${work}/out`;
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
      const built = `${out}/${entry.replace(/\.ts$/, ".js")}`;
      if (!Deno.statSync(built).isFile) throw new Error(`deno bundle wrote no ${built}`);
    }
    for (const file of outputFiles(out)) {
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(
        file,
        text.replace(CHUNK_IMPORT, (_, chunk) => `import(new URL(${chunk}, import.meta.url).href)`),
      );
    }
    const manifest: BundleManifest = { root, deno: Deno.version.deno, files: stamps };
    await Deno.writeTextFile(`${out}/manifest.json`, JSON.stringify(manifest));
    // Swapped in whole, so a run never sees half of one build and half of another.
    const target = `${root}/${BUNDLE_DIR}`;
    await Deno.remove(target, { recursive: true }).catch(() => {});
    await Deno.rename(out, target);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    if (!Deno.args.includes("--force") && freshBundledLauncher(root)) {
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
