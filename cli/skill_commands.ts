/**
 * `spear skill …` (SPEC.md §9): run, add, list and the memory store. Loaded only for these
 * commands, so a cold `spear run` does not load the skills' modules.
 */
import type { HostConfig } from "../host/config.ts";
import { type RunResult, SpearHost } from "../host/host.ts";
import { escapeLogText } from "../host/log.ts";
import { addSkill, listSkills, runSkill, SkillError, type SkillRunResult } from "../families/cis/skill.ts";
import { loadManifest, SKILL_DEFAULTS, SKILL_NAME } from "../families/cis/manifest.ts";
import { StatusLine } from "./status.ts";
import { resolveConfig, type SkillCommand, UsageError } from "./args.ts";
import { lazyImport } from "../runtime/lazy.ts";
import { describeFailure, EXIT_FOR_FAILURE } from "./output.ts";

const encoder = new TextEncoder();

/** Writes bytes to stdout, all of them. */
async function writeStdout(bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
}

async function skillRunCommand(
  cmd: Extract<SkillCommand, { action: "run" }>,
  config: HostConfig,
): Promise<number> {
  let input = cmd.input;
  if (cmd.inputFile !== undefined) {
    try {
      input = await Deno.readTextFile(cmd.inputFile);
    } catch (e) {
      throw new UsageError(
        `cannot read ${cmd.inputFile}: ${
          e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
        }`,
      );
    }
  }
  // A status line while a slow AI or HTTP call is in flight, only where a person watches.
  const status = Deno.stderr.isTerminal() ? new StatusLine() : undefined;
  const host = new SpearHost({ config, activity: status });
  let result: SkillRunResult;
  try {
    result = await runSkill(host, cmd.skill, {
      input,
      timeoutMs: cmd.timeoutMs,
      memoryMb: cmd.memoryMb,
      maxFds: cmd.maxFds,
      hostMemoryMb: cmd.hostMemoryMb,
    });
  } finally {
    status?.clear();
    await host.close();
  }
  const line = describeFailure(`skill ${result.skill}`, result as RunResult);
  if (line) {
    console.error(line);
    return EXIT_FOR_FAILURE[result.failure!.kind] ?? 1;
  }
  if (result.exitCode !== 0) return result.exitCode; // proc_exit from inside execute
  await writeStdout(encoder.encode(`${result.outputText}\n`));
  return 0;
}

async function skillMemoryCommand(
  cmd: Extract<SkillCommand, { action: "memory" }>,
  config: HostConfig,
): Promise<number> {
  // An installed skill's manifest names its namespace and caps; any other NAME is a namespace.
  let namespace = cmd.skill;
  const limits = {
    maxValueBytes: SKILL_DEFAULTS.max_value_bytes,
    maxTotalBytes: SKILL_DEFAULTS.max_total_bytes,
  };
  if (!SKILL_NAME.test(cmd.skill)) throw new UsageError(`"${cmd.skill}" is not a skill name`);
  const manifestPath = `${config.skills.dir}/${cmd.skill}/skill.json`;
  try {
    await Deno.stat(manifestPath);
    const { manifest } = await loadManifest(manifestPath);
    namespace = manifest.memory?.namespace ?? manifest.name;
    limits.maxValueBytes = manifest.memory?.max_value_bytes ?? limits.maxValueBytes;
    limits.maxTotalBytes = manifest.memory?.max_total_bytes ?? limits.maxTotalBytes;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  // node:sqlite loads only for this command: importing it starts Deno's Node layer (30-40 ms
  // of every cold `spear run` when it was imported up front).
  const { MemoryStore, StoreError } = await lazyImport<typeof import("../families/cis/store.ts")>(
    "../families/cis/store.ts",
    import.meta.url,
  );
  const store = MemoryStore.open(config.memory.path);
  const where = `skill memory ${escapeLogText(cmd.skill)}`;
  try {
    switch (cmd.op) {
      case "get": {
        const value = store.get(namespace, cmd.key!);
        if (value === undefined) {
          console.error(`spear: ${where}: no key "${escapeLogText(cmd.key!)}"`);
          return 1;
        }
        await writeStdout(value);
        if (Deno.stdout.isTerminal()) await writeStdout(encoder.encode("\n"));
        return 0;
      }
      case "set":
        store.set(namespace, cmd.key!, encoder.encode(cmd.value!), limits);
        return 0;
      case "delete":
        if (!store.delete(namespace, cmd.key!)) {
          console.error(`spear: ${where}: no key "${escapeLogText(cmd.key!)}"`);
          return 1;
        }
        return 0;
      default:
        console.log(
          JSON.stringify({ namespace, total_bytes: store.usage(namespace), keys: store.list(namespace) }),
        );
        return 0;
    }
  } catch (e) {
    if (e instanceof StoreError) {
      console.error(`spear: ${where}: ${escapeLogText(e.message)}`);
      return e.errno === "EINVAL" ? 2 : 1;
    }
    throw e;
  } finally {
    store.close();
  }
}

/** Runs one `spear skill` command and returns the process exit code. */
export async function skillCommand(cmd: SkillCommand): Promise<number> {
  const config = await resolveConfig(cmd.configPath);
  try {
    switch (cmd.action) {
      case "run":
        return await skillRunCommand(cmd, config);
      case "add": {
        const host = new SpearHost({ config });
        try {
          const path = await addSkill(host, cmd.wasm, {
            name: cmd.name,
            allowHosts: cmd.allowHosts,
            version: cmd.version,
            description: cmd.description,
            aiBackend: cmd.aiBackend,
            aiModel: cmd.aiModel,
          });
          console.log(path);
        } finally {
          await host.close();
        }
        return 0;
      }
      case "list":
        for (const s of await listSkills(config)) {
          const m = s.manifest;
          console.log(
            m
              ? `${m.name}\t${m.version}\t${m.description ?? ""}`.trimEnd()
              : `${s.name}\t(unusable: ${escapeLogText(s.error ?? "")})`,
          );
        }
        return 0;
      default:
        return await skillMemoryCommand(cmd, config);
    }
  } catch (e) {
    if (e instanceof SkillError) {
      const name = "skill" in cmd ? cmd.skill : "name" in cmd ? cmd.name : "";
      console.error(`spear: skill ${escapeLogText(name)}: ${escapeLogText(e.message)}`);
      return e.exitCode;
    }
    throw e;
  }
}
