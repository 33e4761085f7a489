/** The drivers a default host runs with, one per built family. */
import type { HostConfig } from "../runtime/config.ts";
import type { Driver } from "../runtime/host.ts";
import type { MicDeviceInfo } from "../runtime/hostcalls/mic.ts";
import { chatDriver } from "./chat/driver.ts";
import { listInputDevices, releasePortAudio } from "./mic/devices.ts";
import { micDriver } from "./mic/driver.ts";

export function defaultDrivers(config: HostConfig): Driver[] {
  return [chatDriver(config), micDriver(config)];
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
