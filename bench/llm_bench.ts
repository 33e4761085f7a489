/**
 * The local LLM (`local_llm`, Qwen2.5-Coder-0.5B-Instruct Q4_K_M on llama.cpp, 1 thread):
 *   cold start   spawning the engine child until it answers /health (model load included);
 *   engine       one greedy completion of 64 tokens through the engine's HTTP API, as the host
 *                sends it: time to first token (prompt evaluated, engine side), generation
 *                tokens/s, and the round trip seen by the client;
 *   floor        the same prompt and 64 greedy tokens with node-llama-cpp in this process, no
 *                HTTP, no template, no child: what llama.cpp itself does on this machine;
 *   memory       the engine child's resident set (VmRSS) after the runs and its peak (VmHWM).
 * Medians of 5 runs each; the prompt cache is cleared between runs so every run evaluates the
 * whole prompt. A script, not Deno.bench (one model load per variant).
 *   deno task bench:llm
 */
import { EngineSupervisor } from "../families/cchat/local_llm/supervisor.ts";
import { defaultInstall } from "../families/cchat/local_llm/supervisor.ts";

const RUNS = 5;
const MAX_TOKENS = 64;
const QUESTION = "Write a short story about a lighthouse keeper.";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x: number, digits = 1) => x.toFixed(digits);

function procStatus(pid: number, key: string): number {
  const line = Deno.readTextFileSync(`/proc/${pid}/status`).split("\n").find((l) => l.startsWith(key));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : NaN; // MiB
}

// ---------------------------------------------------------------- the engine child
const supervisor = new EngineSupervisor();
let t0 = performance.now();
const state = await supervisor.ensure();
if (!state.ok) throw new Error(state.error);
const coldStartMs = performance.now() - t0;
const pid = supervisor.pid!;

const engine = { ttft: [] as number[], tps: [] as number[], roundTrip: [] as number[], tokens: 0, prompt: 0 };
for (let i = 0; i < RUNS; i++) {
  // A different first message each run defeats the prompt cache: the whole prompt is evaluated.
  const body = {
    model: "bench",
    temperature: 0,
    max_tokens: MAX_TOKENS,
    messages: [{ role: "system", content: `Run ${i}.` }, { role: "user", content: QUESTION }],
  };
  t0 = performance.now();
  const res = await fetch(`${state.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  engine.roundTrip.push(performance.now() - t0);
  engine.ttft.push(json.timings.prompt_ms);
  engine.tps.push(json.timings.predicted_per_second);
  engine.tokens = json.usage.completion_tokens;
  engine.prompt = json.usage.prompt_tokens;
}
const rssMiB = procStatus(pid, "VmRSS:");
const peakMiB = procStatus(pid, "VmHWM:");
await supervisor.stop();

// ---------------------------------------------------------------- the floor: llama.cpp in this process
const { engineDir, modelPath } = defaultInstall();
const nlc = await import(`file://${Deno.realPathSync(engineDir)}/node_modules/node-llama-cpp/dist/index.js`);
const llama = await nlc.getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  progressLogs: false,
  logLevel: "error",
});
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: 4096, sequences: 1, threads: 1 });
const sequence = context.getSequence();
const floor = { ttft: [] as number[], tps: [] as number[] };
for (let i = 0; i < RUNS; i++) {
  const prompt = `<|im_start|>system\nRun ${i}.<|im_end|>\n<|im_start|>user\n${QUESTION}<|im_end|>\n` +
    "<|im_start|>assistant\n";
  const tokens = model.tokenize(prompt, true);
  await sequence.clearHistory();
  t0 = performance.now();
  let first = 0;
  let n = 0;
  for await (const _ of sequence.evaluate(tokens, { temperature: 0 })) {
    if (n === 0) first = performance.now() - t0;
    if (++n >= MAX_TOKENS) break;
  }
  const total = performance.now() - t0;
  floor.ttft.push(first);
  floor.tps.push((n - 1) / ((total - first) / 1000));
}
await context.dispose();
await model.dispose();

console.log(`local_llm: ${state.model}, 1 thread, ${RUNS} runs, ${MAX_TOKENS} greedy tokens, medians\n`);
console.log(
  "| what                                   | engine (child, HTTP)      | floor (llama.cpp in process) |",
);
console.log(
  "| -------------------------------------- | ------------------------- | ---------------------------- |",
);
console.log(`| cold start (spawn → /health, model load) | ${fmt(coldStartMs / 1000, 2)} s | — |`);
console.log(
  `| time to first token (${engine.prompt}-token prompt) | ${fmt(median(engine.ttft), 0)} ms | ${
    fmt(median(floor.ttft), 0)
  } ms |`,
);
console.log(`| generation | ${fmt(median(engine.tps))} tokens/s | ${fmt(median(floor.tps))} tokens/s |`);
console.log(`| round trip, ${engine.tokens} tokens | ${fmt(median(engine.roundTrip), 0)} ms | — |`);
console.log(`| engine memory | RSS ${fmt(rssMiB, 0)} MiB, peak ${fmt(peakMiB, 0)} MiB | — |`);
