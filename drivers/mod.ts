/** The drivers a default host runs with, one per built family. */
import type { HostConfig } from "../runtime/config.ts";
import type { Driver } from "../runtime/host.ts";

export function defaultDrivers(_config: HostConfig): Driver[] {
  return [];
}

/** Audio input devices, for `spear devices`. */
export function listDevices(): Promise<unknown[]> {
  return Promise.reject(new Error("the mic family is not built yet"));
}
