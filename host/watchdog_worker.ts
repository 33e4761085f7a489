/**
 * The time-limit thread. Guest deadlines are timers here, in a Worker of their own, because
 * the main thread's event loop can be busy (a driver parsing a large reply, a slow stderr) and
 * a limit must never wait for it. When a deadline passes this thread stops the guest itself:
 * it sets TIMEOUT in the guest's channel (waking it if parked in a hostcall) and bumps the
 * engine epoch (interrupting it if running wasm).
 */
/// <reference lib="deno.worker" />
import { openWasmtime } from "../ffi/wasmtime.ts";
import { Channel, TerminateReason } from "../protocol/channel.ts";

export type WatchdogCommand =
  | { kind: "init"; libPath: string; engineAddress: bigint }
  | { kind: "arm"; id: number; deadline: number; toGuest: SharedArrayBuffer }
  | { kind: "disarm"; id: number };

let bumpEpoch: () => void = () => {};
const timers = new Map<number, ReturnType<typeof setTimeout>>();

self.onmessage = ({ data: cmd }: MessageEvent<WatchdogCommand>) => {
  if (cmd.kind === "init") {
    const lib = openWasmtime(cmd.libPath);
    const engine = Deno.UnsafePointer.create(cmd.engineAddress);
    bumpEpoch = () => lib.wasmtime_engine_increment_epoch(engine);
  } else if (cmd.kind === "arm") {
    const channel = new Channel(cmd.toGuest);
    const delay = Math.max(0, cmd.deadline - (performance.timeOrigin + performance.now()));
    timers.set(
      cmd.id,
      setTimeout(() => {
        timers.delete(cmd.id);
        channel.requestTerminate(TerminateReason.TIMEOUT);
        bumpEpoch();
      }, delay),
    );
  } else {
    clearTimeout(timers.get(cmd.id));
    timers.delete(cmd.id);
  }
};
