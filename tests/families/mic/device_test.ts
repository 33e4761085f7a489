/**
 * Real PortAudio capture for the mic family, through the ALSA virtual device
 * (tests/support/alsa_virtual.ts): the CLI runs tests/guests/mic_dump.c in a subprocess whose
 * environment points ALSA at the capture file. Sample-exact capture, resampling, closing the
 * fd mid-capture stopping the PortAudio stream, unknown devices (-EIO or the stub fallback),
 * LIST_DEVICES and `spear devices`. Ignored when the virtual-mic tools are missing.
 */
import assert from "node:assert/strict";
import { Errno } from "../../../runtime/abi.ts";
import { createVirtualMic, hasVirtualMicTools, type VirtualMic } from "../../support/alsa_virtual.ts";
import {
  bestCorrelation,
  energy,
  int16,
  lerpResample,
  logged,
  loggedValue,
  MIC_DUMP,
  ramp,
  root,
  runCli,
  sine,
} from "../../support/mic.ts";

const { EIO } = Errno;
const haveTools = await hasVirtualMicTools();

const decoder = new TextDecoder();

async function withVirtualMic(
  opts: Parameters<typeof createVirtualMic>[0],
  fn: (mic: VirtualMic) => Promise<void>,
): Promise<void> {
  const mic = await createVirtualMic(opts);
  try {
    await fn(mic);
  } finally {
    await mic.cleanup();
  }
}

Deno.test({
  name: "mic device: PortAudio capture through the ALSA virtual device is sample-exact",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, text: "one two three four five" }, async (mic) => {
      const json = '{"source":"device","sample_rate_hz":16000,"frame_ms":20,"fallback":{"to_stub":false}}';
      const r = await runCli(["run", MIC_DUMP, "--", json, "50"], mic.env, mic.dir);
      assert.equal(r.code, 0, r.stderr);
      const got = int16(r.stdout);
      assert.equal(got.length, 50 * 320);
      assert.ok(mic.frames >= got.length, "the file is longer than the capture");
      assert.deepEqual(got, mic.samples.subarray(0, got.length));
      const status = logged(r.logs, "status");
      assert.deepEqual([status.source, status.device, status.dropped_frames, status.last_error], [
        "device",
        "default",
        0,
        null,
      ]);
      assert.deepEqual(status.native, { sample_rate_hz: 16000, channels: 1, format: "int16" });
    }),
});

Deno.test({
  name: "mic device: closing the fd mid-capture stops and closes the PortAudio stream",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, samples: sine(300, 16000, 32000) }, async (mic) => {
      // A host in a child process (ALSA_CONFIG_PATH must precede Pa_Initialize) that reports
      // the driver's captures once the guest has closed its fd after 5 of ~100 frames.
      const script = `${mic.dir}/close_probe.ts`;
      await Deno.writeTextFile(
        script,
        `import { defaultConfig } from ${JSON.stringify(`${root}/host/config.ts`)};
import { SpearHost } from ${JSON.stringify(`${root}/host/host.ts`)};
import { micDriver } from ${JSON.stringify(`${root}/families/mic/driver.ts`)};
const config = defaultConfig();
const driver = micDriver(config);
const host = new SpearHost({ config, drivers: [driver], logSink: () => {} });
const json = '{"source":"device","sample_rate_hz":16000,"fallback":{"to_stub":false}}';
const r = await host.run(${JSON.stringify(MIC_DUMP)}, { args: [json, "5"], stdoutFile: "/dev/null" });
const sent = driver.framesSent;
const t0 = performance.now();
while (driver.activeCaptures > 0 && performance.now() - t0 < 2000) await new Promise((ok) => setTimeout(ok, 10));
await new Promise((ok) => setTimeout(ok, 200));
console.log(JSON.stringify({ exit: r.exitCode, active: driver.activeCaptures, sent, later: driver.framesSent - sent }));
await host.close();
`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        env: mic.env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, decoder.decode(out.stderr));
      const result = JSON.parse(decoder.decode(out.stdout).trim().split("\n").pop()!);
      assert.equal(result.exit, 0);
      assert.equal(result.active, 0, "the capture (and its stream) is closed");
      assert.equal(result.later, 0, "no frame after the close");
      assert.ok(result.sent >= 5 && result.sent <= 8, `${result.sent} frames sent`);
    }),
});

Deno.test({
  name: "mic device: 16 kHz capture resampled to 24 kHz matches the speech (correlation, energy)",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic(
      { sampleRate: 16000, channels: 1, text: "resampling the spear microphone" },
      async (mic) => {
        const json = '{"source":"device","sample_rate_hz":24000,"frame_ms":20,"fallback":{"to_stub":false}}';
        const r = await runCli(["run", MIC_DUMP, "--", json, "60"], mic.env, mic.dir);
        assert.equal(r.code, 0, r.stderr);
        const got = int16(r.stdout);
        assert.equal(got.length, 60 * 480);
        const reference = lerpResample(mic.samples, 16000, 24000).subarray(0, got.length);
        const corr = bestCorrelation(got, reference, 60);
        assert.ok(corr > 0.95, `correlation ${corr}`);
        const ratio = energy(got) / energy(reference);
        assert.ok(ratio > 0.8 && ratio < 1.2, `energy ratio ${ratio}`);
      },
    ),
});

Deno.test({
  name: "mic device: unknown device is -EIO + EPOLLERR + last_error, or the stub by fallback; LIST_DEVICES",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, samples: ramp(16000) }, async (mic) => {
      const strict = await runCli(
        ["run", MIC_DUMP, "--", '{"device":{"name":"nope"},"fallback":{"to_stub":false}}', "1"],
        mic.env,
        mic.dir,
      );
      assert.equal(strict.code, 3, strict.stderr);
      assert.equal(loggedValue(strict.logs, "set_param rc="), String(-EIO));
      assert.equal(loggedValue(strict.logs, "events="), "0x8");
      const status = logged(strict.logs, "status");
      assert.equal(status.last_error, 'no input device named "nope" (available: "default")');
      assert.equal(status.running, false);

      const loose = await runCli(
        ["run", MIC_DUMP, "--", '{"device":{"name":"nope"}}', "2"],
        mic.env,
        mic.dir,
      );
      assert.equal(loose.code, 0, loose.stderr);
      assert.ok(loose.stdout.length === 2 * 960 && loose.stdout.every((b) => b === 0));
      const fell = logged(loose.logs, "status");
      assert.deepEqual([fell.source, fell.requested_source, fell.fallback, fell.last_error], [
        "stub",
        "device",
        true,
        null,
      ]);
      assert.match(fell.fallback_reason as string, /no input device named "nope"/);

      const expected = [{
        name: "default",
        index: 0,
        max_input_channels: 128,
        default_sample_rate: 16000,
        host_api: "ALSA",
        is_default: true,
      }];
      const listed = await runCli(["run", MIC_DUMP, "--", "{}", "0", "list"], mic.env, mic.dir);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(JSON.parse(loggedValue(listed.logs, "devices ")), expected);

      // `deno task spear devices`: through the launcher and its narrowed permissions.
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-env", "--allow-run", `${root}/cli/launcher.ts`, "devices"],
        env: mic.env,
        cwd: mic.dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, decoder.decode(out.stderr));
      assert.deepEqual(JSON.parse(decoder.decode(out.stdout)), expected);
      // No JACK server runs here: what libjack prints while PortAudio probes it stays off stderr.
      assert.equal(decoder.decode(out.stderr), "");
    }),
});
