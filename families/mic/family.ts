/** mic_*: microphone capture fds (SPEC.md §6, reference §7, seed 001). */
import { ConfigError, isConfigObject, optString, rejectUnknownKeys } from "../../host/config.ts";
import { family, spearImport } from "../family.ts";
import { MicCtl } from "./protocol.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/** The host config's `mic` section. */
export interface MicSection {
  /** Host-side audio file the `file` source plays; the guest never sees the path. */
  file?: string;
}

declare module "../../host/config.ts" {
  interface FamilySections {
    mic: MicSection;
  }
}

export default family<MicSection>({
  name: "mic",
  status: "built",
  label: "`mic_*`",
  summary: 'built: see "Microphones" below',
  imports: [
    spearImport("mic_create", 0),
    spearImport("mic_ctl", 4),
    spearImport("mic_read", 3),
    spearImport("mic_close", 1),
  ],
  fdKinds: ["Mic"],
  abi: [{
    title: "mic_ctl commands",
    name: (k) => `SPEAR_MIC_CTL_${k}`,
    values: MicCtl,
    note: (k) => k === "LIST_DEVICES" ? "spearhost extension" : undefined,
  }],
  config: {
    key: "mic",
    parse(raw) {
      if (raw === undefined) return {};
      if (!isConfigObject(raw)) throw new ConfigError("mic", "must be an object");
      rejectUnknownKeys(raw, ["file"], "mic");
      // No `file: undefined` key: an empty section is the same config as an absent one.
      const file = optString(raw, "file", "mic");
      return file === undefined ? {} : { file };
    },
  },
  permissions(config) {
    // ALSA and PortAudio read their own configuration and device nodes.
    const read = ["/usr/share/alsa", "/etc/asound.conf", "/dev/snd", "/proc/asound"];
    const alsaConfig = Deno.env.get("ALSA_CONFIG_PATH");
    if (alsaConfig) read.push(alsaConfig);
    if (config.mic.file) read.push(config.mic.file);
    // The driver sets JACK_NO_START_SERVER so PortAudio's JACK backend never spawns a server.
    return { read, env: ["ALSA_CONFIG_PATH", "JACK_NO_START_SERVER"] };
  },
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
  driver: () => lazyImport<typeof import("./driver.ts")>("./driver.ts", import.meta.url),
});
