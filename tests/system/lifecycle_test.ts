/**
 * Host lifecycle seen from an embedding program: a program that runs a guest and never calls
 * `host.close()` still exits on its own (the time-limit thread does not hold it open).
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("lifecycle: a program that never closes its host still exits when its work is done", async () => {
  const script = `
    import { SpearHost } from ${JSON.stringify(`${root}/host/host.ts`)};
    const host = new SpearHost({ drivers: [], cacheDir: null });
    const r = await host.run(${JSON.stringify(`${root}/guests/build/hello.wasm`)}, { timeoutMs: 10000 });
    console.log("exit", r.exitCode);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const killer = setTimeout(() => child.kill("SIGKILL"), 20000);
  const out = await child.output();
  clearTimeout(killer);
  assert.equal(out.code, 0, "the program exited by itself");
  assert.match(new TextDecoder().decode(out.stdout), /exit 0/);
});
