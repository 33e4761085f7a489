/** The drivers a default host runs with, one per built family. */
import type { HostConfig } from "./config.ts";
import type { Driver } from "./host.ts";
import type { MicDeviceInfo } from "../families/mic/worker.ts";
import { chatDriver } from "../families/cchat/driver.ts";
import { listInputDevices, releasePortAudio } from "../families/mic/devices.ts";
import { micDriver } from "../families/mic/driver.ts";

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
