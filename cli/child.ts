/**
 * Entry of the permission-scoped child that cli/launcher.ts starts: for `run`, the guest's
 * Worker starts before the host's modules load (host/guest_worker.ts), then cli/main.ts runs
 * as usual. Measured by bench/startup.ts.
 */
import { prestartGuestWorker } from "../host/guest_worker.ts";
import { lazyImport } from "../runtime/lazy.ts";

if (Deno.args[0] === "run") prestartGuestWorker();
const { main } = await lazyImport<typeof import("./main.ts")>("./main.ts", import.meta.url);
Deno.exit(await main(Deno.args));
