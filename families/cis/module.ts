/**
 * What a skill's module looks like from outside, read straight from its bytes before anything
 * runs (host side, no engine): the header (magic, version), its imports and its exports with
 * function types. The skill loader uses it for clear refusals — "not a WebAssembly module",
 * "unsupported version", "missing export execute" — while Wasmtime's validator remains the
 * judge of "invalid".
 *
 * Reads the binary format's type (1), import (2), function (3) and export (7) sections; other
 * sections are skipped by size. Function types it cannot read (GC proposal encodings) are left
 * out rather than guessed.
 */
import type { WasmType } from "../../runtime/abi.ts";

export type ExternKindName = "func" | "table" | "memory" | "global" | "tag";

export interface FuncTypeInfo {
  params: string[];
  results: string[];
}

export interface ExportInfo {
  name: string;
  kind: ExternKindName;
  /** A function export's type, when readable. */
  type?: FuncTypeInfo;
}

export interface ImportInfo {
  module: string;
  name: string;
  kind: ExternKindName;
  type?: FuncTypeInfo;
}

export interface ModuleShape {
  version: number;
  imports: ImportInfo[];
  exports: ExportInfo[];
}

/** Why bytes are not a module this host can run: the reason and a one-line message. */
export class ModuleShapeError extends Error {
  constructor(readonly reason: "not_wasm" | "bad_version" | "malformed", message: string) {
    super(message);
  }
}

const KINDS: ExternKindName[] = ["func", "table", "memory", "global", "tag"];
const VALTYPES: Record<number, string> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};

class Reader {
  at: number;
  constructor(readonly bytes: Uint8Array, start: number, readonly end: number) {
    this.at = start;
  }

  byte(): number {
    if (this.at >= this.end) throw new ModuleShapeError("malformed", "unexpected end of section");
    return this.bytes[this.at++];
  }

  /** Unsigned LEB128 (u32 range). */
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      if (shift < 32) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      if (shift > 63) throw new ModuleShapeError("malformed", "integer too long");
    }
    return result;
  }

  name(): string {
    const len = this.u32();
    if (this.at + len > this.end) throw new ModuleShapeError("malformed", "name runs past its section");
    const text = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + len));
    this.at += len;
    return text;
  }

  limits(): void {
    const flags = this.byte();
    this.u32();
    if (flags & 0x01) this.u32();
    if (flags & 0x08) this.u32(); // custom page size
  }
}

/** Reads the header, imports and exports. Throws ModuleShapeError. */
export function inspectModule(bytes: Uint8Array): ModuleShape {
  if (bytes.length < 4 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new ModuleShapeError("not_wasm", "not a WebAssembly module (missing \\0asm header)");
  }
  if (bytes.length < 8) throw new ModuleShapeError("malformed", "truncated WebAssembly header");
  const version = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  if (version !== 1) {
    const layer = version >>> 16;
    throw new ModuleShapeError(
      "bad_version",
      layer === 1
        ? `a WebAssembly component (version 0x${
          version.toString(16)
        }), not a core module: skills are core modules`
        : `unsupported WebAssembly version ${version} (expected 1)`,
    );
  }
  const types: (FuncTypeInfo | undefined)[] = [];
  const imports: ImportInfo[] = [];
  const funcTypes: (FuncTypeInfo | undefined)[] = []; // function index space
  const exports: ExportInfo[] = [];
  const r = new Reader(bytes, 8, bytes.length);
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    if (end > bytes.length) {
      throw new ModuleShapeError("malformed", `section ${id} runs past the end of the module`);
    }
    const s = new Reader(bytes, r.at, end);
    if (id === 1) {
      const count = s.u32();
      for (let i = 0; i < count; i++) {
        const form = s.byte();
        if (form !== 0x60) {
          // A GC-proposal type (rec group, struct, array…): stop reading types.
          types.length = 0;
          break;
        }
        const vec = () => Array.from({ length: s.u32() }, () => VALTYPES[s.byte()] ?? "unknown");
        const params = vec();
        const results = vec();
        types.push({ params, results });
      }
    } else if (id === 2) {
      const count = s.u32();
      for (let i = 0; i < count; i++) {
        const module = s.name();
        const name = s.name();
        const kindByte = s.byte();
        const kind = KINDS[kindByte];
        if (!kind) throw new ModuleShapeError("malformed", `unknown import kind ${kindByte}`);
        const info: ImportInfo = { module, name, kind };
        if (kind === "func") {
          const type = types[s.u32()];
          if (type) info.type = type;
          funcTypes.push(type);
        } else if (kind === "table") {
          s.byte();
          s.limits();
        } else if (kind === "memory") {
          s.limits();
        } else if (kind === "global") {
          s.byte();
          s.byte();
        } else {
          s.byte();
          s.u32();
        }
        imports.push(info);
      }
    } else if (id === 3) {
      const count = s.u32();
      for (let i = 0; i < count; i++) funcTypes.push(types[s.u32()]);
    } else if (id === 7) {
      const count = s.u32();
      for (let i = 0; i < count; i++) {
        const name = s.name();
        const kindByte = s.byte();
        const kind = KINDS[kindByte];
        if (!kind) throw new ModuleShapeError("malformed", `unknown export kind ${kindByte}`);
        const index = s.u32();
        const info: ExportInfo = { name, kind };
        if (kind === "func" && funcTypes[index]) info.type = funcTypes[index];
        exports.push(info);
      }
    }
    r.at = end;
  }
  return { version, imports, exports };
}

/** `(i32)->i32`, as link errors spell a type. */
export function showType(t: FuncTypeInfo): string {
  const results = t.results.length === 1 ? t.results[0] : `(${t.results.join(",")})`;
  return `(${t.params.join(",")})->${results}`;
}

/** The skill ABI's required exports (SPEC.md §9) and their types. */
export const SKILL_EXPORTS: {
  name: string;
  type: { params: WasmType[]; results: WasmType[] };
  what: string;
}[] = [
  { name: "execute", type: { params: ["i32"], results: ["i32"] }, what: "execute(input_ptr) -> output_ptr" },
  { name: "alloc", type: { params: ["i32"], results: ["i32"] }, what: "alloc(size) -> ptr" },
];

/**
 * Checks a module against the skill ABI; returns the first problem as one line, or undefined:
 * `execute` and `alloc` exported as functions of the right types, `dealloc` (optional) of
 * type (i32,i32)->(), and memory exported as `memory` or imported as `env.memory`.
 */
export function skillAbiProblem(shape: ModuleShape): string | undefined {
  const exported = new Map(shape.exports.map((e) => [e.name, e]));
  for (const want of SKILL_EXPORTS) {
    const e = exported.get(want.name);
    if (!e) return `missing export ${want.name}: a skill exports ${want.what}`;
    if (e.kind !== "func") return `export ${want.name} is a ${e.kind}, not a function (${want.what})`;
    if (e.type && showType(e.type) !== showType(want.type)) {
      return `export ${want.name} has type ${showType(e.type)}, expected ${showType(want.type)}`;
    }
  }
  const dealloc = exported.get("dealloc");
  if (dealloc && (dealloc.kind !== "func" || (dealloc.type && dealloc.type.params.join() !== "i32,i32"))) {
    return `export dealloc must be a function dealloc(ptr, size)`;
  }
  const memoryExported = exported.get("memory")?.kind === "memory";
  const memoryImported = shape.imports.some((i) =>
    i.module === "env" && i.name === "memory" && i.kind === "memory"
  );
  if (!memoryExported && !memoryImported) {
    return 'no memory: a skill exports its memory as "memory" or imports it as env.memory';
  }
  return undefined;
}
