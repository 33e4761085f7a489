/**
 * The one way to import a module only when it is needed. Deno builds the module graph of every
 * `import("./literal.ts")` at start-up, even of one never taken (measured: an untaken import of
 * cli/main.ts adds ~19 ms to a hello world, and the families' halves drew every driver and the
 * MCP SDK into each process and Worker), so optional modules are named here, resolved against
 * the caller's `import.meta.url`, which start-up does not follow. The type argument keeps the
 * module's types: `lazyImport<typeof import("./x.ts")>("./x.ts", import.meta.url)`.
 * `deno compile` embeds such modules only when told to (scripts/compile.ts `--include`), and
 * Deno checks read permission on them: a program that embeds spearhost grants `--allow-read` of
 * its directory (the CLI's child has it).
 */
export function lazyImport<M>(specifier: string, base: string): Promise<M> {
  return import(new URL(specifier, base).href);
}
