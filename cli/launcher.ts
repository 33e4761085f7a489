/**
 * `deno task spear …`: reads the config, then re-runs cli/main.ts in a fresh Deno with only
 * the permissions that config needs (DESIGN.md "Least privilege"): --allow-net derived from
 * the config's network policy (host/net/policy.ts `denoNetGrants`: the narrowest grant Deno can
 * express, which the drivers' in-process check then narrows to the exact entries), --allow-env
 * to the named key variables only, --allow-read of the guest, config and install,
 * --allow-write of the module cache, --allow-ffi, plus what each built family declares for
 * this config (families/<name>/family.ts `permissions`: the mic's file and ALSA paths, the
 * skills' directory and memory store, …). `skill run` reads the skill's manifest here to grant
 * its module and its `http.allow` hosts too.
 */
import { ConfigError, netPolicy } from "../host/config.ts";
import { familiesOfModule, familyPermissions } from "../families/registry.ts";
import { denoNetGrants, NetPolicy, parseNetEntry, parseResolvConf } from "../host/net/policy.ts";
import { loadManifest } from "../families/cis/manifest.ts";
import { defaultCacheDir } from "../host/native.ts";
import { parseArgs, resolveConfig, STREAM_TOKEN_ENV, UsageError } from "./args.ts";
import { formatSockAddr } from "../families/sock/protocol.ts";
import { lazyImport } from "../runtime/lazy.ts";
import { RUST_LIB_BACKTRACE, rustLibBacktrace } from "../ffi/rust_env.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The Deno permission flags for one invocation. */
export async function permissionFlags(argv: string[]): Promise<string[]> {
  return (await launchPlan(argv)).flags;
}

/**
 * The permission flags for one invocation, and the environment values families hand the host
 * process (the local LLM engine's reserved loopback port).
 */
export async function launchPlan(argv: string[]): Promise<{ flags: string[]; env: Record<string, string> }> {
  const cmd = parseArgs(argv);
  const configPath = "configPath" in cmd ? cmd.configPath : undefined;
  const config = await resolveConfig(configPath);
  const cacheDir = defaultCacheDir();
  const reads = [root, cacheDir, Deno.cwd() + "/spear.json"];
  if (configPath) reads.push(configPath);
  let guestWasm: string | undefined;
  if (cmd.command === "run") reads.push(guestWasm = cmd.guest);
  let policy = netPolicy(config);
  if (cmd.command === "skill" && cmd.action === "add") reads.push(cmd.wasm);
  if (cmd.command === "skill" && cmd.action === "run") {
    if (cmd.inputFile) reads.push(cmd.inputFile);
    try {
      const { resolveSkillPath } = await lazyImport<typeof import("../families/cis/skill.ts")>(
        "../families/cis/skill.ts",
        import.meta.url,
      );
      const path = await resolveSkillPath(config, cmd.skill);
      reads.push(path);
      const { manifest, wasmPath } = await loadManifest(path);
      reads.push(guestWasm = wasmPath);
      const allow = (manifest.http?.allow ?? []).map((e) => parseNetEntry(e, "allow"));
      policy = new NetPolicy([...policy.allow, ...allow], policy.listen);
    } catch {
      // The child reports a missing or broken skill in its own words.
    }
  }
  const families = familyPermissions(config, await familiesNeeded(cmd.command, guestWasm));
  reads.push(...families.read);
  const envNames = [
    "HOME",
    RUST_LIB_BACKTRACE, // so that traps stay cheap (ffi/rust_env.ts)
    "XDG_CACHE_HOME",
    "SPEARHOST_CACHE_DIR",
    "SPEARHOST_WASMTIME_LIB",
    ...families.env,
    ...Object.keys(families.childEnv),
  ];
  for (const b of config.backends) if (b.api_key_env) envNames.push(b.api_key_env);
  const grants = denoNetGrants(policy, await nameservers());
  // Families may ask for grants the policy already gives (UDP's ephemeral binds): each once.
  const net = grants === "all" ? grants : [...new Set([...grants, ...families.net])];
  // asr-server listens on exactly the address it was given.
  if (cmd.command === "asr-server" && net !== "all") net.push(`${cmd.host}:${cmd.port}`);
  // A run's user-stream endpoint listens on its --serve address, once net.listen allows it (the
  // child refuses it with the policy's reason otherwise).
  if (cmd.command === "run" && cmd.serve && net !== "all") {
    const { hostname, port } = cmd.serve;
    const grant = formatSockAddr(hostname, port);
    if ((await policy.checkListen({ scheme: "tcp", host: hostname, port })).ok && !net.includes(grant)) {
      net.push(grant);
    }
  }
  // The terminal client reaches exactly its URL's host and port.
  if (cmd.command === "stream") {
    const url = URL.canParse(cmd.url) ? new URL(cmd.url) : undefined;
    if (url && net !== "all") net.push(`${url.hostname}:${url.port || (url.protocol === "wss:" ? 443 : 80)}`);
    envNames.push(STREAM_TOKEN_ENV);
  }
  const flags = [
    "--allow-ffi",
    `--allow-read=${reads.join(",")}`,
    `--allow-write=${[cacheDir, ...families.write].join(",")}`,
    `--allow-env=${[...new Set(envNames)].join(",")}`,
    ...(net === "all" ? ["--allow-net"] : net.length ? [`--allow-net=${net.join(",")}`] : []),
    ...(families.run.length ? [`--allow-run=${families.run.join(",")}`] : []),
    ...families.unstable.map((feature) => `--unstable-${feature}`),
  ];
  // Set here rather than by the child at run time (ffi/rust_env.ts says why it matters).
  const backtraces = { [RUST_LIB_BACKTRACE]: rustLibBacktrace() };
  return { flags, env: { ...families.childEnv, ...backtraces } };
}

/**
 * The families whose grants a command needs: a guest's are those its imports reach (all of them
 * when its module cannot be read here: the child then reports why, before it runs anything).
 */
async function familiesNeeded(command: string, guestWasm?: string): Promise<Set<string> | undefined> {
  if (guestWasm) {
    try {
      return familiesOfModule(await Deno.readFile(guestWasm));
    } catch {
      return undefined;
    }
  }
  const byCommand: Record<string, string[]> = { "asr-server": ["rtasr"], devices: ["mic"], skill: ["cis"] };
  return new Set(byCommand[command] ?? []);
}

/** `ip:53` of each system nameserver: what Deno.resolveDns needs to check a name's addresses. */
async function nameservers(): Promise<string[]> {
  try {
    return parseResolvConf(await Deno.readTextFile("/etc/resolv.conf"));
  } catch {
    return []; // then names cannot be resolved in the child, and are refused (fail closed)
  }
}

/** The child's entry: cli/child.ts, or its bundle when this launcher is bundled (cli/bundle.ts). */
const CHILD = new URL("./child.ts", import.meta.url).pathname;

/** Runs the CLI: plans the permissions, runs the child with them, returns its exit code. */
export async function launch(argv: string[]): Promise<number> {
  let plan: { flags: string[]; env: Record<string, string> };
  try {
    plan = await launchPlan(argv);
  } catch (e) {
    // Usage and config errors read the same whether reported here or by the child.
    if (e instanceof UsageError || e instanceof ConfigError) {
      const { main } = await lazyImport<typeof import("./main.ts")>("./main.ts", import.meta.url);
      return await main(argv);
    }
    console.error(`spear: host error: ${(e as Error)?.message ?? e}`);
    return 70;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", ...plan.flags, CHILD, ...argv],
    env: plan.env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  return (await child.status).code;
}

if (import.meta.main) Deno.exit(await launch(Deno.args));
