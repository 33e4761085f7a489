/**
 * `spear run --serve` and `spear stream connect` through the launcher (`deno task spear`), as a
 * person runs them: scoped permissions derived for the --serve address, the token line on
 * stderr, the terminal client piping stdin through SPEAR's echo and back to stdout, a token
 * from the variable the config names, and one-line refusals.
 */
import assert from "node:assert/strict";
import { permissionFlags } from "../../../cli/launcher.ts";
import { within } from "../../support/within.ts";
import { USTREAM_ECHO } from "../../support/ustream.ts";

const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const decoder = new TextDecoder();

async function writeConfig(dir: string, value: unknown): Promise<string> {
  const path = `${dir}/spear.json`;
  await Deno.writeTextFile(path, JSON.stringify(value));
  return path;
}

function spear(args: string[], env: Record<string, string> = {}, stdin: "piped" | "null" = "null") {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "spear", ...args],
    cwd: root,
    stdin,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
}

/** Reads stderr lines until one matches; the rest keeps being collected. */
async function stderrUntil(child: Deno.ChildProcess, re: RegExp, seen: string[]): Promise<string> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return await within(
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stderr ended without ${re}:\n${seen.join("\n")}`);
        buffered += value;
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        seen.push(...lines);
        const hit = lines.find((l) => re.test(l));
        if (hit) {
          void (async () => {
            for (;;) {
              const r = await reader.read();
              if (r.done) break;
              seen.push(...r.value.split("\n").filter(Boolean));
            }
          })();
          return hit;
        }
      }
    })(),
    `stderr line ${re}`,
    60_000,
  );
}

/** `spear run --serve 127.0.0.1:0` of SPEAR's echo guest, with `config`. */
function serveEcho(config: string, env: Record<string, string> = {}) {
  return spear(
    ["run", "--config", config, "--timeout-ms", "60000", "--serve", "127.0.0.1:0", USTREAM_ECHO],
    env,
  );
}

Deno.test("user_stream CLI: the launcher grants exactly the --serve address net.listen allows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await writeConfig(dir, { net: { listen: ["tcp://127.0.0.1:8123"] } });
    const flags = await permissionFlags([
      "run",
      "--config",
      config,
      "--serve",
      "127.0.0.1:8123",
      USTREAM_ECHO,
    ]);
    assert.ok(flags.includes("--allow-net=127.0.0.1:8123"), flags.join(" "));
    const refused = await permissionFlags([
      "run",
      "--config",
      config,
      "--serve",
      "127.0.0.1:9000",
      USTREAM_ECHO,
    ]);
    assert.ok(refused.includes("--allow-net=127.0.0.1:8123"), refused.join(" ")); // nothing for 9000
    const withEnv = await writeConfig(dir, { user_stream: { token_env: "MY_STREAM_TOKEN" } });
    const envFlags = await permissionFlags(["run", "--config", withEnv, USTREAM_ECHO]);
    assert.ok(
      envFlags.some((f) => f.startsWith("--allow-env=") && f.includes("MY_STREAM_TOKEN")),
      envFlags.join(" "),
    );
    const client = await permissionFlags(["stream", "connect", "ws://127.0.0.1:8123/ws", "--token", "t"]);
    assert.ok(client.includes("--allow-net=127.0.0.1:8123"), client.join(" "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("user_stream CLI: spear run --serve + spear stream connect: stdin through SPEAR's echo to stdout", async () => {
  const dir = await Deno.makeTempDir();
  const config = await writeConfig(dir, { net: { listen: ["tcp://127.0.0.1:0"] } });
  const server = serveEcho(config);
  const serverLines: string[] = [];
  try {
    const line = await stderrUntil(server, /user streams at/, serverLines);
    const m = /user streams at (ws:\/\/127\.0\.0\.1:\d+\/ws) token (\S+); page (http:\/\/\S+)$/.exec(line);
    assert.ok(m, line);
    const [, url, token, page] = m;
    assert.equal(page, url.replace("ws://", "http://").replace(/\/ws$/, `/#token=${token}`));
    // The page is served on the same endpoint.
    const html = await (await fetch(page)).text();
    assert.match(html, /<title>spear user stream<\/title>/);

    const client = spear(["stream", "connect", url, "--stream", "3"], { SPEAR_STREAM_TOKEN: token }, "piped");
    const input = "first line\nsecond line, ünïcode\n" + "x".repeat(100_000) + "\n";
    const writer = client.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
    const out = await within(client.output(), "the client's output", 60_000);
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    assert.equal(decoder.decode(out.stdout), input);
    // The client left: SESSION_CLOSED ends the echo, and the run with it.
    const status = await within(server.status, "the run ended", 60_000);
    assert.equal(status.code, 0, serverLines.join("\n"));
    assert.ok(serverLines.some((l) => l.includes("stream connected: stream_id=3")), serverLines.join("\n"));
    assert.ok(serverLines.some((l) => l.includes("session closed")), serverLines.join("\n"));
  } finally {
    try {
      server.kill();
    } catch { /* ended */ }
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("user_stream CLI: a token from the variable the config names; refusals are one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // --serve outside net.listen: exit 2, one line naming the policy.
    const none = await writeConfig(dir, {});
    const refused = await spear(["run", "--config", none, "--serve", "127.0.0.1:0", USTREAM_ECHO]).output();
    const lines = decoder.decode(refused.stderr).split("\n").filter(Boolean);
    assert.equal(refused.code, 2);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /^spear: --serve 127\.0\.0\.1:0: .*not in net\.listen/);

    const config = await writeConfig(dir, {
      net: { listen: ["tcp://127.0.0.1:0"] },
      user_stream: { token_env: "MY_STREAM_TOKEN" },
    });
    const short = await spear(["run", "--config", config, "--serve", "127.0.0.1:0", USTREAM_ECHO], {
      MY_STREAM_TOKEN: "short",
    }).output();
    assert.equal(short.code, 2);
    assert.match(
      decoder.decode(short.stderr),
      /^spear: config: user_stream\.token_env: \$MY_STREAM_TOKEN must hold/,
    );

    const secret = "a-long-enough-secret-token-0123456789";
    const server = serveEcho(config, { MY_STREAM_TOKEN: secret });
    const serverLines: string[] = [];
    try {
      const line = await stderrUntil(server, /user streams at/, serverLines);
      assert.ok(!line.includes(secret), "a token from the environment is never printed");
      assert.match(line, /\(token from \$MY_STREAM_TOKEN\)/);
      const url = /(ws:\/\/\S+)/.exec(line)![1];
      const wrong = await spear(["stream", "connect", url, "--token", "nope"]).output();
      assert.equal(wrong.code, 1);
      assert.match(decoder.decode(wrong.stderr), /^spear stream: cannot connect to ws:\/\//);
      const ok = spear(["stream", "connect", url, "--token", secret], {}, "piped");
      const w = ok.stdin.getWriter();
      await w.write(new TextEncoder().encode("ping\n"));
      await w.close();
      const out = await within(ok.output(), "client output", 60_000);
      assert.equal(decoder.decode(out.stdout), "ping\n");
      assert.equal((await within(server.status, "the run ended", 60_000)).code, 0);
    } finally {
      try {
        server.kill();
      } catch { /* ended */ }
      await server.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
