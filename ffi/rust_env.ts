/**
 * The environment libwasmtime's Rust reads, kept apart from the bindings (ffi/wasmtime.ts) so
 * that the CLI's launcher can apply the same rule to its child without loading them.
 *
 * With RUST_BACKTRACE set (developer machines and CI images often have it), the Rust inside
 * libwasmtime captures a native backtrace for every error it makes, a guest's trap included,
 * and symbolizes it from the library's debug info: ~100 ms per trap, under one process-wide
 * lock. Guests trapping side by side then stalled every thread for up to 25 s (a 600 ms time
 * limit took effect after 24 s; tests/system/isolation_test.ts, 1 run in 6). Our traps carry
 * their wasm frames; the native backtrace is never shown. RUST_LIB_BACKTRACE=0 turns library
 * backtraces off and takes precedence over RUST_BACKTRACE; it is read by libwasmtime's own
 * copy of std on its first error, so it is set before the library is opened. A value the user
 * set is kept, and without permission to set it (an embedder's choice) nothing changes.
 * Setting a variable races with C code reading the environment on other threads, so it is done
 * as early as possible: by the launcher for its child (the variable is then already set), and
 * by SpearHost's constructor, before it starts any Worker.
 */
export const RUST_LIB_BACKTRACE = "RUST_LIB_BACKTRACE";

/** The RUST_LIB_BACKTRACE libwasmtime should run with: the user's own, else "0". */
export function rustLibBacktrace(): string {
  return Deno.env.get(RUST_LIB_BACKTRACE) ?? "0";
}

/** Sets RUST_LIB_BACKTRACE for this process (see above), unless the user set it. */
export function quietRustBacktraces(): void {
  try {
    if (Deno.env.get(RUST_LIB_BACKTRACE) === undefined) Deno.env.set(RUST_LIB_BACKTRACE, rustLibBacktrace());
  } catch { /* no env permission: leave the environment as it is */ }
}
