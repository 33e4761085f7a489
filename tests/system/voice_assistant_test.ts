/**
 * The voice assistant (guests/src/voice_assistant.c), the main job, end to end through the real
 * CLI (the launcher, with its least-privilege flags): spoken questions → offline Whisper
 * (`local_asr`) → one asynchronous chat request per utterance → the printed answer.
 *
 * Speech is scripts/voice_questions.sh's (espeak-ng), heard through the ALSA virtual microphone
 * (tests/support/alsa_virtual.ts; the guest's `device` source, real PortAudio) or the config's
 * `mic.file`. Chat is deterministic: the `stub` backend, or the scripted OpenAI-compatible server
 * (tests/support/openai_server.ts) answering by what it was asked. The OpenAI config
 * (guests/configs/voice_openai.json) runs against the services' protocols on loopback:
 * `spear asr-server` for the realtime side and the scripted server for chat.
 * Asserts on words and answers, never on timing. Skipped without whisper (scripts/setup.sh) or
 * espeak-ng/sox.
 */
import assert from "node:assert/strict";
import { whisperInstalled } from "../../families/rtasr/local/engine.ts";
import { loadConfig } from "../../host/config.ts";
import { startAsrServer } from "../../families/rtasr/server.ts";
import { createVirtualMic, hasVirtualMicTools } from "../support/alsa_virtual.ts";
import {
  bearerOf,
  type RecordedRequest,
  type ScriptedReply,
  startOpenAIServer,
} from "../support/openai_server.ts";
import { wavToPcm16, words } from "../support/speech.ts";
import { gaHello, type RealtimeConnection, startRealtimeServer } from "../support/realtime_server.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const GUEST = "guests/build/voice_assistant.wasm";
const ready = whisperInstalled() && await hasVirtualMicTools();
const decoder = new TextDecoder();

/** An answer as the guest prints it: on one line. */
const printed = (answer: string) => answer.replace(/\s+/g, " ").trim();

/** What each sample question must be heard as (content words), and the scripted answer. */
const QUESTIONS = [
  // Quotes, a newline and non-ASCII text: the guest decodes the JSON string and prints one line.
  {
    words: ["capital", "france"],
    answer: 'Paris, the "City of Light" \u2014 the capital of France.\nBon voyage!',
  },
  { words: ["spider"], answer: "A spider has eight legs." },
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  heard: Map<number, string>;
  answers: Map<number, string>;
  errors: Map<number, string>;
}

/**
 * `spear run --config CONFIG [--timeout-ms MS] voice_assistant.wasm -- GUEST_ARGS` (see `spear`);
 * device runs give the guest longer than the default limit to hear the virtual microphone.
 */
function runVoice(
  config: string,
  guestArgs: string[],
  options: { env?: Record<string, string>; onLine?: (line: string) => void; timeoutMs?: number } = {},
): Promise<Run> {
  const limit = options.timeoutMs ? ["--timeout-ms", String(options.timeoutMs)] : [];
  return spear(["run", "--config", config, ...limit, GUEST, "--", ...guestArgs], options.env, options.onLine);
}

/** `deno task spear ARGS` (the launcher), with the guest's stdout parsed by utterance; `onLine`
 * sees each stdout line as the guest prints it. */
async function spear(
  args: string[],
  env: Record<string, string> = {},
  onLine: (line: string) => void = () => {},
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "spear", ...args],
    cwd: root,
    env: { JACK_NO_START_SERVER: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "", line = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    for (const c of chunk) {
      if (c !== "\n") line += c;
      else onLine(line), line = "";
    }
  }
  const run: Run = {
    code: (await child.status).code,
    stdout,
    stderr: await stderr,
    heard: new Map(),
    answers: new Map(),
    errors: new Map(),
  };
  for (const m of stdout.matchAll(/^\[(\d+)\] (heard|answer|error): (.*)$/gm)) {
    const kind = m[2] === "heard" ? run.heard : m[2] === "answer" ? run.answers : run.errors;
    kind.set(Number(m[1]), m[3]);
  }
  return run;
}

/** The sample questions as a WAV file in `dir` (the one definition: scripts/voice_questions.sh). */
async function questionsWav(dir: string): Promise<string> {
  const wav = `${dir}/questions.wav`;
  const out = await new Deno.Command("bash", {
    args: [`${root}/scripts/voice_questions.sh`, wav],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, decoder.decode(out.stderr));
  return wav;
}

function lastUserText(request: RecordedRequest): string {
  const messages = (request.body as { messages?: { role: string; content: string }[] }).messages ?? [];
  return messages.filter((m) => m.role === "user").pop()?.content ?? "";
}

function completion(content: string) {
  return {
    id: "chatcmpl-voice",
    object: "chat.completion",
    created: 0,
    model: "test-model",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 },
  };
}

