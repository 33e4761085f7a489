/** The shape of a hostcall as the families define it, independent of Wasmtime. */
import type { WasmType } from "./engine.ts";

export interface Hostcall {
  /** Import name in module `spear`. */
  name: string;
  params: readonly WasmType[];
  result: WasmType | null;
  /** Arguments are the wasm i32 values; throw HostcallError to return -errno. */
  run(...args: number[]): number | bigint | void;
}

/** Hostcall helper: all-i32 parameters and an i32 result. */
export function i32call(name: string, arity: number, run: (...args: number[]) => number): Hostcall {
  return { name, params: Array(arity).fill("i32"), result: "i32", run };
}
