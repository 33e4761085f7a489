/**
 * The start-up floor's launcher (bench/startup.ts): the least a least-privilege launcher does —
 * start a fresh Deno on bench/support/floor_child.ts with scoped permission flags, wait for
 * it and exit with its code. spearhost's cli/launcher.ts also reads the config and the guest's
 * imports to derive the flags; this one is handed them.
 * Run: deno run --allow-read --allow-run floor_launcher.ts LEVEL LIB CODE  (LEVEL: see floor_child.ts)
 */
const [level, libPath, codePath] = Deno.args;
const here = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const status = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-ffi",
    `--allow-read=${here},${libPath},${codePath}`, // the Worker reads its module
    `${here}/floor_child.ts`,
    level,
    libPath,
    codePath,
  ],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
Deno.exit(status.code);
