/**
 * Entry of `deno task spear`: runs the bundled launcher when its bundle is fresh (cli/bundle.ts),
 * the launcher's sources otherwise. Both behave the same; the bundle starts faster.
 */
import { freshBundledLauncher } from "./bundle.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const launcher = freshBundledLauncher(root) ?? new URL("./launcher.ts", import.meta.url).pathname;
const { launch } = await import(`file://${launcher}`) as typeof import("./launcher.ts");
Deno.exit(await launch(Deno.args));
