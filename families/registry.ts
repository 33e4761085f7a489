/**
 * Every hostcall family, in one list. Adding a family is one folder with a `family.ts` and
 * one line here; everything below derives from the list: the imports a guest can link, the
 * -ENOSYS answers of families not built yet, the drivers a host starts, the config sections,
 * the backend kinds, the permissions a config needs, the C header's numbers and the README's
 * status table.
 */
import type { HostConfig } from "../host/config.ts";
import type { Driver } from "../host/host.ts";
import type { GuestRuntime } from "../runtime/guest.ts";
import type { Hostcall } from "../runtime/hostcall.ts";
import { moduleImportKeys } from "../host/wasm_imports.ts";
import { fail } from "../runtime/abi.ts";
import {
  type ConfigSection,
  type Family,
  type HostcallFn,
  type ImportDecl,
  importKey,
  type Permissions,
} from "./family.ts";
import core from "./core/family.ts";
import fd from "./fd/family.ts";
import cchat from "./cchat/family.ts";
import rtasr from "./rtasr/family.ts";
import mic from "./mic/family.ts";
import userStream from "./user_stream/family.ts";
import cis from "./cis/family.ts";
import sock from "./sock/family.ts";

export const FAMILIES: readonly Family[] = [core, fd, cchat, rtasr, mic, userStream, sock, cis] as Family[];

/** Every import of every family, built or not. */
export function allImports(): ImportDecl[] {
  return FAMILIES.flatMap((f) => f.imports);
}

function notBuilt(family: Family, name: string): HostcallFn {
  return () => {
    throw fail("ENOSYS", `${name} is not built in this spearhost yet (family ${family.name})`);
  };
}

/**
 * The hostcalls of one guest: each family's worker part implements its imports; a family
 * not built answers -ENOSYS. A built family that misses one of its imports is a bug, caught
 * here (and by tests) rather than at a guest's first call. With `imported` (the module's
 * `module.name` import keys), only the families the guest imports from are loaded — a worker
 * part the guest cannot reach costs it no start-up time — and they load side by side.
 */
export async function hostcallsFor(
  rt: GuestRuntime,
  families = FAMILIES,
  imported?: ReadonlySet<string>,
): Promise<Hostcall[]> {
  const wanted = imported
    ? families.filter((f) => f.imports.some((d) => imported.has(importKey(d))))
    : families;
  const parts = await Promise.all(
    wanted.map((f) => f.status === "built" && f.worker ? f.worker() : undefined),
  );
  const out: Hostcall[] = [];
  wanted.forEach((f, i) => {
    const impl = parts[i]?.implement(rt) ?? {};
    for (const decl of f.imports) {
      const run = impl[decl.name];
      if (!run && f.status === "built") throw new Error(`family ${f.name} does not implement ${decl.name}`);
      out.push({ ...decl, run: (run ?? notBuilt(f, decl.name)) as Hostcall["run"] });
    }
  });
  return out;
}

/** The drivers of every built family that has one. */
export async function createDrivers(config: HostConfig, families = FAMILIES): Promise<Driver[]> {
  const drivers: Driver[] = [];
  for (const f of families) {
    const driver = await createFamilyDriver(config, f);
    if (driver) drivers.push(driver);
  }
  return drivers;
}

/** The driver of one family, or undefined when it has none (not built, or no main-thread part). */
export async function createFamilyDriver(config: HostConfig, family: Family): Promise<Driver | undefined> {
  return family.status === "built" && family.driver
    ? (await family.driver()).createDriver(config)
    : undefined;
}

/** Config sections families own. */
export function configSections(): ConfigSection<unknown>[] {
  return FAMILIES.flatMap((f) => {
    if (!f.config) return [];
    return Array.isArray(f.config) ? f.config : [f.config as ConfigSection<unknown>];
  });
}

/** Backend kinds some family serves, in registry order. */
export function backendKinds(): string[] {
  return [...new Set(FAMILIES.flatMap((f) => f.backendKinds ?? []))];
}

/**
 * What the built families need for this config, merged: all of them, or only the families named
 * in `only` (see familiesImported: a guest that does not chat gets no way to the local model, one
 * without a mic no sound devices).
 */
export function familyPermissions(config: HostConfig, only?: ReadonlySet<string>): Required<Permissions> {
  const merged: Required<Permissions> = {
    net: [],
    env: [],
    read: [],
    write: [],
    unstable: [],
    run: [],
    childEnv: {},
  };
  const lists = ["net", "env", "read", "write", "unstable", "run"] as const;
  for (const f of FAMILIES) {
    if (f.status !== "built" || !f.permissions || (only && !only.has(f.name))) continue;
    const p = f.permissions(config);
    for (const key of lists) merged[key].push(...(p[key] ?? []));
    Object.assign(merged.childEnv, p.childEnv ?? {});
  }
  for (const key of lists) merged[key] = [...new Set(merged[key])];
  return merged;
}

/** The families a module's imports (`module.name` keys) reach, with the families they use. */
export function familiesImported(imported: ReadonlySet<string>): Set<string> {
  const names = new Set(
    FAMILIES.filter((f) => f.imports.some((i) => imported.has(importKey(i)))).map((f) => f.name),
  );
  for (const name of [...names]) {
    for (const used of FAMILIES.find((f) => f.name === name)?.uses ?? []) names.add(used);
  }
  return names;
}

/**
 * The families a module's imports reach (with those they use), read from its bytes without
 * compiling it; undefined when the bytes are not a module the reader knows (then: all of them).
 */
export function familiesOfModule(bytes: Uint8Array): Set<string> | undefined {
  const imports = moduleImportKeys(bytes);
  return imports && familiesImported(imports);
}

/** The README's status table rows (between its `families` markers): [imports, status]. */
export function statusRows(): [string, string][] {
  return FAMILIES.map((f) => [f.label, f.summary]);
}
