/**
 * `lazyImport` (runtime/lazy.ts) hides a module from Deno's start-up graph, and so from
 * `deno compile`'s too: every module loaded that way must lie under one of the paths
 * scripts/compile.ts embeds, or a compiled binary would fail the first time it needs it.
 */
import assert from "node:assert/strict";
import { COMPILE_ENTRY, EMBEDDED_MODULES } from "../../scripts/compile.ts";

const root = new URL("../../", import.meta.url).pathname;

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    // runtime/lazy.ts itself only shows the call in its documentation.
    else if (path.endsWith(".ts") && !path.endsWith("_test.ts") && path !== "runtime/lazy.ts") yield path;
  }
}

/** Every `lazyImport<…>("spec", import.meta.url)` in the tree, as root-relative paths. */
async function lazyTargets(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["cli", "host", "runtime", "families", "protocol", "ffi"]) {
    for await (const path of sources(dir)) {
      const text = await Deno.readTextFile(`${root}${path}`);
      for (const m of text.matchAll(/lazyImport<[\s\S]*?>\(\s*"([^"]+)",\s*import\.meta\.url/g)) {
        out.push(new URL(m[1], `file://${root}${path}`).pathname.slice(root.length));
      }
    }
  }
  return out;
}

Deno.test("lazyImport: every lazily imported module is embedded by deno compile", async () => {
  const targets = await lazyTargets();
  assert.ok(targets.includes("families/cchat/worker.ts"), "the scan finds the families' halves");
  assert.ok(targets.includes("cli/skill_commands.ts"), "the scan finds the CLI's commands");
  const embedded = (t: string) =>
    t === COMPILE_ENTRY || EMBEDDED_MODULES.some((p) => p.endsWith("/") ? t.startsWith(p) : t === p);
  const missing = targets.filter((t) => !embedded(t));
  assert.deepEqual(missing, []);
  for (const t of targets) await Deno.stat(`${root}${t}`); // each names a real file
});
