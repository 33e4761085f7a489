/// <reference lib="deno.worker" />
/** The Worker of floor_child.ts: at level "wasm" it runs the floor module's hello. */
import { FloorWasm } from "./floor_wasm.ts";

self.onmessage = async (e: MessageEvent<{ level: string; libPath: string; codePath: string }>) => {
  const { level, libPath, codePath } = e.data;
  if (level === "wasm") {
    const wasm = new FloorWasm(libPath);
    const run = wasm.instantiate(await Deno.readFile(codePath), () => {}, () => console.log("hello"));
    run(1);
  }
  self.postMessage("ok");
};
