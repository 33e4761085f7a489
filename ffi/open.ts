/** Opens a native library with a clear one-line error instead of the loader's message. */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  path: string,
  symbols: S,
  installHint: string,
): Deno.DynamicLibrary<S> {
  try {
    return Deno.dlopen(path, symbols);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Error(`cannot load ${path}: FFI not permitted (run with --allow-ffi): ${msg}`);
    }
    throw new Error(`${path} not found: ${installHint} (${msg})`);
  }
}
