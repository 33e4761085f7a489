/**
 * PortAudio for the mic driver: one lazy Pa_Initialize per process, the input-device list
 * (LIST_DEVICES, `spear devices`) and opening a capture stream in the device's native format.
 *
 * The stream is opened as paInt16 at the device's defaultSampleRate with
 * min(requested channels, maxInputChannels) channels, and AudioConverter does the rest: the
 * ALSA virtual test device is sample-exact only in its native format (it skips periods when
 * plug has to convert), and most hardware is int16 at its default rate anyway.
 */
import * as pa from "../../ffi/portaudio.ts";
import { quietly } from "../../ffi/audio_diagnostics.ts";
import type { MicDeviceInfo } from "./protocol.ts";

let initialized = false;

/**
 * Pa_Initialize once per process. Errors (library missing, no FFI permission) are thrown as
 * one clear line; the next call tries again. Sets JACK_NO_START_SERVER=1 unless the user set
 * it, so PortAudio's JACK backend never spawns a server, and keeps what libjack and ALSA print
 * while PortAudio probes them ("Cannot connect to server" where no JACK server runs) off
 * stderr (ffi/audio_diagnostics.ts).
 */
export function ensurePortAudio(): void {
  if (initialized) return;
  try {
    if (Deno.env.get("JACK_NO_START_SERVER") === undefined) Deno.env.set("JACK_NO_START_SERVER", "1");
  } catch { /* no env permission: PortAudio still works, JACK may try to start */ }
  quietly(pa.initialize);
  initialized = true;
}

/** Pa_Terminate if initialized (one-shot commands such as `spear devices`). */
export function releasePortAudio(): void {
  if (!initialized) return;
  initialized = false;
  pa.terminate();
}

/** Every device with at least one input channel. */
export function listInputDevices(): MicDeviceInfo[] {
  ensurePortAudio();
  const defaultInput = pa.getDefaultInputDevice();
  const apis = new Map<number, string>();
  return pa.listDevices().filter((d) => d.maxInputChannels > 0).map((d) => {
    if (!apis.has(d.hostApi)) apis.set(d.hostApi, pa.getHostApiInfo(d.hostApi)?.name ?? "");
    return {
      name: d.name,
      index: d.index,
      max_input_channels: d.maxInputChannels,
      default_sample_rate: d.defaultSampleRate,
      host_api: apis.get(d.hostApi)!,
      is_default: d.index === defaultInput,
    };
  });
}

/** The device named exactly `name`, or the default input device; throws a clear Error. */
export function resolveInputDevice(name: string | null): MicDeviceInfo {
  const devices = listInputDevices();
  if (name === null) {
    const found = devices.find((d) => d.is_default);
    if (!found) {
      throw new Error(
        devices.length ? "no default input device" : "no audio input device (PortAudio found none)",
      );
    }
    return found;
  }
  const found = devices.find((d) => d.name === name);
  if (!found) {
    const names = devices.map((d) => JSON.stringify(d.name)).join(", ") || "none";
    throw new Error(`no input device named ${JSON.stringify(name)} (available: ${names})`);
  }
  return found;
}

export interface DeviceStream {
  device: MicDeviceInfo;
  stream: pa.PaInputStream;
  sampleRate: number;
  channels: number;
  /** Frames per Pa_ReadStream call (one output frame's duration). */
  chunkFrames: number;
}

/** Opens and starts an int16 input stream in the device's native rate. */
export function openDeviceStream(name: string | null, channels: number, frameMs: number): DeviceStream {
  const device = resolveInputDevice(name);
  const sampleRate = Math.round(device.default_sample_rate);
  const params = {
    device: device.index,
    channelCount: Math.min(channels, device.max_input_channels),
    sampleFormat: pa.paInt16,
  };
  const supported = pa.isFormatSupported(params, sampleRate);
  if (supported !== 0) {
    throw new Error(
      `device ${
        JSON.stringify(device.name)
      } cannot capture ${params.channelCount} ch int16 at ${sampleRate} Hz: ` +
        pa.getErrorText(supported),
    );
  }
  const chunkFrames = Math.max(1, Math.round((sampleRate * frameMs) / 1000));
  const stream = pa.openInputStream(params, sampleRate, chunkFrames);
  try {
    pa.startStream(stream);
  } catch (e) {
    pa.closeStream(stream);
    throw e;
  }
  return { device, stream, sampleRate, channels: params.channelCount, chunkFrames };
}

/** Stops and closes a stream once its pending read (if any) has returned. */
export async function closeDeviceStream(s: DeviceStream): Promise<void> {
  await pa.idle(s.stream);
  try {
    pa.abortStream(s.stream);
  } catch { /* already stopped */ }
  pa.closeStream(s.stream);
}

/** Audio input devices (PortAudio), for `spear devices`; same shape as mic LIST_DEVICES. */
export function listDevices(): Promise<MicDeviceInfo[]> {
  return Promise.resolve().then(() => {
    try {
      return listInputDevices();
    } finally {
      releasePortAudio();
    }
  });
}
