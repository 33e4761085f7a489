/** The shape of a hostcall as the families define it, independent of Wasmtime. */

export type WasmType = "i32" | "i64" | "f32" | "f64";
/** A wasm value on the host side: i64 as bigint, i32/f32/f64 as number. */
export type WasmValue = number | bigint;

export interface Signature {
  params: readonly WasmType[];
  results: readonly WasmType[];
}

export interface Hostcall {
  /** Import module: "spear", "cis", ... */
  module: string;
  /** Import name inside `module`. */
  name: string;
  /**
   * The wasm function types a guest may declare this import with; [0] is canonical. The
   * import is linked with the one the guest's module declares, so an ABI that grew a
   * result (or lost one) stays compatible with guests built against either shape. A result
   * the linked type lacks is dropped.
   */
  signatures: readonly Signature[];
  /**
   * Arguments decoded by the linked signature's types. Throw HostcallError to return -errno
   * (as the linked result type; nothing when it has none).
   */
  run(...args: WasmValue[]): WasmValue | void;
}

const I32_SIGNATURES: Signature[][] = [];

/** Hostcall helper: all-i32 parameters and an i32 result. */
export function i32call(
  name: string,
  arity: number,
  run: (...args: number[]) => number,
  module = "spear",
): Hostcall {
  // Shared per arity: 32 guests × 30 imports would otherwise each build their own arrays.
  const signatures = I32_SIGNATURES[arity] ??= [{ params: Array(arity).fill("i32"), results: ["i32"] }];
  return { module, name, signatures, run };
}

/** `(i32,i64)->f64`, `()->()`: how link errors show a function type (also one with v128 or references). */
export function formatSignature(sig: { params: readonly string[]; results: readonly string[] }): string {
  const results = sig.results.length === 1 ? sig.results[0] : `(${sig.results.join(",")})`;
  return `(${sig.params.join(",")})->${results}`;
}

export function sameSignature(a: Signature, b: Signature): boolean {
  return a.params.length === b.params.length && a.results.length === b.results.length &&
    a.params.every((t, i) => t === b.params[i]) && a.results.every((t, i) => t === b.results[i]);
}