/** Answers each question by its words (whatever order the requests come in). `fail` makes a
 * question's answer an HTTP 500; `hold` delays it until the promise it returns settles. */
function answerByQuestion(
  hooks: { fail?: (question: string) => boolean; hold?: (question: string) => Promise<unknown> | undefined } =
    {},
): ScriptedReply {
  return {
    kind: "dynamic",
    reply: (request) => {
      const question = lastUserText(request);
      const asked = new Set(words(question));
      const q = QUESTIONS.find((q) => q.words.every((w) => asked.has(w)));
      const until = hooks.hold?.(question);
      if (hooks.fail?.(question)) {
        return {
          status: 500,
          until,
          body: { error: { message: "the model is overloaded", type: "server_error" } },
        };
      }
      return { until, body: completion(q?.answer ?? "I did not catch that.") };
    },
  };
}

/** Utterance i was heard with its question's words. */
function assertHeard(run: Run, i: number) {
  const heard = run.heard.get(i + 1);
  assert.ok(heard !== undefined, `utterance ${i + 1} not heard:\n${run.stdout}\n${run.stderr}`);
  const got = new Set(words(heard));
  const missing = QUESTIONS[i].words.filter((w) => !got.has(w));
  assert.deepEqual(missing, [], `utterance ${i + 1} heard as ${JSON.stringify(heard)}`);
}

