/** user_stream_*: framed byte streams between outside clients and a guest (reference §8, README "User streams"). */
import { ConfigError, isConfigObject, optString, rejectUnknownKeys, stringArray } from "../../host/config.ts";
import { family, spearImport } from "../family.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/** The host config's `user_stream` section. */
export interface UserStreamSection {
  /** Environment variable holding the endpoint's token; a fresh token per run when absent. */
  token_env?: string;
  /** Browser origins allowed besides the endpoint's own (`https://app.example.com`). */
  origins?: string[];
}

declare module "../../host/config.ts" {
  interface FamilySections {
    user_stream: UserStreamSection;
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export default family<UserStreamSection>({
  name: "user_stream",
  status: "built",
  label: "`user_stream_*`",
  summary: 'built: WebSocket endpoint (`spear run --serve`), web page, terminal client; see "User streams"',
  imports: [
    spearImport("user_stream_open", 2),
    spearImport("user_stream_read", 3),
    spearImport("user_stream_write", 3),
    spearImport("user_stream_close", 1),
    spearImport("user_stream_ctl_open", 0),
    spearImport("user_stream_ctl_read", 3),
  ],
  fdKinds: ["UserStream", "UserStreamCtl"],
  config: {
    key: "user_stream",
    parse(raw) {
      if (raw === undefined) return {};
      if (!isConfigObject(raw)) throw new ConfigError("user_stream", "must be an object");
      rejectUnknownKeys(raw, ["token_env", "origins"], "user_stream");
      const out: UserStreamSection = {};
      const tokenEnv = optString(raw, "token_env", "user_stream");
      if (tokenEnv !== undefined) {
        if (!ENV_NAME.test(tokenEnv)) throw new ConfigError("user_stream.token_env", "not a variable name");
        out.token_env = tokenEnv;
      }
      if (raw.origins !== undefined) {
        out.origins = stringArray(raw, "origins", "user_stream").map((o) => {
          let url: URL;
          try {
            url = new URL(o);
          } catch {
            throw new ConfigError("user_stream.origins", `"${o}" is not an origin (scheme://host[:port])`);
          }
          if (!/^https?:$/.test(url.protocol) || url.origin !== o.replace(/\/$/, "")) {
            throw new ConfigError("user_stream.origins", `"${o}" is not an origin (scheme://host[:port])`);
          }
          return url.origin;
        });
      }
      return out;
    },
  },
  permissions(config) {
    const name = config.user_stream?.token_env; // a config built by hand may lack the section
    return name ? { env: [name] } : {};
  },
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
});
