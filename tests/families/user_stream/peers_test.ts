/**
 * SPEAR's user_stream_echo, unmodified in behaviour, verified from clients nobody here wrote: a
 * real headless Chromium (Debian) using the endpoint's page — a person's keystrokes, the echo
 * shown live, a screenshot in test-output/ — and Python's `websockets` (Debian
 * python3-websockets). Both come from `scripts/setup.sh --test`, which scripts/test.sh runs.
 */
import assert from "node:assert/strict";
import { chromiumInstalled, ChromiumPage, testOutputDir } from "../../support/chromium.ts";
import { serveGuest, USTREAM_ECHO } from "../../support/ustream.ts";
import { within } from "../../support/within.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-websockets installs

function pythonWebsocketsInstalled(): boolean {
  try {
    return Deno.statSync("/usr/lib/python3/dist-packages/websockets").isDirectory;
  } catch {
    return false;
  }
}

Deno.test({
  name: "user_stream: the page in headless Chromium: type, see the echo live (screenshot in test-output/)",
  ignore: !chromiumInstalled(),
  async fn() {
    const served = await serveGuest(USTREAM_ECHO);
    const page = await ChromiumPage.launch();
    try {
      await page.navigate(served.endpoint.pageUrl);
      await page.until(
        `document.getElementById("status").textContent.startsWith("connected")`,
        "the page connected",
      );
      // The token left the address bar once used.
      assert.equal(await page.evaluate<string>("location.hash"), "");
      await page.evaluate(`document.getElementById("text").focus()`);
      await page.type("hello from chromium");
      await page.until(
        `[...document.querySelectorAll("#log .received")].some((e) => e.textContent === "← [1#1] hello from chromium")`,
        "the echo shown",
      );
      await page.type("second line ✓");
      await page.until(
        `[...document.querySelectorAll("#log .received")].some((e) => e.textContent === "← [1#2] second line ✓")`,
        "the second echo shown",
      );
      const lines = await page.evaluate<string[]>(
        `[...document.querySelectorAll("#log div")].map((e) => e.textContent)`,
      );
      assert.deepEqual(lines, [
        "→ [1#1] hello from chromium",
        "← [1#1] hello from chromium",
        "→ [1#2] second line ✓",
        "← [1#2] second line ✓",
      ]);
      const shot = `${await testOutputDir()}/user_stream_page.png`;
      await page.screenshot(shot);
      console.log(`screenshot: ${shot}`);
      const png = await Deno.readFile(shot);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    } finally {
      await page.close(); // the browser leaves: SESSION_CLOSED ends the echo guest
    }
    const r = await within(served.done, "the echo guest ended");
    assert.equal(r.exitCode, 0, served.logs.join("\n"));
    assert.ok(served.logs.includes("stream connected: stream_id=1 fd=1002"), served.logs.join("\n"));
    assert.ok(served.logs.includes("session closed"));
    assert.equal(served.endpoint.stats.framesOut, 2);
  },
});

const PYTHON_CLIENT = `
import asyncio, struct, sys, websockets

def frame(stream_id, seq, data):
    return struct.pack("<4sHHHHIQII", b"SPST", 1, 32, 2, 0, stream_id, seq, 0, len(data)) + data

async def main(url, token, how):
    kwargs = ({"extra_headers": {"Authorization": "Bearer " + token}} if how == "header"
              else {"subprotocols": ["spear.ssf.v1", "spear.token." + token]})
    async with websockets.connect(url, **kwargs) as ws:
        sent = [frame(4, i + 1, ("python %d " % i).encode() * (i * 300 + 1)) for i in range(3)]
        sent.append(frame(9, 1, bytes(range(256)) * 200))
        for f in sent:
            await ws.send(f)
        echoes = [await ws.recv() for _ in sent]
        # In order within a stream; streams interleave as the guest serves them.
        for stream in (4, 9):
            mine = [f for f in sent if f[12:16] == struct.pack("<I", stream)]
            assert [e for e in echoes if e[12:16] == struct.pack("<I", stream)] == mine, "echo differs"
        print("ok %d %s %s" % (len(sent), how, ws.subprotocol), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
`;

Deno.test({
  name:
    "user_stream: Python's websockets client gets byte-identical echoes (Bearer header and subprotocol token)",
  ignore: !pythonWebsocketsInstalled(),
  async fn() {
    // One echo guest per client: the echo ends when its (last) client leaves, as SPEAR's does.
    for (const how of ["header", "subprotocol"]) {
      const served = await serveGuest(USTREAM_ECHO);
      const out = await new Deno.Command(PYTHON, {
        args: ["-c", PYTHON_CLIENT, served.endpoint.url, served.endpoint.token, how],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(
        new TextDecoder().decode(out.stdout).trim(),
        `ok 4 ${how} ${how === "header" ? "None" : "spear.ssf.v1"}`,
      );
      const r = await within(served.done, "the echo guest ended");
      assert.equal(r.exitCode, 0);
      assert.ok(served.logs.includes("stream connected: stream_id=9 fd=1003"), served.logs.join("\n"));
      assert.ok(served.logs.includes("session closed"));
    }
  },
});
