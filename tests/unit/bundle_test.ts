/**
 * The bundled CLI (cli/bundle.ts, scripts/bundle.ts): the source rewrites it bundles, and when
 * a bundle counts as fresh. tests/system/cli_test.ts runs a guest through a real bundle.
 */
import assert from "node:assert/strict";
import { bundledPath, type BundleManifest, fileStamp, freshBundledLauncher } from "../../cli/bundle.ts";
import { rewriteForBundle, sourceFiles } from "../../scripts/bundle.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("bundle: a lazyImport becomes a literal import the bundler follows", () => {
  const text =
    'const m = await lazyImport<typeof import("./main.ts")>(\n  "./main.ts",\n  import.meta.url,\n);';
  assert.equal(rewriteForBundle("cli/child.ts", text, "b1"), 'const m = await import("./main.ts");');
});

Deno.test("bundle: a URL naming another entry names its bundled file; other URLs stay beside the sources", () => {
  const worker = rewriteForBundle(
    "host/guest_worker.ts",
    'new URL("../runtime/worker.ts", import.meta.url)',
    "b1",
  );
  assert.equal(
    worker,
    `new URL(${JSON.stringify(`file://${root}/${bundledPath("b1", "runtime/worker.ts")}`)})`,
  );
  const asset = rewriteForBundle(
    "families/user_stream/endpoint.ts",
    'new URL("./page.html", import.meta.url)',
    "b1",
  );
  assert.equal(
    asset,
    `new URL("./page.html", ${JSON.stringify(`file://${root}/families/user_stream/endpoint.ts`)})`,
  );
  assert.equal(rewriteForBundle("cli/main.ts", "if (import.meta.main) run();", "b1"), "if (false) run();");
});

Deno.test("bundle: every source's lazy imports are rewritten (no module is loaded twice)", () => {
  let lazy = 0;
  for (const file of sourceFiles()) {
    const text = Deno.readTextFileSync(`${root}/${file}`);
    if (file === "runtime/lazy.ts" || !text.includes("lazyImport<")) continue;
    lazy++;
    const out = rewriteForBundle(file, text, "b1");
    assert.doesNotMatch(out, /\blazyImport\s*</, `${file} keeps a lazyImport the bundler cannot follow`);
    assert.doesNotMatch(out, /import\.meta\.url/, `${file} keeps import.meta.url`);
  }
  assert.ok(lazy >= 8, `found ${lazy} files with lazy imports`);
});

Deno.test("bundle: fresh only while every source, the checkout and the Deno are the ones it was built from", () => {
  const dir = Deno.makeTempDirSync({ prefix: "bundle-test-" });
  try {
    Deno.mkdirSync(`${dir}/.build/bundle/b1/cli`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/.build/bundle/b1/cli/launcher.js`, "");
    Deno.writeTextFileSync(`${dir}/a.ts`, "export const a = 1;\n");
    const write = (m: Partial<BundleManifest>) =>
      Deno.writeTextFileSync(
        `${dir}/.build/bundle/manifest.json`,
        JSON.stringify({
          build: "b1",
          root: dir,
          deno: Deno.version.deno,
          files: { "a.ts": fileStamp(`${dir}/a.ts`) },
          ...m,
        }),
      );
    assert.equal(freshBundledLauncher(dir), undefined, "no manifest: not built");
    write({});
    assert.equal(freshBundledLauncher(dir), `${dir}/${bundledPath("b1", "cli/launcher.ts")}`);
    write({ root: "/elsewhere" });
    assert.equal(freshBundledLauncher(dir), undefined, "built in another checkout");
    write({ deno: "0.0.1" });
    assert.equal(freshBundledLauncher(dir), undefined, "built by another Deno");
    write({ build: "b2" });
    assert.equal(freshBundledLauncher(dir), undefined, "the build's files are gone");
    write({});
    Deno.writeTextFileSync(`${dir}/a.ts`, "export const a = 2;\n");
    Deno.utimeSync(`${dir}/a.ts`, new Date(), new Date(Date.now() + 5000));
    assert.equal(freshBundledLauncher(dir), undefined, "a source changed");
    write({});
    Deno.removeSync(`${dir}/a.ts`);
    assert.equal(freshBundledLauncher(dir), undefined, "a source is gone");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
