/**
 * mic → rtasr end to end, offline, through the real CLI: the seed-002 sample
 * (guests/src/rtasr_epoll.c) on a `mic.file` with the local transport; SPEAR's mic_rtasr
 * (guests/src/mic_rtasr.c: a 24 kHz `device` mic, backend "openai-realtime-asr") on the ALSA
 * virtual microphone with a local_asr backend of that name, its transcript lines reaching
 * stdout while it runs; and the host's own websocket transport against `spear asr-server`.
 * Asserts on words. Skipped without whisper (scripts/setup.sh) or espeak-ng/sox.
 */
import assert from "node:assert/strict";
import { whisperInstalled } from "../../../families/rtasr/local/engine.ts";
import { startAsrServer } from "../../../families/rtasr/server.ts";
import { createVirtualMic, hasVirtualMicTools } from "../../support/alsa_virtual.ts";
import { words } from "../../support/speech.ts";

const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const ready = whisperInstalled() && await hasVirtualMicTools();
const TEXT = "Please call the office tomorrow morning and ask for the weekly report.";
const decoder = new TextDecoder();

async function spear(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "spear", ...args],
    cwd: root,
    env: { JACK_NO_START_SERVER: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function assertHeard(text: string, expected: string[]) {
  const heard = new Set(words(text));
  const missing = expected.filter((w) => !heard.has(w));
  assert.deepEqual(missing, [], `not heard in ${JSON.stringify(text)}`);
}

Deno.test({
  name: "e2e: rtasr_epoll sample, mic.file → local transport, transcript on stdout",
  ignore: !ready,
  async fn() {
    const mic = await createVirtualMic({ text: TEXT });
    try {
      const config = `${mic.dir}/spear.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          backends: [{ name: "openai-realtime-asr", kind: "local_asr", ops: ["speech_to_text"] }],
          mic: { file: mic.wavPath },
        }),
      );
      const r = await spear([
        "run",
        "--config",
        config,
        "guests/build/rtasr_epoll.wasm",
        "--",
        "file",
        "local",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assertHeard(r.stdout, ["office", "tomorrow", "morning", "weekly", "report"]);
      assert.match(r.stderr, /delta:/, "partial words arrive as deltas");
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "e2e: SPEAR's mic_rtasr on the ALSA virtual microphone, offline, transcript lines on stdout",
  ignore: !ready,
  async fn() {
    const mic = await createVirtualMic({ text: TEXT, padSeconds: 2 });
    try {
      const config = `${mic.dir}/spear.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          backends: [{ name: "openai-realtime-asr", kind: "local_asr", ops: ["speech_to_text"] }],
        }),
      );
      // mic_rtasr runs until its device ends, which the virtual device never does: the time
      // limit stops it, and its stdout lines must already be out (line-buffered stdout).
      const r = await spear(
        ["run", "--config", config, "--timeout-ms", "12000", "guests/build/mic_rtasr.wasm"],
        mic.env,
      );
      assert.equal(r.code, 124, r.stderr);
      assert.match(r.stderr, /mic_rtasr started/);
      const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
      assert.ok(lines.length >= 2, `deltas and a transcript, one per line: ${r.stdout}`);
      assertHeard(r.stdout, ["office", "tomorrow", "weekly", "report"]);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "e2e: the host's websocket transport against spear asr-server (GA protocol, offline)",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startAsrServer({ port: 0 });
    const mic = await createVirtualMic({
      text: "The weather today is cold and windy, so bring a warm jacket.",
    });
    try {
      const config = `${mic.dir}/spear.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          backends: [{
            name: "openai-realtime-asr",
            kind: "openai_realtime_ws",
            base_url: server.baseUrl,
            ops: ["speech_to_text"],
          }],
          mic: { file: mic.wavPath },
        }),
      );
      const r = await spear(["run", "--config", config, "guests/build/rtasr_epoll.wasm"]);
      assert.equal(r.code, 0, r.stderr);
      assertHeard(r.stdout, ["weather", "cold", "windy", "jacket"]);
      assert.equal(server.sessions, 1);
    } finally {
      await server.close();
      await mic.cleanup();
    }
  },
});
