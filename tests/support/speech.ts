/**
 * Speech for the recogniser tests and benches: espeak-ng sentences as pcm16 mono at 24 kHz
 * (sox), and word error rate.
 */

/** A WAV file's samples as pcm16 at `rate` with `channels` (sox; -D: no dither, so it is deterministic). */
export async function wavToPcm16(wav: string, rate: number, channels = 1): Promise<Int16Array> {
  const out = await new Deno.Command("sox", {
    args: [
      "-D",
      wav,
      "-t",
      "raw",
      "-e",
      "signed-integer",
      "-b",
      "16",
      "-L",
      "-r",
      String(rate),
      "-c",
      String(channels),
      "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`sox failed: ${new TextDecoder().decode(out.stderr)}`);
  return new Int16Array(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength >> 1);
}

/** Speaks `text` with espeak-ng and returns pcm16 mono samples at `rate`. */
export async function speak(text: string, rate = 24000, voice = "en-us"): Promise<Int16Array> {
  const dir = await Deno.makeTempDir({ prefix: "spear_speech_" });
  try {
    const wav = `${dir}/s.wav`;
    const out = await new Deno.Command("espeak-ng", {
      args: ["-v", voice, "-w", wav, text],
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(`espeak-ng failed: ${new TextDecoder().decode(out.stderr)}`);
    return await wavToPcm16(wav, rate);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export function silence(seconds: number, rate = 24000): Int16Array {
  return new Int16Array(Math.round(seconds * rate));
}

export function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function words(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9' ]+/g, " ").split(/\s+/).filter((w) => w !== "");
}

/** Word error rate of `hypothesis` against `reference` (Levenshtein over words). */
export function wordErrorRate(reference: string, hypothesis: string): number {
  const r = words(reference), h = words(hypothesis);
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const cur = [i];
    for (let j = 1; j <= h.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return r.length === 0 ? 0 : prev[h.length] / r.length;
}

/** Sentences for WER measurements (espeak-ng reads them clearly). */
export const SENTENCES = [
  "Please call the office tomorrow morning and ask for the weekly report.",
  "The weather today is cold and windy, so bring a warm jacket.",
  "My brother bought a new car last summer.",
  "We will meet at the train station at seven o'clock.",
  "She opened the window because the room was too hot.",
  "The children played in the garden until it was dark.",
];
