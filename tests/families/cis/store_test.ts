/**
 * The skills' SQLite store: namespaces are separate, caps refuse without changing anything,
 * data survives reopening, and several processes write one file at once without errors or
 * lost writes (WAL, busy timeout, immediate transactions).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { MemoryStore, StoreError } from "../../../families/cis/store.ts";

const tmp = Deno.makeTempDirSync({ prefix: "spear-store-test-" });
const LIMITS = { maxValueBytes: 100, maxTotalBytes: 1000 };
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b?: Uint8Array) => b === undefined ? undefined : new TextDecoder().decode(b);

Deno.test("store: get/set/delete/list per namespace, binary values, persistence across reopening", () => {
  const path = `${tmp}/a/b/memory.db`; // directories are created
  const store = MemoryStore.open(path);
  store.set("one", "k", bytes("v1"), LIMITS);
  store.set("two", "k", bytes("v2"), LIMITS);
  store.set("one", "binary", new Uint8Array([0, 255, 1, 0]), LIMITS);
  assert.equal(text(store.get("one", "k")), "v1");
  assert.equal(text(store.get("two", "k")), "v2", "namespaces are separate");
  assert.deepEqual([...store.get("one", "binary")!], [0, 255, 1, 0]);
  assert.equal(store.get("one", "missing"), undefined);
  store.set("one", "k", bytes("replaced"), LIMITS);
  assert.deepEqual(store.list("one"), [{ key: "binary", bytes: 4 }, { key: "k", bytes: 8 }]);
  assert.equal(store.usage("one"), "binary".length + 4 + 1 + 8);
  assert.equal(store.delete("one", "binary"), true);
  assert.equal(store.delete("one", "binary"), false);
  assert.equal(store.usage("one"), 9);
  store.set("one", "empty", new Uint8Array(0), LIMITS);
  assert.equal(store.get("one", "empty")?.length, 0, "an empty value is a value");
  store.close();

  const again = MemoryStore.open(path);
  assert.equal(text(again.get("one", "k")), "replaced");
  assert.equal(again.usage("one"), 9 + 5);
  again.close();
  const db = new DatabaseSync(path);
  assert.equal((db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode, "wal");
  db.close();
});

Deno.test("store: per-value and per-namespace caps refuse with ENOSPC and change nothing", () => {
  const store = MemoryStore.open(`${tmp}/caps.db`);
  const refused = (fn: () => void, errno: string, pattern: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof StoreError && e.errno === errno && pattern.test(e.message),
    );
  refused(() => store.set("ns", "big", new Uint8Array(101), LIMITS), "ENOSPC", /max_value_bytes \(100\)/);
  for (let i = 0; i < 9; i++) store.set("ns", `k${i}`, new Uint8Array(98), LIMITS); // 9 × 100 bytes
  assert.equal(store.usage("ns"), 900);
  refused(() => store.set("ns", "k9", new Uint8Array(99), LIMITS), "ENOSPC", /would hold 1001 bytes/);
  assert.equal(store.get("ns", "k9"), undefined);
  assert.equal(store.usage("ns"), 900);
  store.set("ns", "k9", new Uint8Array(98), LIMITS); // exactly 1000 fits
  // Replacing a value counts the difference only.
  store.set("ns", "k0", new Uint8Array(50), LIMITS);
  assert.equal(store.usage("ns"), 952);
  store.set("other", "k", new Uint8Array(98), LIMITS); // another namespace has its own quota
  refused(() => store.set("ns", "", bytes("x"), LIMITS), "EINVAL", /the key is empty/);
  refused(() => store.set("ns", "x".repeat(1025), bytes("x"), LIMITS), "EINVAL", /over 1024/);
  store.close();
});

Deno.test("store: several processes write one file at once — no errors, nothing lost, totals exact", async () => {
  const path = `${tmp}/shared.db`;
  const script = `${tmp}/writer.ts`;
  const storeModule = new URL("../../../families/cis/store.ts", import.meta.url).href;
  Deno.writeTextFileSync(
    script,
    `import { MemoryStore } from "${storeModule}";
const [path, id, n] = Deno.args;
const store = MemoryStore.open(path);
const limits = { maxValueBytes: 1000, maxTotalBytes: 1 << 30 };
for (let i = 0; i < Number(n); i++) {
  store.set("shared", \`w\${id}-\${i}\`, new TextEncoder().encode("x".repeat(100)), limits);
  if (i % 10 === 0) store.get("shared", \`w\${id}-0\`);
}
store.close();
`,
  );
  const writers = 4, each = 150;
  const outputs = await Promise.all(
    Array.from({ length: writers }, (_, id) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-read", "--allow-write", script, path, String(id), String(each)],
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  for (const o of outputs) assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
  const store = MemoryStore.open(path);
  const keys = store.list("shared");
  assert.equal(keys.length, writers * each);
  const expected = keys.reduce((n, k) => n + k.key.length + k.bytes, 0);
  assert.equal(store.usage("shared"), expected, "the kept total equals the data");
  store.close();
});

Deno.test("store: cleanup", () => {
  Deno.removeSync(tmp, { recursive: true });
});
