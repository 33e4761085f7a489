/**
 * The thread boundary is visible in the imports: the protocol folder imports neither Deno nor
 * FFI nor either side's code; drivers (families/<name>/driver.ts and what they import) never
 * load worker code (runtime/ worker modules, families/<name>/worker.ts); worker parts never
 * load driver code; ffi/ holds bindings only. Static `import … from` edges are followed
 * transitively; `import type` is erased at run time and does not count.
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

/** Runtime import edges of one module (type-only imports excluded). */
async function runtimeImports(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path);
  const out: string[] = [];
  const re =
    /^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith(".")) out.push(new URL(spec, `file://${path}`).pathname);
  }
  return out;
}

/** Every module reachable from `entry` through runtime imports (dynamic imports excluded: lazy halves). */
async function closure(entry: string, followDynamic = false): Promise<Set<string>> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const path = todo.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = await Deno.readTextFile(path);
    for (const dep of await runtimeImports(path)) {
      const dynamic = new RegExp(`import\\(\\s*["'][^"']*${dep.split("/").pop()}["']`).test(text);
      if (!dynamic || followDynamic) todo.push(dep);
    }
  }
  return seen;
}

const rel = (p: string) => p.slice(root.length);
const WORKER_ONLY =
  /^(runtime\/(guest|instance|fd_table|epoll|memory|queue_fd|worker|hostcall)\.ts|families\/[^/]+\/worker\.ts)$/;
const DRIVER_ONLY =
  /^(host\/(host|watchdog|watchdog_worker)\.ts|families\/[^/]+\/(driver|devices|sources|endpoint)\.ts|families\/[^/]+\/backends\/)/;

async function familyFiles(name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const dir of Deno.readDir(`${root}families`)) {
    if (!dir.isDirectory) continue;
    try {
      await Deno.stat(`${root}families/${dir.name}/${name}`);
      out.push(`${root}families/${dir.name}/${name}`);
    } catch { /* this family has no such part */ }
  }
  return out;
}

Deno.test("layering: drivers never import worker code", async () => {
  // The user-stream endpoint is main-thread I/O too (it serves clients for a run, not requests).
  for (const driver of [...await familyFiles("driver.ts"), ...await familyFiles("endpoint.ts")]) {
    const reached = [...await closure(driver)].map(rel);
    const bad = reached.filter((p) => WORKER_ONLY.test(p));
    assert.deepEqual(bad, [], `${rel(driver)} reaches worker code`);
  }
});

Deno.test("layering: worker parts never import driver code", async () => {
  for (const worker of await familyFiles("worker.ts")) {
    const reached = [...await closure(worker)].map(rel);
    const bad = reached.filter((p) => DRIVER_ONLY.test(p));
    assert.deepEqual(bad, [], `${rel(worker)} reaches driver code`);
  }
});

Deno.test("layering: protocol/ uses neither Deno nor FFI nor either side's code", async () => {
  for await (const f of Deno.readDir(`${root}protocol`)) {
    const path = `${root}protocol/${f.name}`;
    const text = await Deno.readTextFile(path);
    assert.doesNotMatch(text, /\bDeno\./, `${f.name} uses Deno`);
    for (const dep of await runtimeImports(path)) {
      assert.match(rel(dep), /^protocol\//, `${f.name} imports ${rel(dep)}`);
    }
  }
});

Deno.test("layering: the rule checker sees a violation (it can fail)", async () => {
  const tmp = await Deno.makeTempDir({ dir: `${root}families` });
  try {
    await Deno.writeTextFile(
      `${tmp}/driver.ts`,
      'import { GuestRuntime } from "../../runtime/guest.ts";\nexport { GuestRuntime };\n',
    );
    const reached = [...await closure(`${tmp}/driver.ts`)].map(rel);
    assert.ok(reached.some((p) => WORKER_ONLY.test(p)));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
