/**
 * The one way hostcalls touch guest memory. Every pointer and length is checked against
 * the current size of the guest's linear memory; anything out of range is -EFAULT, never a
 * trap and never a host crash. Also implements SPEAR's out-buffer convention.
 */
import { fail } from "./abi.ts";

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

/** Supplies the base address and size of linear memory (they move when memory grows). */
export interface MemorySource {
  /** Returns [address, byteLength]; address 0 means "no memory". */
  locate(): [bigint, number];
  /**
   * The memory never moves; it only grows (Wasmtime with `memory_may_move` off). Then a
   * location once read stays valid: bytes inside the known size are reachable without
   * asking again, and only an access past it re-reads the size (the guest may have grown).
   */
  readonly growsInPlace?: boolean;
}

export class GuestMemory {
  private address = -1n;
  private bytes = new Uint8Array(0);
  private view = new DataView(this.bytes.buffer);
  private stale = true;
  /** The location is known and cannot move (see MemorySource.growsInPlace). */
  private pinned = false;

  constructor(private readonly source: MemorySource | null) {}

  /**
   * Marks the cached location stale (memory may have grown or moved); the next access
   * re-reads it. Free for memory that grows in place: every hostcall entry and every call
   * into the guest does it.
   */
  invalidate(): void {
    if (!this.pinned) this.stale = true;
  }

  /** Re-reads the memory location now. */
  refresh(): void {
    this.stale = false;
    if (this.source === null) return;
    const [address, size] = this.source.locate();
    this.pinned = this.source.growsInPlace === true && address !== 0n;
    if (address === this.address && size === this.bytes.length) return;
    this.address = address;
    if (address === 0n || size === 0) {
      this.bytes = new Uint8Array(0);
    } else {
      this.bytes = new Uint8Array(
        Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(address)!, size),
      );
    }
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  private current(): Uint8Array {
    if (this.stale) this.refresh();
    return this.bytes;
  }

  /** Whether `end` lies within memory, re-reading a pinned memory's size if it may have grown. */
  private reaches(end: number): boolean {
    if (end <= this.current().length) return true;
    if (!this.pinned) return false;
    this.refresh();
    return end <= this.bytes.length;
  }

  /** The size as last read (every call into the guest from the host re-reads it after). */
  get size(): number {
    return this.current().length;
  }

  /** Throws EFAULT unless [ptr, ptr+len) lies inside memory. Pointers are signed i32 as in SPEAR. */
  check(ptr: number, len: number): void {
    if (ptr < 0 || len < 0 || !this.reaches(ptr + len)) {
      throw fail("EFAULT", `bad guest range ${ptr}+${len}`);
    }
  }

  /**
   * The DataView of all of guest memory, once [ptr, ptr+len) is checked to lie inside it: for
   * a hostcall that writes many small fields (epoll records). Valid until the guest runs again.
   */
  dataView(ptr: number, len: number): DataView {
    this.check(ptr, len);
    return this.view;
  }

  /** A view (not a copy) of guest bytes; valid until the guest runs again. */
  slice(ptr: number, len: number): Uint8Array {
    this.check(ptr, len);
    return this.bytes.subarray(ptr, ptr + len);
  }

  /** A copy of guest bytes, safe to keep. */
  copy(ptr: number, len: number): Uint8Array {
    return this.slice(ptr, len).slice();
  }

  /** Lossy UTF-8 decode, as SPEAR does for roles, content and log text. */
  string(ptr: number, len: number): string {
    return decoder.decode(this.slice(ptr, len));
  }

  u32(ptr: number): number {
    this.check(ptr, 4);
    return this.view.getUint32(ptr, true);
  }

  setU32(ptr: number, value: number): void {
    this.check(ptr, 4);
    this.view.setUint32(ptr, value, true);
  }

  setI32(ptr: number, value: number): void {
    this.check(ptr, 4);
    this.view.setInt32(ptr, value, true);
  }

  write(ptr: number, data: Uint8Array): void {
    this.check(ptr, data.length);
    this.bytes.set(data, ptr);
  }

  /**
   * A copy of the NUL-terminated bytes at `ptr`, without the NUL. The scan stops after `max`
   * bytes (ENOSPC) so a guest cannot make the host copy its whole memory; a pointer outside
   * memory or a string running into the end of memory is EFAULT.
   */
  cString(ptr: number, max: number): Uint8Array {
    if (ptr < 0 || !this.reaches(ptr + 1)) throw fail("EFAULT", `bad guest pointer ${ptr}`);
    if (this.pinned && ptr + max + 1 > this.bytes.length) this.refresh(); // the string may run into grown memory
    const bytes = this.bytes;
    const end = Math.min(bytes.length, ptr + max + 1);
    const length = bytes.subarray(ptr, end).indexOf(0);
    if (length >= 0) return bytes.slice(ptr, ptr + length);
    if (end === bytes.length) {
      throw fail("EFAULT", `string at ${ptr} is not NUL-terminated before the end of guest memory`);
    }
    throw fail("ENOSPC", `string at ${ptr} is longer than ${max} bytes`);
  }

  /**
   * SPEAR's out-buffer convention: capacity is the u32 at `lenPtr`. If `data` does not fit,
   * the needed length is written back and ENOSPC thrown (nothing is consumed: callers peek,
   * write, and only then dequeue). Otherwise copies, stores the length, returns it.
   */
  writeOut(outPtr: number, lenPtr: number, data: Uint8Array): number {
    this.fitOut(lenPtr, data.length);
    this.write(outPtr, data);
    this.setU32(lenPtr, data.length);
    return data.length;
  }

  /**
   * `writeOut` of text whose UTF-8 length the caller knows (`size`), encoded straight into
   * guest memory: a response kept as text until the guest reads it needs no buffer of its own.
   */
  writeTextOut(outPtr: number, lenPtr: number, text: string, size: number): number {
    this.fitOut(lenPtr, size);
    this.check(outPtr, size);
    encoder.encodeInto(text, this.bytes.subarray(outPtr, outPtr + size));
    this.setU32(lenPtr, size);
    return size;
  }

  /** The out-buffer's capacity check: ENOSPC with the size needed written back. */
  private fitOut(lenPtr: number, size: number): void {
    if (this.u32(lenPtr) >= size) return;
    this.setU32(lenPtr, size);
    throw fail("ENOSPC");
  }
}
