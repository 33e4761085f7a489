/**
 * The skill manifest (strict: unknown fields are errors naming them) and the module checks
 * made before a skill runs (header, version, required exports and their types, memory style).
 */
import assert from "node:assert/strict";
import { ManifestError, parseManifest } from "../../../families/cis/manifest.ts";
import { inspectModule, ModuleShapeError, skillAbiProblem } from "../../../families/cis/module.ts";

const root = new URL("../../../", import.meta.url).pathname;
const SHA = "ab".repeat(32);
const BASE = { name: "probe", version: "1.0.0", wasm: "probe.wasm", sha256: SHA };

function rejects(raw: unknown, message: string): void {
  assert.throws(() => parseManifest(raw, "skill.json"), (e: unknown) => {
    assert.ok(e instanceof ManifestError, String(e));
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("manifest: the SPEC's shape parses, with defaults left absent", () => {
  assert.deepEqual(parseManifest(BASE), BASE);
  const full = {
    ...BASE,
    sha256: SHA.toUpperCase(),
    description: "all fields",
    ai: { backend: "openai", model: "gpt-4o-mini" },
    memory: { namespace: "shared", max_value_bytes: 100, max_total_bytes: 1000 },
    http: {
      allow: ["example.com", "https://*.example.org", "127.0.0.1:8080"],
      timeout_ms: 500,
      max_response_bytes: 10,
    },
    limits: { timeout_ms: 1000, memory_mb: 64 },
  };
  assert.deepEqual(parseManifest(full), { ...full, sha256: SHA });
});

Deno.test("manifest: unknown fields anywhere are errors naming them", () => {
  rejects({ ...BASE, extra: 1 }, "skill.json: extra: unknown field");
  rejects({ ...BASE, ai: { backend: "x", temperature: 1 } }, "skill.json: ai.temperature: unknown field");
  rejects({ ...BASE, memory: { quota: 1 } }, "skill.json: memory.quota: unknown field");
  rejects({ ...BASE, http: { allow: [], hosts: [] } }, "skill.json: http.hosts: unknown field");
  rejects({ ...BASE, limits: { max_fds: 3 } }, "skill.json: limits.max_fds: unknown field");
});

Deno.test("manifest: required fields, types and ranges", () => {
  rejects(null, "skill.json: (root): must be a JSON object");
  rejects({ ...BASE, name: undefined }, "skill.json: name: is required");
  rejects(
    { ...BASE, name: "../etc" },
    "skill.json: name: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  );
  rejects({ ...BASE, version: 1 }, "skill.json: version: must be a non-empty string");
  rejects({ ...BASE, sha256: "abc" }, "skill.json: sha256: must be 64 hexadecimal digits");
  rejects({ ...BASE, wasm: "" }, "skill.json: wasm: must be a non-empty string");
  rejects({ ...BASE, ai: null }, "skill.json: ai: must be an object");
  rejects({ ...BASE, http: { allow: "example.com" } }, "skill.json: http.allow: must be an array of strings");
  rejects(
    { ...BASE, http: { allow: ["example.com", "tcp://x"] } },
    'skill.json: http.allow[1]: "tcp://x": a port is required for tcp://',
  );
  rejects(
    { ...BASE, limits: { timeout_ms: 0 } },
    "skill.json: limits.timeout_ms: must be an integer from 1 to 2147483647",
  );
  rejects(
    { ...BASE, limits: { memory_mb: 1.5 } },
    "skill.json: limits.memory_mb: must be an integer from 1 to 65536",
  );
  rejects(
    { ...BASE, memory: { max_value_bytes: 1 << 30 } },
    "skill.json: memory.max_value_bytes: must be an integer from 1 to 16777216",
  );
  rejects(
    { ...BASE, memory: { namespace: "a/b" } },
    "skill.json: memory.namespace: must be 1-64 letters, digits, '.', '_' or '-'",
  );
});

// ---- module checks ----

function bytes(...parts: number[][]): Uint8Array {
  return new Uint8Array(parts.flat());
}
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

Deno.test("module: not wasm, other versions and components are named as such", () => {
  const shapeError = (b: Uint8Array) => {
    try {
      inspectModule(b);
    } catch (e) {
      assert.ok(e instanceof ModuleShapeError);
      return `${e.reason}: ${e.message}`;
    }
    return "ok";
  };
  assert.equal(
    shapeError(new TextEncoder().encode("#!/bin/sh\n")),
    "not_wasm: not a WebAssembly module (missing \\0asm header)",
  );
  assert.equal(shapeError(new Uint8Array(0)), "not_wasm: not a WebAssembly module (missing \\0asm header)");
  assert.equal(
    shapeError(bytes([0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00])),
    "bad_version: unsupported WebAssembly version 2 (expected 1)",
  );
  assert.match(
    shapeError(bytes([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00])),
    /^bad_version: a WebAssembly component/,
  );
  assert.equal(shapeError(bytes(HEADER)), "ok");
  assert.equal(
    shapeError(bytes(HEADER, [0x01, 0x05, 0x01])),
    "malformed: section 1 runs past the end of the module",
  );
});

Deno.test("module: the skill ABI — execute and alloc of the right types, a memory either way", () => {
  const read = (path: string) => inspectModule(Deno.readFileSync(`${root}guests/build/test/${path}.wasm`));
  assert.equal(skillAbiProblem(read("skill_probe")), undefined);
  assert.equal(skillAbiProblem(read("skill_probe_imported")), undefined, "memory imported as env.memory");
  const probe = read("skill_probe");
  assert.deepEqual(probe.exports.find((e) => e.name === "execute")?.type, {
    params: ["i32"],
    results: ["i32"],
  });
  assert.ok(
    read("skill_probe_imported").imports.some((i) =>
      i.module === "env" && i.name === "memory" && i.kind === "memory"
    ),
  );
  assert.equal(
    skillAbiProblem(read("skill_no_alloc")),
    "missing export alloc: a skill exports alloc(size) -> ptr",
  );
  assert.equal(
    skillAbiProblem(read("skill_no_execute")),
    "missing export execute: a skill exports execute(input_ptr) -> output_ptr",
  );
  // A command (hello) has neither.
  assert.match(
    skillAbiProblem(inspectModule(Deno.readFileSync(`${root}guests/build/hello.wasm`)))!,
    /missing export execute/,
  );
  // Wrong types and kinds.
  const shape = {
    version: 1,
    imports: [],
    exports: [
      { name: "execute", kind: "func" as const, type: { params: ["i32", "i32"], results: ["i32"] } },
      { name: "alloc", kind: "func" as const, type: { params: ["i32"], results: ["i32"] } },
      { name: "memory", kind: "memory" as const },
    ],
  };
  assert.equal(skillAbiProblem(shape), "export execute has type (i32,i32)->i32, expected (i32)->i32");
  shape.exports[0] = { name: "execute", kind: "global" as never };
  assert.equal(
    skillAbiProblem(shape),
    "export execute is a global, not a function (execute(input_ptr) -> output_ptr)",
  );
  shape.exports[0] = { name: "execute", kind: "func", type: { params: ["i32"], results: ["i32"] } };
  shape.exports.pop();
  assert.equal(
    skillAbiProblem(shape),
    'no memory: a skill exports its memory as "memory" or imports it as env.memory',
  );
});
