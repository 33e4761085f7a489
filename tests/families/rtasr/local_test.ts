/**
 * The local recogniser (families/rtasr/local/): Whisper tiny.en through whisper.cpp on
 * espeak-ng speech, speaking OpenAI's GA server events. Asserts on words, not timings.
 * Skipped on a machine where scripts/setup.sh has not installed whisper.
 */
import assert from "node:assert/strict";
import {
  decodesDone,
  loadEngine,
  whisperFiles,
  whisperInstalled,
} from "../../../families/rtasr/local/engine.ts";
import { deltaOf, LocalAsrSession, resample24to16 } from "../../../families/rtasr/local/session.ts";
import { concat, silence, speak, wordErrorRate, words } from "../../support/speech.ts";

const ready = whisperInstalled();

type Ev = Record<string, unknown> & { type: string };

async function session(td: Record<string, unknown> | null) {
  const engine = await loadEngine(whisperFiles());
  const events: Ev[] = [];
  const s = new LocalAsrSession({
    emit: (e) => events.push(JSON.parse(e)),
    decoder: await engine.stream(),
    turnDetection: td as never,
  });
  return { s, events };
}

/** Feeds audio in 20 ms chunks, `speed` times faster than real time. */
async function feed(s: LocalAsrSession, pcm: Int16Array, speed = 3) {
  const chunk = 480;
  const started = performance.now();
  for (let at = 0; at < pcm.length; at += chunk) {
    s.appendAudio(new Uint8Array(pcm.slice(at, at + chunk).buffer));
    const due = ((at + chunk) / 24000) * 1000 / speed;
    const wait = due - (performance.now() - started);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
}

Deno.test({
  name: "local: pure helpers (delta of a growing hypothesis, 24→16 kHz)",
  fn() {
    assert.equal(deltaOf([], " Hello"), "Hello");
    assert.equal(deltaOf(["Hello"], " hello, world."), " world.");
    assert.equal(deltaOf(["Hello", "there"], " Hello world."), null);
    assert.equal(deltaOf(["Hello"], "Hello"), null);
    const tone = Int16Array.from(
      { length: 2400 },
      (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 24000)),
    );
    const out = resample24to16(tone);
    assert.equal(out.length, 1600);
    // Same tone at 16 kHz: compare with the ideal samples away from the edges.
    let err = 0;
    for (let k = 20; k < 1580; k++) {
      err = Math.max(err, Math.abs(out[k] - (8000 / 32768) * Math.sin((2 * Math.PI * 440 * k) / 16000)));
    }
    assert.ok(err < 0.02, `resampling error ${err}`);
  },
});

Deno.test({
  name: "local: server VAD turns two spoken sentences into GA events with the right words",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const a = "Please call the office tomorrow morning and ask for the weekly report.";
    const b = "The weather today is cold and windy, so bring a warm jacket.";
    const pcm = concat(silence(0.5), await speak(a), silence(1.2), await speak(b), silence(1.5));
    const { s, events } = await session({
      type: "server_vad",
      threshold: 0.5,
      prefix_padding_ms: 300,
      silence_duration_ms: 500,
    });
    try {
      s.created();
      await feed(s, pcm);
      await s.idle();
      const types = events.map((e) => e.type);
      assert.equal(types[0], "session.created");
      const completed = events.filter((e) =>
        e.type === "conversation.item.input_audio_transcription.completed"
      );
      assert.equal(completed.length, 2, JSON.stringify(types));
      for (const [i, ref] of [a, b].entries()) {
        const c = completed[i];
        const item = events.filter((e) => e.item_id === c.item_id).map((e) => e.type);
        assert.deepEqual(item.filter((t) => !t.endsWith(".delta")), [
          "input_audio_buffer.speech_started",
          "input_audio_buffer.speech_stopped",
          "input_audio_buffer.committed",
          "conversation.item.input_audio_transcription.completed",
        ]);
        assert.ok(item.includes("conversation.item.input_audio_transcription.delta"), "at least one delta");
        const wer = wordErrorRate(ref, String(c.transcript));
        assert.ok(wer <= 0.25, `WER ${wer} for "${c.transcript}"`);
        assert.deepEqual((c.usage as { type: string }).type, "duration");
      }
      const heard = new Set(completed.flatMap((c) => words(String(c.transcript))));
      for (const w of ["office", "tomorrow", "report", "weather", "jacket"]) {
        assert.ok(heard.has(w), `"${w}" missing`);
      }
      const committed = events.filter((e) => e.type === "input_audio_buffer.committed");
      assert.equal(committed[1].previous_item_id, committed[0].item_id);
    } finally {
      s.close();
    }
  },
});

Deno.test({
  name:
    "local: manual turns — a short commit is OpenAI's error, a real one transcribes; bad events get errors",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { s, events } = await session(null);
    try {
      s.appendAudio(new Uint8Array(silence(0.05).buffer));
      s.clientEvent('{"type":"input_audio_buffer.commit"}');
      s.clientEvent("{nope");
      s.clientEvent('{"type":"response.create"}');
      s.clientEvent('{"type":"input_audio_buffer.clear"}');
      await feed(s, concat(await speak("My brother bought a new car last summer."), silence(0.3)), 50);
      s.clientEvent('{"type":"input_audio_buffer.commit","event_id":"c1"}');
      await s.idle();
      const errors = events.filter((e) => e.type === "error").map((e) => (e.error as { code: string }).code);
      assert.deepEqual(errors, ["input_audio_buffer_commit_empty", "invalid_json", "unknown_event"]);
      assert.ok(events.some((e) => e.type === "input_audio_buffer.cleared"));
      assert.ok(
        !events.some((e) => e.type === "input_audio_buffer.speech_started"),
        "no VAD with turn_detection null",
      );
      const done = events.find((e) => e.type === "conversation.item.input_audio_transcription.completed");
      assert.ok(done, JSON.stringify(events.map((e) => e.type)));
      const heard = words(String(done.transcript));
      for (const w of ["brother", "car", "summer"]) {
        assert.ok(heard.includes(w), `"${w}" missing in "${done.transcript}"`);
      }
    } finally {
      s.close();
    }
  },
});

Deno.test({
  name: "local: decodesDone waits for a running decode (a process must not exit under one)",
  ignore: !ready,
  async fn() {
    const engine = await loadEngine(whisperFiles());
    const stream = await engine.stream();
    assert.equal(stream.busy, false);
    await decodesDone(); // nothing running: at once
    const decoding = stream.transcribe(new Float32Array(16000 * 8), 1);
    assert.equal(stream.busy, true);
    await decodesDone();
    assert.equal(stream.busy, false, "it resolved only once the decode had ended");
    await decoding;
    stream.free();
  },
});
