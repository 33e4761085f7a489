/**
 * The start-up floor's permission-scoped child (bench/startup.ts), in layers:
 *   none    exits at once: the cost of a second Deno process;
 *   worker  + creates one Worker and waits for it to start (spearhost runs each guest in one);
 *   wasm    + that Worker opens libwasmtime, creates an engine, deserializes compiled code
 *           (CODE, as from a module cache), instantiates it and runs its hello (floor_wasm.ts).
 * Run: deno run --allow-ffi --allow-read=DIR,LIB,CODE floor_child.ts LEVEL LIB CODE
 */
const [level, libPath, codePath] = Deno.args;
if (level !== "none") {
  const worker = new Worker(new URL("./floor_guest_worker.ts", import.meta.url), { type: "module" });
  const done = new Promise<string>((resolve) => worker.onmessage = (e) => resolve(e.data));
  worker.postMessage({ level, libPath, codePath });
  const outcome = await done;
  if (outcome !== "ok") throw new Error(outcome);
  worker.terminate();
}
