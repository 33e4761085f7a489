/** The drivers a default host runs with, one per built family. */
import type { HostConfig } from "../runtime/config.ts";
import type { Driver } from "../runtime/host.ts";
import { chatDriver } from "./chat/driver.ts";

export function defaultDrivers(config: HostConfig): Driver[] {
  return [chatDriver(config)];
}

/** Audio input devices, for `spear devices`. */
export function listDevices(): Promise<unknown[]> {
  return Promise.reject(new Error("the mic family is not built yet"));
}
