/**
 * Socket permissions through the launcher (`deno task spear run`): --allow-net is derived from
 * the config's net.allow / net.listen, --unstable-net is added only when the config lets UDP
 * through, and guests really run with exactly those permissions against real peers.
 */
import assert from "node:assert/strict";
import { permissionFlags } from "../../../cli/launcher.ts";
import { SAMPLES, SOCK_PROBE, startHttpServer, startUdpEcho } from "../../support/sock.ts";

const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const tmp = Deno.makeTempDirSync({ prefix: "spear-sock-launcher-" });

async function configFile(name: string, net: { allow?: string[]; listen?: string[] }): Promise<string> {
  const path = `${tmp}/${name}.json`;
  await Deno.writeTextFile(path, JSON.stringify({ net }));
  return path;
}

async function spear(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "spear", ...args],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", SPEARHOST_CACHE_DIR: `${tmp}/cache` },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("sock launcher: --allow-net from net.allow/net.listen; --unstable-net only when UDP is allowed", async () => {
  const tcp = await configFile("tcp", { allow: ["tcp://127.0.0.1:6379"], listen: ["tcp://127.0.0.1:0"] });
  const tcpFlags = await permissionFlags(["run", "--config", tcp, SOCK_PROBE]);
  assert.ok(
    tcpFlags.some((f) => /^--allow-net=127\.0\.0\.1:6379,127\.0\.0\.1:0$/.test(f)),
    tcpFlags.join(" "),
  );
  assert.ok(!tcpFlags.includes("--unstable-net"));

  const udp = await configFile("udp", { allow: ["udp://localhost:53"] });
  const udpFlags = await permissionFlags(["run", "--config", udp, SOCK_PROBE]);
  assert.ok(udpFlags.includes("--unstable-net"), udpFlags.join(" "));
  const net = udpFlags.find((f) => f.startsWith("--allow-net="))!.slice("--allow-net=".length).split(",");
  for (const grant of ["localhost:53", "127.0.0.1:53", "[::1]:53", "0.0.0.0:0", "[::]:0"]) {
    assert.ok(net.includes(grant), `${grant} in ${net}`);
  }

  const none = await permissionFlags(["run", SOCK_PROBE]);
  assert.ok(!none.includes("--unstable-net"), none.join(" "));
  // A guest that imports no socket call gets none of the family's grants (the policy's stay).
  const hello = await permissionFlags(["run", "--config", udp, `${SAMPLES}/hello.wasm`]);
  assert.ok(!hello.includes("--unstable-net"), hello.join(" "));
});

Deno.test("sock launcher: guests run with the scoped permissions — TCP to http.server, UDP to socat", async () => {
  const http = await startHttpServer(root);
  const echo = await startUdpEcho();
  try {
    const tcp = await configFile("http", { allow: [`tcp://127.0.0.1:${http.port}`] });
    const got = await spear([
      "run",
      "--config",
      tcp,
      `${SAMPLES}/http_client.wasm`,
      "--",
      `127.0.0.1:${http.port}`,
      "/deno.json",
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, await Deno.readTextFile(`${root}/deno.json`));

    const udp = await configFile("udp-echo", { allow: [`udp://localhost:${echo.port}`] });
    const pinged = await spear([
      "run",
      "--config",
      udp,
      `${SAMPLES}/udp_client.wasm`,
      "--",
      `localhost:${echo.port}`,
      "2",
    ]);
    assert.equal(pinged.code, 0, pinged.stderr);
    assert.equal(pinged.stdout, "ping 1\nping 2\n");

    // Outside the config: refused by the policy (-EACCES), before Deno's own check.
    const denied = await spear([
      "run",
      "--config",
      tcp,
      `${SAMPLES}/http_client.wasm`,
      "--",
      `127.0.0.1:${echo.port}`,
      "/",
    ]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /connect 127\.0\.0\.1:\d+: -13/);
  } finally {
    await http.stop();
    await echo.stop();
  }
});
