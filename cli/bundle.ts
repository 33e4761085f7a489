/**
 * The bundled CLI: `deno task bundle` (scripts/bundle.ts) bundles each module graph a cold
 * `spear` run loads — the launcher, its permission-scoped child, the guest Worker and the
 * watchdog Worker — with `deno bundle`, into .build/bundle/. Deno pays a fixed cost per module it
 * loads (about 0.4 ms here, whatever the module's size), and those graphs hold 30-40 modules each:
 * bundled, each loads as a few files (bench/startup.ts measures both).
 *
 * A bundle is used only while it is fresh: built in this checkout (bundled code names its source
 * files by absolute path), by the same Deno, and every source file it was built from still has
 * the size and modification time it had then. Otherwise `deno task spear` runs the sources,
 * with the same behaviour, slower to start. `SPEARHOST_BUNDLE=off` forces the sources. This
 * module imports nothing, so checking costs the `spear` entry almost nothing.
 */

/** Where the bundles and their manifest live, under the repository root. */
export const BUNDLE_DIR = ".build/bundle";
/** The directories whose TypeScript the bundles are built from. */
export const SOURCE_DIRS = ["cli", "ffi", "families", "host", "protocol", "runtime"];
/** Files outside them that change what the bundles resolve to. */
export const SOURCE_EXTRAS = ["deno.json", "deno.lock"];
/** The modules the host's Workers start from (the guest's, the watchdog's). */
export const WORKER_ENTRIES = ["runtime/worker.ts", "host/watchdog_worker.ts"];
/** The entry modules, each bundled as `${BUNDLE_DIR}/<build>/<its path, .js>` (bundledPath). */
export const BUNDLE_ENTRIES = ["cli/launcher.ts", "cli/child.ts", ...WORKER_ENTRIES];

/**
 * The current build (`${BUNDLE_DIR}/manifest.json`, replaced in one rename): its directory under
 * BUNDLE_DIR, where and by which Deno it was built, and each source's [size, mtime ms]. A build
 * is never changed once named; the one before it stays until the next build, so a run that read
 * the previous manifest still finds every file it names.
 */
export interface BundleManifest {
  build: string;
  root: string;
  deno: string;
  files: Record<string, [number, number]>;
}

/** The bundled output path of an entry in a build, relative to the root. */
export function bundledPath(build: string, entry: string): string {
  return `${BUNDLE_DIR}/${build}/${entry.replace(/\.ts$/, ".js")}`;
}

/** [size, mtime ms] of one file, as the manifest records it. */
export function fileStamp(path: string): [number, number] {
  const info = Deno.statSync(path);
  return [info.size, info.mtime?.getTime() ?? 0];
}

/** The current build's manifest under `root`, undefined when there is none or it cannot be read. */
export function currentManifest(root: string): BundleManifest | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${root}/${BUNDLE_DIR}/manifest.json`));
  } catch {
    return undefined;
  }
}

/**
 * The current build under `root` (its directory name) when it is fresh and not turned off,
 * undefined otherwise (never built, a source changed, another Deno, its files gone, unreadable).
 */
export function freshBuild(root: string): string | undefined {
  try {
    if (Deno.env.get("SPEARHOST_BUNDLE") === "off") return undefined;
    const manifest = currentManifest(root);
    if (manifest?.root !== root || manifest.deno !== Deno.version.deno) return undefined;
    for (const [file, [size, mtime]] of Object.entries(manifest.files)) {
      const [nowSize, nowMtime] = fileStamp(`${root}/${file}`);
      if (nowSize !== size || nowMtime !== mtime) return undefined;
    }
    return Deno.statSync(`${root}/${bundledPath(manifest.build, "cli/launcher.ts")}`).isFile
      ? manifest.build
      : undefined;
  } catch {
    return undefined;
  }
}

/** The bundled launcher's absolute path when the current build is fresh (freshBuild). */
export function freshBundledLauncher(root: string): string | undefined {
  const build = freshBuild(root);
  return build === undefined ? undefined : `${root}/${bundledPath(build, "cli/launcher.ts")}`;
}
