/**
 * cis.*: the host functions of skills (SPEC.md §9, seed 004) — an AI prompt, a persistent
 * key-value memory in SQLite, and HTTP through the network policy — plus the config sections
 * they own: `memory` (the store) and `skills` (where `spear skill add` installs skills).
 */
import {
  ConfigError,
  type HostConfig,
  isConfigObject,
  optString,
  rejectUnknownKeys,
} from "../../host/config.ts";
import { family, type ImportDecl } from "../family.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/** The host config's `memory` section. */
export interface MemorySection {
  store: "sqlite";
  /** The SQLite file; its directory holds the WAL files too. */
  path: string;
}

/** The host config's `skills` section. */
export interface SkillsSection {
  /** Where installed skills live: `<dir>/<name>/skill.json` and the module beside it. */
  dir: string;
}

declare module "../../host/config.ts" {
  interface FamilySections {
    memory: MemorySection;
    skills: SkillsSection;
  }
}

/** `$XDG_DATA_HOME/spearhost`, else `~/.local/share/spearhost`, else `./.spearhost`. */
export function defaultDataDir(): string {
  const env = (name: string) => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined; // no permission to read it: fall back
    }
  };
  const xdg = env("XDG_DATA_HOME");
  if (xdg) return `${xdg}/spearhost`;
  const home = env("HOME");
  return home ? `${home}/.local/share/spearhost` : ".spearhost";
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
}

const i32s = (n: number) => Array<"i32">(n).fill("i32");
const cis = (name: string, arity: number): ImportDecl => ({
  module: "cis",
  name,
  signatures: [{ params: i32s(arity), results: ["i32"] }],
});

export default family({
  name: "cis",
  status: "built",
  label: "`cis.ai_prompt`, `cis.memory_get`, `cis.memory_set`, `cis.http_request`",
  summary: 'built: skills (`spear skill …`); see "Skills (`cis`)" below',
  imports: [
    cis("ai_prompt", 4),
    cis("memory_get", 4),
    // Declared with or without a result (SPEC.md §9); the guest is linked with the one it imports.
    {
      ...cis("memory_set", 4),
      signatures: [{ params: i32s(4), results: ["i32"] }, { params: i32s(4), results: [] }],
    },
    cis("http_request", 6),
  ],
  fdKinds: [],
  config: [
    {
      key: "memory",
      parse(raw): MemorySection {
        if (raw === undefined) return { store: "sqlite", path: `${defaultDataDir()}/memory.db` };
        if (!isConfigObject(raw)) throw new ConfigError("memory", "must be an object");
        rejectUnknownKeys(raw, ["store", "path"], "memory");
        if (raw.store !== undefined && raw.store !== "sqlite") {
          throw new ConfigError("memory.store", 'must be "sqlite"');
        }
        return { store: "sqlite", path: optString(raw, "path", "memory") ?? `${defaultDataDir()}/memory.db` };
      },
    },
    {
      key: "skills",
      parse(raw): SkillsSection {
        if (raw === undefined) return { dir: `${defaultDataDir()}/skills` };
        if (!isConfigObject(raw)) throw new ConfigError("skills", "must be an object");
        rejectUnknownKeys(raw, ["dir"], "skills");
        return { dir: optString(raw, "dir", "skills") ?? `${defaultDataDir()}/skills` };
      },
    },
  ],
  uses: ["cchat"], // ai_prompt is answered by cchat's backends
  permissions(config: HostConfig) {
    // SQLite writes the WAL and shared-memory files beside the database: grant its directory.
    const memoryDir = dirOf(config.memory.path);
    return {
      read: [memoryDir, config.skills.dir],
      write: [memoryDir, config.skills.dir],
      env: ["XDG_DATA_HOME"],
    };
  },
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
  driver: () => lazyImport<typeof import("./driver.ts")>("./driver.ts", import.meta.url),
});
