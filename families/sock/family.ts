/** sock_*: TCP and UDP sockets as fds (SPEC.md §8, seed 003). */
import { netPolicy } from "../../host/config.ts";
import type { NetEntry } from "../../host/net/policy.ts";
import { family, spearImport } from "../family.ts";
import { SockAddrWhich, SockDomain, SockLimits, SockOpt, SockShut, SockType } from "./protocol.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/** Does an entry let sockets of this transport through (an entry without a scheme allows all)? */
export function entryAllows(entry: NetEntry, transport: "tcp" | "udp"): boolean {
  return entry.schemes === "any" || entry.schemes.includes(transport);
}

export default family({
  name: "sock",
  status: "built",
  label: "`sock_*`",
  summary: 'built: TCP and UDP, see "Sockets" below',
  imports: [
    spearImport("sock_create", 2),
    spearImport("sock_connect", 3),
    spearImport("sock_bind", 3),
    spearImport("sock_listen", 2),
    spearImport("sock_accept", 3),
    spearImport("sock_send", 3),
    spearImport("sock_recv", 3),
    spearImport("sock_sendto", 5),
    spearImport("sock_recvfrom", 5),
    spearImport("sock_getaddr", 4),
    spearImport("sock_setopt", 3),
    spearImport("sock_getopt", 2),
    spearImport("sock_shutdown", 2),
    spearImport("sock_close", 1),
  ],
  fdKinds: ["Socket"],
  abi: [
    { title: "sock_create address families", name: (k) => `SPEAR_${k}`, values: SockDomain },
    { title: "sock_create socket types", name: (k) => `SPEAR_${k}`, values: SockType },
    { title: "sock_setopt / sock_getopt options", name: (k) => `SPEAR_SO_${k}`, values: SockOpt },
    { title: "sock_shutdown directions", name: (k) => `SPEAR_${k}`, values: SockShut },
    { title: "sock_getaddr: which address", name: (k) => `SPEAR_SOCK_ADDR_${k}`, values: SockAddrWhich },
    {
      title: "socket limits and defaults",
      name: (k) => `SPEAR_SOCK_${k}`,
      values: {
        MAX_DATAGRAM: SockLimits.MAX_DATAGRAM,
        DEFAULT_BUFFER: SockLimits.DEFAULT_BUFFER,
        MAX_ADDR_TEXT: SockLimits.MAX_ADDR_TEXT,
      },
    },
  ],
  permissions(config) {
    // Deno.listenDatagram is unstable: only a config that lets UDP through gets --unstable-net,
    // with the ephemeral wildcard binds a UDP socket makes before its first send.
    const policy = netPolicy(config);
    const udp = [...policy.allow, ...policy.listen].some((e) => entryAllows(e, "udp"));
    return udp ? { unstable: ["net"], net: ["0.0.0.0:0", "[::]:0"] } : {};
  },
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
  driver: () => lazyImport<typeof import("./driver.ts")>("./driver.ts", import.meta.url),
});
