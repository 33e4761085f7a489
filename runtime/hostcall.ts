/**
 * A hostcall as the instance binds it: an import (module, name, accepted signatures) and its
 * worker-side implementation. Families declare imports in their descriptors and implement
 * them in their worker parts; families/registry.ts pairs the two.
 */
import type { WasmType, WasmValue } from "./abi.ts";
import type { HostcallFn, ImportDecl, Signature } from "../families/family.ts";

export type { HostcallFn, ImportDecl, Signature, WasmType, WasmValue };

export interface Hostcall extends ImportDecl {
  /** Throw HostcallError to return -errno. */
  run(...args: WasmValue[]): WasmValue | void;
}

/** `module.name`, as link errors spell an import. */
export function importKey(i: { module: string; name: string }): string {
  return `${i.module}.${i.name}`;
}

/** `(i32,i32)->i32`, as link errors spell a signature. */
export function signatureText(sig: Signature): string {
  return `(${sig.params.join(",")})->${sig.results.length ? sig.results.join(",") : "()"}`;
}
