/**
 * `lazyImport` (runtime/lazy.ts) hides a module from Deno's start-up graph, and so from
 * `deno compile`'s too: every module loaded that way must lie under one of the paths
 * scripts/compile.ts embeds, or a compiled binary would fail the first time it needs it.
 */
import assert from "node:assert/strict";
import { COMPILE_ENTRY, EMBEDDED_MODULES } from "../../scripts/compile.ts";
import { sourceFiles } from "../../scripts/bundle.ts";

const root = new URL("../../", import.meta.url).pathname;

/** Every `lazyImport<…>("spec", import.meta.url)` in the tree, as root-relative paths. */
async function lazyTargets(): Promise<string[]> {
  const out: string[] = [];
  // runtime/lazy.ts itself only shows the call in its documentation.
  for (const path of sourceFiles().filter((p) => p !== "runtime/lazy.ts")) {
    const text = await Deno.readTextFile(`${root}${path}`);
    for (const m of text.matchAll(/lazyImport<[\s\S]*?>\(\s*"([^"]+)",\s*import\.meta\.url/g)) {
      out.push(new URL(m[1], `file://${root}${path}`).pathname.slice(root.length));
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
