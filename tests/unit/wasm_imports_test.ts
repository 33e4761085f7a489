/** The launcher's import reader agrees with V8's on every built guest and never throws. */
import assert from "node:assert/strict";
import { moduleImportKeys } from "../../host/wasm_imports.ts";
import { familiesImported } from "../../families/registry.ts";

const build = new URL("../../guests/build/", import.meta.url).pathname;

async function* wasmFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) yield* wasmFiles(`${dir}/${e.name}`);
    else if (e.name.endsWith(".wasm")) yield `${dir}/${e.name}`;
  }
}

Deno.test("wasm imports: the reader lists exactly what WebAssembly.Module.imports lists, for every guest", async () => {
  let checked = 0;
  for await (const path of wasmFiles(build)) {
    const bytes = await Deno.readFile(path);
    const want = new Set(
      WebAssembly.Module.imports(new WebAssembly.Module(bytes)).map((i) => `${i.module}.${i.name}`),
    );
    assert.deepEqual(moduleImportKeys(bytes), want, path);
    checked++;
  }
  assert.ok(checked > 20, `only ${checked} guests found: run guests/build.sh`);
});

Deno.test("wasm imports: truncated or corrupted modules give undefined or a set, never an exception", async () => {
  const bytes = await Deno.readFile(`${build}/chat_completion.wasm`);
  for (let len = 0; len < Math.min(bytes.length, 4096); len += 7) {
    const r = moduleImportKeys(bytes.subarray(0, len));
    assert.ok(r === undefined || r instanceof Set);
  }
  const flipped = bytes.slice();
  for (let i = 8; i < 2048; i += 13) flipped[i] ^= 0xff;
  const r = moduleImportKeys(flipped);
  assert.ok(r === undefined || r instanceof Set);
  assert.equal(moduleImportKeys(new TextEncoder().encode("not wasm at all")), undefined);
});

Deno.test("wasm imports: a skill's cis imports bring cchat's grants along (ai_prompt uses its backends)", () => {
  assert.deepEqual([...familiesImported(new Set(["cis.ai_prompt"]))].sort(), ["cchat", "cis"]);
  assert.deepEqual([...familiesImported(new Set(["spear.time_now_ms", "wasi_snapshot_preview1.fd_write"]))], [
    "core",
  ]);
});
