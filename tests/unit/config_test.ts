/** host/config.ts: every section and nested object is checked, null included. */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../host/config.ts";

function rejects(raw: unknown, message: string): void {
  assert.throws(() => parseConfig(raw), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `${JSON.stringify(raw)}: ${e}`);
    assert.equal(e.message, message, JSON.stringify(raw));
    return true;
  });
}

Deno.test("config: a null or non-object section is an error naming it", () => {
  for (const section of ["limits", "net", "mic"]) {
    for (const value of [null, [], "x", 3, true]) {
      rejects({ [section]: value }, `config: ${section}: must be an object`);
    }
  }
  rejects({ backends: null }, "config: backends: must be an array");
  rejects({ backends: [null] }, "config: backends[0]: must be an object");
  rejects(
    { backends: [{ name: "a", kind: "stub", ops: ["chat_completions"] }, []] },
    "config: backends[1]: must be an object",
  );
  rejects(null, "config: (root): must be a JSON object");
});

Deno.test("config: null fields inside sections are errors, not defaults", () => {
  rejects(
    { limits: { timeout_ms: null } },
    "config: limits.timeout_ms: must be an integer from 1 to 2147483647",
  );
  rejects({ net: { allow: null } }, "config: net.allow: must be an array of strings");
  rejects({ mic: { file: null } }, "config: mic.file: must be a non-empty string");
  const backend = { name: "a", kind: "stub", ops: ["chat_completions"] };
  rejects({ backends: [{ ...backend, ops: null }] }, "config: backends[0].ops: must be an array of strings");
  rejects(
    { backends: [{ ...backend, features: null }] },
    "config: backends[0].features: must be an array of strings",
  );
  rejects(
    { backends: [{ ...backend, model: null }] },
    "config: backends[0].model: must be a non-empty string",
  );
  rejects(
    { backends: [{ ...backend, weight: null }] },
    "config: backends[0].weight: must be an integer from 1 to 1000000",
  );
});

Deno.test("config: absent and empty sections still mean the defaults", () => {
  const empty = parseConfig({});
  assert.deepEqual(parseConfig({ backends: [], limits: {}, net: {}, mic: {} }), empty);
  assert.deepEqual(empty.limits, { timeout_ms: 30000, memory_mb: 512, max_fds: 1024, host_memory_mb: 64 });
});

Deno.test("config: the skills' sections (one family owning two) — memory and skills, checked and defaulted", () => {
  for (const section of ["memory", "skills"]) {
    for (const value of [null, [], "x"]) {
      rejects({ [section]: value }, `config: ${section}: must be an object`);
    }
  }
  rejects({ memory: { store: "redis" } }, 'config: memory.store: must be "sqlite"');
  rejects({ memory: { path: "" } }, "config: memory.path: must be a non-empty string");
  rejects({ memory: { file: "x" } }, "config: memory.file: unknown field");
  rejects({ skills: { directory: "x" } }, "config: skills.directory: unknown field");
  const config = parseConfig({ memory: { path: "/data/m.db" }, skills: { dir: "/data/skills" } });
  assert.deepEqual(config.memory, { store: "sqlite", path: "/data/m.db" });
  assert.deepEqual(config.skills, { dir: "/data/skills" });
  const defaults = parseConfig({});
  assert.match(defaults.memory.path, /spearhost\/memory\.db$/);
  assert.match(defaults.skills.dir, /spearhost\/skills$/);
});
