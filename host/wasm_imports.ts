/**
 * The import list of a WebAssembly module, read from its binary without compiling it: the
 * launcher grants a run only the permissions of the families its guest imports, and must not
 * load an engine (or pay for a compile) to find out which those are.
 */
import { importKey } from "../families/family.ts";

const IMPORT_SECTION = 2;
const decoder = new TextDecoder("utf-8", { fatal: true });

/** `module.name` of every import, or undefined when the bytes are not a module this reader knows. */
export function moduleImportKeys(bytes: Uint8Array): Set<string> | undefined {
  try {
    return readImports(bytes);
  } catch {
    return undefined; // the host's own checks report a broken module in their words
  }
}

function readImports(bytes: Uint8Array): Set<string> | undefined {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) return undefined;
  const r = new Reader(bytes, 8);
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    if (end > bytes.length) return undefined;
    if (id === IMPORT_SECTION) return readImportSection(new Reader(bytes.subarray(0, end), r.at));
    r.at = end;
  }
  return new Set();
}

function readImportSection(r: Reader): Set<string> {
  const keys = new Set<string>();
  for (let n = r.u32(); n > 0; n--) {
    const module = r.name();
    const name = r.name();
    keys.add(importKey({ module, name }));
    skipImportDesc(r);
  }
  return keys;
}

/** Skips an import's descriptor: function, table, memory, global or tag. */
function skipImportDesc(r: Reader): void {
  const kind = r.byte();
  if (kind === 0) r.u32(); // type index
  else if (kind === 1) (r.byte(), skipLimits(r)); // reftype, limits
  else if (kind === 2) skipLimits(r);
  else if (kind === 3) (r.byte(), r.byte()); // valtype, mutability
  else if (kind === 4) (r.byte(), r.u32()); // attribute, type index
  else throw new Error(`unknown import kind ${kind}`);
}

function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.u64();
  if (flags & 1) r.u64();
}

class Reader {
  constructor(readonly bytes: Uint8Array, public at: number) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new RangeError("unexpected end of module");
    return this.bytes[this.at++];
  }

  /** An unsigned LEB128 of up to 64 bits (its value only matters below 2^32). */
  u64(): number {
    let value = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (!(b & 0x80)) return value;
      scale *= 128;
    }
    throw new RangeError("LEB128 too long");
  }

  u32(): number {
    const v = this.u64();
    if (v > 0xffffffff) throw new RangeError("u32 out of range");
    return v;
  }

  name(): string {
    const len = this.u32();
    if (this.at + len > this.bytes.length) throw new RangeError("name past the end");
    const text = decoder.decode(this.bytes.subarray(this.at, this.at + len));
    this.at += len;
    return text;
  }
}