/** The chat requests carried the system prompt and exactly the heard text, one per session. */
function assertAsked(run: Run, requests: RecordedRequest[]) {
  assert.equal(requests.length, run.heard.size, "one chat request per utterance");
  const asked = requests.map(lastUserText).sort();
  assert.deepEqual(asked, [...run.heard.values()].sort());
  for (const r of requests) {
    const messages = (r.body as { messages: { role: string }[] }).messages;
    assert.deepEqual(messages.map((m) => m.role), ["system", "user"], "a new session per utterance");
  }
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "spear_voice_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const LOCAL_ASR = { name: "local-asr", kind: "local_asr", ops: ["speech_to_text"] };

function chatBackend(url: string) {
  return {
    name: "scripted-chat",
    kind: "openai_chat_completion",
    base_url: url,
    model: "test-model",
    api_key_env: "VOICE_TEST_KEY",
    ops: ["chat_completions"],
  };
}

Deno.test({
  name:
    "voice assistant: ALSA virtual microphone → local Whisper → scripted OpenAI chat, every answer printed",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const chat = startOpenAIServer();
    // The first answer is held until the guest has printed the second one: both questions are in
    // flight at once, and answers print as they complete.
    const secondAnswered = Promise.withResolvers<void>();
    const giveUp = setTimeout(() => secondAnswered.resolve(), 120_000); // the test then fails, not hangs
    const hold = (question: string) =>
      words(question).includes("france") ? secondAnswered.promise : undefined;
    chat.enqueue(answerByQuestion({ hold }), answerByQuestion({ hold }));
    const mic = await createVirtualMic({
      samples: await withDir(async (dir) => wavToPcm16(await questionsWav(dir), 16000)),
      padSeconds: 2,
    });
    try {
      const config = `${mic.dir}/spear.json`;
      await Deno.writeTextFile(config, JSON.stringify({ backends: [LOCAL_ASR, chatBackend(chat.url)] }));
      // The virtual device never ends: the guest stops after its two utterances are answered.
      const run = await runVoice(config, ["--source", "device", "--utterances", "2"], {
        env: { ...mic.env, VOICE_TEST_KEY: "sk-voice-test" },
        onLine: (line) => line.startsWith("[2] answer:") && secondAnswered.resolve(),
        timeoutMs: 240000,
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /^listening on the device microphone$/m);
      assertHeard(run, 0);
      assertHeard(run, 1);
      assert.equal(run.answers.get(1), printed(QUESTIONS[0].answer));
      assert.equal(run.answers.get(2), printed(QUESTIONS[1].answer));
      assert.ok(
        run.stdout.indexOf("[2] answer:") < run.stdout.indexOf("[1] answer:"),
        `answers print as they complete:\n${run.stdout}`,
      );
      assert.equal(run.errors.size, 0, run.stdout);
      assertAsked(run, chat.requests);
      assert.ok(chat.requests.every((r) => bearerOf(r) === "sk-voice-test"));
      assert.ok(!run.stdout.includes("sk-voice-test") && !run.stderr.includes("sk-voice-test"));
      assert.match(run.stdout, /^2 utterance\(s\) heard$/m);
    } finally {
      clearTimeout(giveUp);
      await chat.close();
      await mic.cleanup();
    }
  },
});

Deno.test({
  name:
    "voice assistant: mic.file with the shipped stub config ends at the end of the input, every answer printed",
  ignore: !ready,
  async fn() {
    await withDir(async (dir) => {
      const shipped = JSON.parse(await Deno.readTextFile(`${root}/guests/configs/voice_stub.json`));
      const config = `${dir}/spear.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({ ...shipped, mic: { file: await questionsWav(dir) } }),
      );
      // No --utterances and no device: the end of the file ends the run.
      const run = await runVoice(config, ["--source", "file", "--idle-ms", "0"]);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /^listening to the speech file \(mic\.file\)$/m);
      assert.equal(run.heard.size, 2, run.stdout);
      for (const [i, heard] of run.heard) {
        assertHeard(run, i - 1);
        assert.equal(run.answers.get(i), `stub chat completion: ${heard}`);
      }
    });
  },
});

Deno.test({
  name: "voice assistant: an error response is printed and the next utterance is still answered",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const chat = startOpenAIServer();
    const fail = (question: string) => words(question).includes("france");
    chat.enqueue(answerByQuestion({ fail }), answerByQuestion({ fail }));
    try {
      await withDir(async (dir) => {
        const config = `${dir}/spear.json`;
        await Deno.writeTextFile(
          config,
          JSON.stringify({
            backends: [LOCAL_ASR, chatBackend(chat.url)],
            mic: { file: await questionsWav(dir) },
          }),
        );
        const run = await runVoice(config, ["--source", "file"], {
          env: { VOICE_TEST_KEY: "sk-voice-test" },
        });
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assertHeard(run, 0);
        assertHeard(run, 1);
        assert.match(run.errors.get(1) ?? "", /500.*the model is overloaded/, run.stdout);
        assert.equal(run.answers.get(1), undefined);
        assert.equal(run.answers.get(2), printed(QUESTIONS[1].answer));
      });
    } finally {
      await chat.close();
    }
  },
});

Deno.test({
  name:
    "voice assistant: a recogniser error event is printed, a dropped recogniser is reconnected, and it goes on",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // A scripted GA realtime server: the first session reports an error event, hears the first
    // question and, once that question has reached the chat server (so the guest has read every
    // event before it), drops its TCP connection; the second session hears the second question.
    const chat = startOpenAIServer();
    const firstAsked = Promise.withResolvers<void>();
    const hold = (question: string) => {
      if (words(question).includes("france")) firstAsked.resolve();
      return undefined;
    };
    chat.enqueue(answerByQuestion({ hold }), answerByQuestion({ hold }));
    const transcribe = async (conn: RealtimeConnection, transcript: string) => {
      await conn.waitFor((m) => m.json?.type === "input_audio_buffer.append");
      await conn.sendJson({
        type: "input_audio_buffer.speech_started",
        item_id: "item_1",
        audio_start_ms: 0,
      });
      await conn.sendJson({
        type: "input_audio_buffer.committed",
        item_id: "item_1",
        previous_item_id: null,
      });
      await conn.sendJson({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_1",
        content_index: 0,
        transcript,
      });
    };
    let sessions = 0;
    const asr = startRealtimeServer(async (conn) => {
      await gaHello(conn);
      if (++sessions === 1) {
        await conn.sendJson({
          type: "error",
          error: { type: "server_error", message: "the recogniser hiccuped" },
        });
        await transcribe(conn, "What is the capital of France?");
        await firstAsked.promise;
        conn.drop();
      } else {
        await transcribe(conn, "How many legs does a spider have?");
      }
    });
    try {
      await withDir(async (dir) => {
        const backends = [
          { name: "realtime", kind: "openai_realtime_ws", base_url: asr.baseUrl, ops: ["speech_to_text"] },
          chatBackend(chat.url),
        ];
        const config = `${dir}/spear.json`;
        await Deno.writeTextFile(
          config,
          JSON.stringify({ backends, mic: { file: await questionsWav(dir) } }),
        );
        const args = ["--source", "file", "--transport", "websocket", "--utterances", "2"];
        const run = await runVoice(config, args, { env: { VOICE_TEST_KEY: "sk-voice-test" } });
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.match(run.stdout, /^asr error: the recogniser hiccuped$/m);
        assert.match(run.stdout, /^asr error: .*1006/m);
        assert.match(run.stdout, /^asr reconnected \(1 of 3\)$/m);
        assert.equal(run.heard.get(1), "What is the capital of France?");
        assert.equal(run.heard.get(2), "How many legs does a spider have?");
        assert.equal(run.answers.get(1), printed(QUESTIONS[0].answer));
        assert.equal(run.answers.get(2), printed(QUESTIONS[1].answer));
        assert.equal(asr.connections.length, 2);
      });
    } finally {
      firstAsked.resolve();
      await chat.close();
      await asr.close();
    }
  },
});

Deno.test({
  name:
    "voice assistant: the OpenAI config, unchanged but for its URLs, drives the realtime and chat protocols",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const asr = await startAsrServer({ port: 0 });
    const chat = startOpenAIServer();
    chat.enqueue(answerByQuestion(), answerByQuestion());
    try {
      await withDir(async (dir) => {
        const shipped = JSON.parse(await Deno.readTextFile(`${root}/guests/configs/voice_openai.json`));
        const backends = shipped.backends.map((b: { kind: string }) => ({
          ...b,
          base_url: b.kind === "openai_realtime_ws" ? asr.baseUrl : chat.url,
        }));
        const config = `${dir}/spear.json`;
        await Deno.writeTextFile(
          config,
          JSON.stringify({ ...shipped, backends, mic: { file: await questionsWav(dir) } }),
        );
        // The guest's default transport is `local`; with no local_asr backend it takes the
        // config's realtime service.
        const run = await runVoice(config, ["--source", "file"], {
          env: { OPENAI_API_KEY: "sk-voice-openai" },
        });
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.equal(asr.sessions, 1);
        assertHeard(run, 0);
        assertHeard(run, 1);
        assert.equal(run.answers.get(1), printed(QUESTIONS[0].answer));
        assert.equal(run.answers.get(2), printed(QUESTIONS[1].answer));
        assertAsked(run, chat.requests);
        for (const r of chat.requests) {
          assert.equal(bearerOf(r), "sk-voice-openai");
          assert.equal((r.body as { model: string }).model, "gpt-4o-mini", "the backend's bound model");
        }
      });
    } finally {
      await chat.close();
      await asr.close();
    }
  },
});

Deno.test({
  name: "voice assistant: on a device that never ends, an idle period ends the run cleanly",
  ignore: !ready,
  async fn() {
    const mic = await createVirtualMic({ text: "What is the capital of France?", padSeconds: 2 });
    try {
      const config = `${mic.dir}/spear.json`;
      const shipped = JSON.parse(await Deno.readTextFile(`${root}/guests/configs/voice_stub.json`));
      await Deno.writeTextFile(config, JSON.stringify({ backends: shipped.backends }));
      const run = await runVoice(config, ["--source", "device", "--idle-ms", "3000"], {
        env: mic.env,
        timeoutMs: 240000,
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.equal(run.heard.size, 1, run.stdout);
      assertHeard(run, 0);
      assert.equal(run.answers.get(1), `stub chat completion: ${run.heard.get(1)}`);
      assert.match(run.stdout, /^nothing heard for 3000 ms: stopping$/m);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "voice assistant: no microphone and no speech file is one clear line and exit 1",
  async fn() {
    await withDir(async (dir) => {
      const config = `${dir}/spear.json`;
      await Deno.writeTextFile(config, JSON.stringify({ backends: [LOCAL_ASR] }));
      const run = await runVoice(config, ["--source", "file"]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /^mic error: no speech file: the host config names no mic\.file$/m);
    });
  },
});

Deno.test("voice assistant: the shipped configs load; the offline one names local ASR and no chat backend", async () => {
  for (const name of ["voice_offline", "voice_stub", "voice_openai"]) {
    const path = `${root}/guests/configs/${name}.json`;
    const config = await loadConfig(path); // valid, or it throws naming the field
    assert.equal(config.mic.file, ".tools/voice/questions.wav", name);
    const named = (JSON.parse(await Deno.readTextFile(path)).backends as { kind: string }[]).map((b) =>
      b.kind
    );
    assert.deepEqual(
      named.sort(),
      {
        // No chat backend named: the host's embedded default answers (the offline main job).
        voice_offline: ["local_asr"],
        voice_stub: ["local_asr", "stub"],
        voice_openai: ["openai_chat_completion", "openai_realtime_ws"],
      }[name],
    );
  }
});
