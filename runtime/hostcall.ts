/**
 * A hostcall as the instance binds it: an import (module, name, accepted signatures) and its
 * worker-side implementation. Families declare imports in their descriptors
 * (families/<name>/family.ts) and implement them in their worker parts; families/registry.ts
 * pairs the two. Independent of Wasmtime.
 */
import type { WasmType, WasmValue } from "./abi.ts";
import type { ImportDecl, Signature } from "../families/family.ts";

export type { ImportDecl, Signature, WasmType, WasmValue };

export interface Hostcall extends ImportDecl {
  /**
   * Arguments decoded by the linked signature's types (the one the guest's module declares,
   * among `signatures`). Throw HostcallError to return -errno (as the linked result type;
   * nothing when it has none).
   */
  run(...args: WasmValue[]): WasmValue | void;
}

/** Hostcall helper (tests): all-i32 parameters and an i32 result. */
export function i32call(
  name: string,
  arity: number,
  run: (...args: number[]) => number,
  module = "spear",
): Hostcall {
  return { module, name, signatures: [{ params: Array(arity).fill("i32"), results: ["i32"] }], run };
}

export { importKey } from "../families/family.ts";

/** `(i32,i64)->f64`, `()->()`: how link errors show a function type (also one with v128 or references). */
export function formatSignature(sig: { params: readonly string[]; results: readonly string[] }): string {
  const results = sig.results.length === 1 ? sig.results[0] : `(${sig.results.join(",")})`;
  return `(${sig.params.join(",")})->${results}`;
}

export function sameSignature(a: Signature, b: Signature): boolean {
  return a.params.length === b.params.length && a.results.length === b.results.length &&
    a.params.every((t, i) => t === b.params[i]) && a.results.every((t, i) => t === b.results[i]);
}
