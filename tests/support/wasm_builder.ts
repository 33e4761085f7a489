/**
 * A tiny WebAssembly binary encoder for tests: just what generated test guests need —
 * function types, function imports, defined functions with locals, one funcref table with an
 * active element segment, one memory, exports, and LEB128. Instructions are raw bytes built
 * with the `op` helpers below. Used by tests/system/fuzz_test.ts to build its fuzz guest from
 * the family registry.
 *
 * Binary format: https://webassembly.github.io/spec/core/binary/modules.html
 */

export type ValType = "i32" | "i64" | "f32" | "f64";

const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c };
const FUNCREF = 0x70;

const Section = {
  TYPE: 1,
  IMPORT: 2,
  FUNCTION: 3,
  TABLE: 4,
  MEMORY: 5,
  EXPORT: 7,
  ELEMENT: 9,
  CODE: 10,
} as const;

const ExportKind = { FUNC: 0x00, TABLE: 0x01, MEMORY: 0x02 } as const;

/** Unsigned LEB128 of a u32 (or any non-negative safe integer). */
export function uleb(value: number | bigint): number[] {
  let v = BigInt(value);
  if (v < 0n) throw new RangeError(`uleb of negative ${value}`);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

/** Signed LEB128 (i32.const / i64.const immediates). */
export function sleb(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n; // arithmetic shift on bigint
    const signBit = (byte & 0x40) !== 0;
    if ((v === 0n && !signBit) || (v === -1n && signBit)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const encoder = new TextEncoder();

function name(s: string): number[] {
  const bytes = encoder.encode(s);
  return [...uleb(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Instruction encoders (only the ones test guests use). */
export const op = {
  unreachable: [0x00],
  end: [0x0b],
  drop: [0x1a],
  call: (func: number) => [0x10, ...uleb(func)],
  localGet: (index: number) => [0x20, ...uleb(index)],
  i32Const: (value: number) => [0x41, ...sleb(value | 0)],
  i64Const: (value: bigint) => [0x42, ...sleb(BigInt.asIntN(64, value))],
  /** i32.store with alignment 2^2 and the given offset. */
  i32Store: (offset = 0) => [0x36, 0x02, ...uleb(offset)],
};

interface FuncType {
  params: readonly ValType[];
  results: readonly ValType[];
}

interface DefinedFunc {
  type: number;
  locals: readonly ValType[];
  body: number[];
}

/** Builds one module; indices of imported functions come before defined ones, as in wasm. */
export class WasmModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly imports: { module: string; name: string; type: number }[] = [];
  private readonly funcs: DefinedFunc[] = [];
  private readonly exports: { name: string; kind: number; index: number }[] = [];
  private memoryLimits?: { min: number; max?: number };
  private tableFuncs?: number[];

  /** The index of a function type, added once. */
  type(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(",")}->${results.join(",")}`;
    const found = this.types.findIndex((t) => `${t.params.join(",")}->${t.results.join(",")}` === key);
    if (found >= 0) return found;
    this.types.push({ params: [...params], results: [...results] });
    return this.types.length - 1;
  }

  /** Imports a function; returns its function index. All imports come before any `func`. */
  importFunc(module: string, field: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.funcs.length) throw new Error("import functions before defining any");
    this.imports.push({ module, name: field, type: this.type(params, results) });
    return this.imports.length - 1;
  }

  /**
   * Defines a function: `body` is its instructions (the final `end` is added); parameters
   * are locals 0..n-1, `locals` follow them. Returns its function index.
   */
  func(
    params: readonly ValType[],
    results: readonly ValType[],
    body: number[],
    locals: ValType[] = [],
  ): number {
    this.funcs.push({ type: this.type(params, results), locals, body });
    return this.imports.length + this.funcs.length - 1;
  }

  memory(minPages: number, maxPages?: number): this {
    this.memoryLimits = { min: minPages, max: maxPages };
    return this;
  }

  /** One funcref table holding exactly `funcs`, at indices 0..n-1 (an active element segment). */
  table(funcs: number[]): this {
    this.tableFuncs = [...funcs];
    return this;
  }

  exportFunc(exportName: string, func: number): this {
    this.exports.push({ name: exportName, kind: ExportKind.FUNC, index: func });
    return this;
  }

  exportMemory(exportName = "memory"): this {
    if (!this.memoryLimits) throw new Error("no memory to export");
    this.exports.push({ name: exportName, kind: ExportKind.MEMORY, index: 0 });
    return this;
  }

  exportTable(exportName: string): this {
    if (!this.tableFuncs) throw new Error("no table to export");
    this.exports.push({ name: exportName, kind: ExportKind.TABLE, index: 0 });
    return this;
  }

  build(): Uint8Array<ArrayBuffer> {
    const sections: number[] = [];
    const section = (id: number, content: number[]) => {
      sections.push(id, ...uleb(content.length));
      for (const b of content) sections.push(b); // no spread: a section may be large
    };
    const limits = (min: number, max?: number) =>
      max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)];

    section(
      Section.TYPE,
      vec(this.types.map((t) => [
        0x60,
        ...vec(t.params.map((p) => [VALTYPE[p]])),
        ...vec(t.results.map((r) => [VALTYPE[r]])),
      ])),
    );
    if (this.imports.length) {
      section(
        Section.IMPORT,
        vec(this.imports.map((i) => [...name(i.module), ...name(i.name), 0x00, ...uleb(i.type)])),
      );
    }
    if (this.funcs.length) section(Section.FUNCTION, vec(this.funcs.map((f) => uleb(f.type))));
    if (this.tableFuncs) {
      const n = this.tableFuncs.length;
      section(Section.TABLE, vec([[FUNCREF, ...limits(n, n)]]));
    }
    if (this.memoryLimits) {
      section(Section.MEMORY, vec([limits(this.memoryLimits.min, this.memoryLimits.max)]));
    }
    if (this.exports.length) {
      section(Section.EXPORT, vec(this.exports.map((e) => [...name(e.name), e.kind, ...uleb(e.index)])));
    }
    if (this.tableFuncs) {
      // Flags 0: an active segment for table 0 at offset (i32.const 0), a vector of function indices.
      section(
        Section.ELEMENT,
        vec([[0x00, ...op.i32Const(0), ...op.end, ...vec(this.tableFuncs.map((f) => uleb(f)))]]),
      );
    }
    if (this.funcs.length) {
      section(
        Section.CODE,
        vec(this.funcs.map((f) => {
          // Locals as runs of one type: (count, type).
          const runs: number[][] = [];
          for (const t of f.locals) {
            const last = runs[runs.length - 1];
            if (last && last[1] === VALTYPE[t]) last[0]++;
            else runs.push([1, VALTYPE[t]]);
          }
          const body = [...vec(runs.map(([count, t]) => [...uleb(count), t])), ...f.body, ...op.end];
          return [...uleb(body.length), ...body];
        })),
      );
    }
    const out = new Uint8Array(8 + sections.length);
    out.set([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]); // "\0asm", version 1
    out.set(sections, 8);
    return out;
  }
}
